"""``probe_models``: embed a labelled collection with each model and compare few-label accuracy."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AgcurateError


@dataclass
class ProbeResult:
    """Per-repeat scores (``runs``), their summary (``summary``) and what was probed per model."""

    runs: "pd.DataFrame"  # noqa: F821
    summary: "pd.DataFrame"  # noqa: F821
    models: list[str]
    n_labelled: dict[str, int] = field(default_factory=dict)
    n_unlabelled: dict[str, int] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    probe_seconds: dict[str, float] = field(default_factory=dict)
    embeddings: dict = field(default_factory=dict)


def item_labels(emb, labels: str | Path | None = None, from_folders: bool = False) -> np.ndarray:
    """One label (or ``None``) per embedded item, from a CSV or from parent folder names."""
    from .labels import labels_from_folders, match_labels, read_labels_csv

    if from_folders == (labels is not None):
        raise AgcurateError("give exactly one of --labels FILE or --labels-from-folders")
    if from_folders:
        return labels_from_folders(emb.paths)
    return match_labels(emb.paths, read_labels_csv(labels))


def probe_models(paths: Iterable[str | Path] | None, models: Sequence[str] = ("lite0",), *,
                 labels: str | Path | None = None, from_folders: bool = False,
                 fractions: Sequence[float] = (0.01, 0.1, 1.0), repeats: int = 5, seed: int = 0,
                 knn_k: int = 10, embed_kwargs: dict | None = None,
                 on_embedded: Callable | None = None) -> ProbeResult:
    """Embed (from the cache when possible) with every model, then probe each at every fraction."""
    import pandas as pd

    from .embedding import embed
    from .ops.probe import probe, summarize

    models = list(dict.fromkeys(models))  # the same model twice is probed once
    if not models:
        raise AgcurateError("no --model given")
    paths = list(paths) if paths is not None else None
    all_runs, result = [], ProbeResult(runs=None, summary=None, models=models)
    for model in models:
        emb = embed(paths, model, **(embed_kwargs or {}))
        if on_embedded is not None:
            on_embedded(emb)
        y = item_labels(emb, labels, from_folders)
        keep = np.array([v is not None and str(v) != "" for v in y], dtype=bool)
        n_lab = int(keep.sum())
        result.n_labelled[model], result.n_unlabelled[model] = n_lab, int(len(y) - n_lab)
        if n_lab == 0:
            raise AgcurateError("no embedded item has a label: check the paths in the labels file")
        yk = y[keep].astype(str)
        classes = sorted(set(yk))
        if len(classes) < 2:
            raise AgcurateError(f"probing needs at least two classes, the labels hold {len(classes)}")
        result.classes = classes
        t0 = time.perf_counter()
        runs = probe(emb.vectors[keep], yk, fractions=fractions, repeats=repeats, seed=seed, knn_k=knn_k)
        result.probe_seconds[model] = time.perf_counter() - t0
        runs.insert(0, "model", model)
        all_runs.append(runs)
        result.embeddings[model] = emb
    result.runs = pd.concat(all_runs, ignore_index=True)
    result.summary = summarize(result.runs)
    return result


def parse_fractions(text: str) -> list[float]:
    """``"0.01,0.1,1"`` -> ``[0.01, 0.1, 1.0]``; percentages such as ``"1%,10%"`` work too."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            v = float(part[:-1]) / 100 if part.endswith("%") else float(part)
        except ValueError as exc:
            raise AgcurateError(f"--fractions: {part!r} is not a number") from exc
        if not 0 < v <= 1:
            raise AgcurateError(f"--fractions: {part} is not in (0, 1]")
        out.append(v)
    if not out:
        raise AgcurateError("--fractions is empty")
    return out
