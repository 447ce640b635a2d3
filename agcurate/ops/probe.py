"""Few-label evaluation of frozen embeddings: linear probe and k-NN at several label fractions.

For a fraction ``f`` < 1 a stratified sample of ``f`` of the labelled items (at least one per
class) trains each classifier, which is scored on all the other labelled items; this is repeated
with different seeded samples. Fraction 1 ("all labels") leaves nothing to score on, so it is
scored by stratified k-fold cross-validation instead: every item is predicted once by a model
that did not see it, each repeat with a different fold split.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

CLASSIFIERS = ("linear", "knn")
RUN_COLUMNS = ["classifier", "fraction", "repeat", "evaluation", "n_train", "n_test", "accuracy", "macro_f1"]
SUMMARY_COLUMNS = ["classifier", "fraction", "evaluation", "n_train", "n_test", "repeats",
                   "accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std"]


def stratified_sample(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of a sample of about ``fraction`` of the items with every class present at least once.

    Each class gets its proportional share (largest remainders decide the rounding), never less
    than one item and never all of a class that has more than one item, so each class keeps
    items to score on.
    """
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    n = len(labels)
    target = max(len(classes), int(round(fraction * n)))
    exact = counts * (target / n)
    quota = np.floor(exact).astype(int)
    short = target - quota.sum()
    if short > 0:
        order = np.argsort(-(exact - quota), kind="stable")
        quota[order[:short]] += 1
    quota = np.clip(quota, 1, np.maximum(counts - 1, 1))
    chosen = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        chosen.append(rng.choice(members, size=quota[c], replace=False))
    return np.sort(np.concatenate(chosen))


def _linear(seed: int, C: float):
    from sklearn.linear_model import LogisticRegression

    # on L2-normalised vectors, unscaled: standardising from a handful of training items (1 % of
    # the labels) inflates noise dimensions; a weak penalty (C=10) suits the small feature norms
    return LogisticRegression(C=C, max_iter=200, tol=1e-3, random_state=seed)


class KNNVote:
    """k-NN classifier on L2-normalised vectors: faiss neighbours (``agcurate.ops.neighbors``), weighted vote.

    Each neighbour votes with ``exp(cosine / 0.07)`` (the weighting of the k-NN evaluation used
    for self-supervised features, e.g. in DINO). ``k`` is capped at the average number of
    training items per class, so a one-label-per-class sample is a 1-NN classifier.
    """

    def __init__(self, k: int, temperature: float = 0.07):
        self.k, self.temperature = k, temperature

    def fit(self, x: np.ndarray, y: np.ndarray) -> "KNNVote":
        self.classes_, self._y = np.unique(y, return_inverse=True)
        self._x = np.ascontiguousarray(x, dtype=np.float32)
        self.k_ = max(1, min(self.k, len(x) // len(self.classes_)))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        from .neighbors import knn

        sims, ids = knn(self._x, self.k_, np.ascontiguousarray(x, dtype=np.float32))
        w = np.exp((sims - 1.0) / self.temperature)
        w[ids < 0] = 0.0
        votes = np.zeros((len(x), len(self.classes_)))
        np.add.at(votes, (np.repeat(np.arange(len(x)), ids.shape[1]), self._y[np.maximum(ids, 0)].ravel()),
                  w.ravel())
        return self.classes_[votes.argmax(axis=1)]


def _scores(y_true, y_pred) -> tuple[float, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return float(accuracy_score(y_true, y_pred)), float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def probe(vectors: np.ndarray, labels: Sequence, fractions: Sequence[float] = (0.01, 0.1, 1.0),
          repeats: int = 5, seed: int = 0, classifiers: Sequence[str] = CLASSIFIERS, knn_k: int = 10,
          C: float = 10.0, folds: int = 5) -> pd.DataFrame:
    """One row per classifier x fraction x repeat: accuracy and macro-F1 on the held-out items.

    ``vectors`` are frozen embeddings (rows L2-normalised, as ``embed`` returns them) and
    ``labels`` one class per row. The linear probe is a multinomial logistic regression, the k-NN a similarity-weighted vote of the nearest training items (``KNNVote``).
    """
    from sklearn.model_selection import StratifiedKFold

    x = np.asarray(vectors, dtype=np.float32)
    y = np.asarray([str(v) for v in labels])
    if len(x) != len(y):
        raise ValueError(f"{len(x)} vectors but {len(y)} labels")
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError("probing needs at least two classes")
    for c in classifiers:
        if c not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {c!r}: use {', '.join(CLASSIFIERS)}")
    from threadpoolctl import threadpool_limits

    rows = []
    # one BLAS/OpenMP thread: these problems are small, and threads fighting over busy cores made a
    # logistic-regression fit 15x slower on a loaded 2-core machine
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # convergence notes at tiny fractions, "least populated class"
        for fraction in fractions:
            if not 0 < fraction <= 1:
                raise ValueError(f"label fraction {fraction} is not in (0, 1]")
            for rep in range(repeats):
                rng = np.random.default_rng([seed, rep, int(round(fraction * 1e6))])
                train = stratified_sample(y, fraction, rng) if fraction < 1 else np.arange(len(y))
                test = np.setdiff1d(np.arange(len(y)), train)
                if len(test) > 0:
                    for name in classifiers:
                        clf = _make(name, seed + rep, C, knn_k)
                        clf.fit(x[train], y[train])
                        acc, f1 = _scores(y[test], clf.predict(x[test]))
                        rows.append([name, fraction, rep, "holdout", len(train), len(test), acc, f1])
                    continue
                # all labels used: stratified k-fold, every item predicted out of fold
                k = int(max(2, min(folds, np.unique(y, return_counts=True)[1].min())))
                split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed * 1000 + rep)
                for name in classifiers:
                    pred = np.empty(len(y), dtype=y.dtype)
                    for tr, te in split.split(x, y):
                        clf = _make(name, seed + rep, C, knn_k)
                        clf.fit(x[tr], y[tr])
                        pred[te] = clf.predict(x[te])
                    acc, f1 = _scores(y, pred)
                    rows.append([name, fraction, rep, f"cv{k}", int(round(len(y) * (k - 1) / k)), len(y), acc, f1])
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _make(name: str, seed: int, C: float, k: int):
    return _linear(seed, C) if name == "linear" else KNNVote(k)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread (standard deviation over repeats) per classifier x fraction."""
    keys = [c for c in ("model", "classifier", "fraction", "evaluation") if c in runs.columns]
    g = runs.groupby(keys, sort=False)
    out = g.agg(n_train=("n_train", "median"), n_test=("n_test", "median"), repeats=("repeat", "count"),
                accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", "std"),
                macro_f1_mean=("macro_f1", "mean"), macro_f1_std=("macro_f1", "std")).reset_index()
    out[["accuracy_std", "macro_f1_std"]] = out[["accuracy_std", "macro_f1_std"]].fillna(0.0)
    out[["n_train", "n_test"]] = out[["n_train", "n_test"]].round().astype(int)
    for c in ("accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std"):
        out[c] = out[c].round(4)
    return out[[*(["model"] if "model" in keys else []), *SUMMARY_COLUMNS]]
