"""Clusters and a 2-D map of a collection: UMAP for the map, HDBSCAN for the groups.

HDBSCAN runs on a reduction with more than two dimensions (UMAP by default, PCA as the
alternative; ``benchmarks/cluster_quality.py`` compares them). Every random step is seeded and
UMAP runs single-threaded when seeded, so the same vectors give the same table.

Beyond ``SAMPLE_LIMIT`` items, UMAP and HDBSCAN run on a seeded sample and every other item takes its
map position and cluster from its nearest sampled neighbours (faiss kNN in the PCA space): the
similarity-weighted mean of their map positions and their weighted majority cluster. That is what
``UMAP.transform`` starts from; its refinement epochs cost more than the 3-minute budget for 100k
items on two cores allows, and the clusters come out the same.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEFAULT_SEED = 0
PCA_DIMS = 50             # first reduction of the raw vectors (speeds up every neighbour search)
CLUSTER_DIMS = 10         # dimensions HDBSCAN clusters in
SAMPLE_LIMIT = 20_000     # UMAP and HDBSCAN see at most this many items; the rest are placed by kNN
PLACE_K = 10              # sampled neighbours that place each of the other items
REDUCTIONS = ("umap", "pca")
MAP_COLUMNS = ("map_x", "map_y")  # not x/y: the items table already uses those for tile windows


@dataclass(frozen=True)
class ClusterParams:
    """Settings of one clustering run (recorded so that a report can say how it was made)."""

    min_cluster_size: int
    min_samples: int
    reduction: str
    dims: int
    n_neighbors: int
    sample_size: int
    seed: int
    assign_noise: bool = False


def default_min_cluster_size(n: int) -> int:
    """Smallest group worth calling a cluster: about sqrt(n), at least 5 (2 for tiny sets), at most 1000.

    sqrt(n) beat sqrt(n)/2 on EuroSAT and matched it on rice leaves (benchmarks/cluster_quality.py).
    """
    if n < 4:
        return 2
    size = max(5, round(math.sqrt(n)))
    return int(max(2, min(size, n // 2, 1000)))


def default_min_samples(min_cluster_size: int) -> int:
    """HDBSCAN min_samples: small (3), so that fewer items are noise and neighbouring classes merge less."""
    return int(max(1, min(3, min_cluster_size // 2)))


def pca_reduce(vectors: np.ndarray, dims: int, *, seed: int = DEFAULT_SEED,
               sample_limit: int = SAMPLE_LIMIT) -> np.ndarray:
    """Project onto the top ``dims`` principal axes (fitted on a seeded sample for large inputs)."""
    from sklearn.decomposition import PCA

    x = np.asarray(vectors, dtype=np.float32)
    n, d = x.shape
    dims = int(min(dims, d, n))
    if dims >= d:
        return x - x.mean(axis=0, keepdims=True)
    pca = PCA(n_components=dims, svd_solver="randomized" if dims < 0.8 * min(n, d) else "full",
              random_state=seed)
    fit_rows = _sample(n, sample_limit * 2, seed)
    pca.fit(x[fit_rows] if fit_rows is not None else x)
    return pca.transform(x).astype(np.float32)


def umap_reduce(x: np.ndarray, dims: int, *, seed: int = DEFAULT_SEED, n_neighbors: int = 15,
                min_dist: float = 0.1, sample_limit: int = SAMPLE_LIMIT) -> np.ndarray:
    """Seeded UMAP to ``dims`` dimensions; beyond ``sample_limit`` items fit on a sample, transform the rest."""
    n = len(x)
    if n <= dims + 2:  # too few points for a manifold: fall back to PCA coordinates
        return _pad(pca_reduce(x, dims, seed=seed), dims)
    import umap

    nn = int(max(2, min(n_neighbors, n - 1)))
    model = umap.UMAP(n_components=dims, n_neighbors=nn, min_dist=min_dist, metric="euclidean",
                      random_state=seed, n_jobs=1, init="spectral" if n > 4 * (dims + 2) else "random",
                      low_memory=True, transform_seed=seed)
    rows = _sample(n, sample_limit, seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        warnings.filterwarnings("ignore", message=".*(spectral|Graph is not fully connected).*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        if rows is None:
            out = model.fit_transform(x)
        else:  # fit on a sample, UMAP.transform the rest (cluster() places the rest by kNN instead)
            rest = np.setdiff1d(np.arange(n), rows)
            out = np.empty((n, dims), np.float32)
            out[rows] = model.fit_transform(x[rows])
            out[rest] = model.transform(x[rest])
    return np.asarray(out, dtype=np.float32)


def cluster(vectors: np.ndarray, *, min_cluster_size: int | None = None, min_samples: int | None = None,
            reduction: str = "umap", dims: int = CLUSTER_DIMS, n_neighbors: int = 15,
            seed: int = DEFAULT_SEED, sample_limit: int = SAMPLE_LIMIT, with_map: bool = True,
            assign_noise: bool = False, on_phase: Callable[[str], None] | None = None):
    """Cluster L2-normalised ``vectors`` and place them on a 2-D map.

    Returns a DataFrame, one row per vector in input order: ``cluster`` (-1 = noise, 0 = largest
    cluster), ``probability`` (HDBSCAN membership strength), ``map_x``/``map_y`` (UMAP 2-D),
    ``score`` (cosine similarity to the cluster's centre; for noise, to the nearest centre),
    ``rank`` (0 = the most representative member of its cluster) and the flag ``is_noise``.
    With ``assign_noise`` every noise item joins the cluster most of its nearest clustered
    neighbours belong to (probability scaled by that majority), so no item is left as -1.
    ``df.attrs["params"]`` holds the :class:`ClusterParams` used. ``on_phase(name)`` is called as
    each step starts (``reducing``, ``clustering``, ``map``, ``placing`` the items outside the
    sample), so that a caller can show progress through the seconds UMAP and HDBSCAN take.
    """
    phase = on_phase or (lambda name: None)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, not {reduction!r}")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(x)
    mcs = int(min_cluster_size) if min_cluster_size else default_min_cluster_size(n)
    mcs = max(2, mcs)
    ms = int(min_samples) if min_samples else default_min_samples(mcs)
    dims = int(max(3, dims))
    params = ClusterParams(mcs, ms, reduction, dims, n_neighbors, min(n, sample_limit), seed, assign_noise)

    if n < 3:  # nothing to reduce or cluster: every item is noise at the origin
        return _table(np.full(n, -1, np.int64), np.zeros(n), np.zeros((n, 2), np.float32), x, params)
    phase("reducing")
    base = pca_reduce(x, PCA_DIMS, seed=seed, sample_limit=sample_limit)
    rows = _sample(n, sample_limit, seed)
    fit = base if rows is None else base[rows]
    if reduction == "umap":
        space = umap_reduce(fit, dims, seed=seed, n_neighbors=n_neighbors, min_dist=0.0,
                            sample_limit=len(fit))
    else:
        space = _pad(pca_reduce(x if rows is None else x[rows], dims, seed=seed), dims)
    # a cluster of mcs items among n has about mcs * len(fit) / n of them in the sample
    phase("clustering")
    labels, prob = _hdbscan(space, max(2, round(mcs * len(fit) / n)), ms)
    if with_map:
        phase("map")
        xy = umap_reduce(fit, 2, seed=seed, n_neighbors=n_neighbors, min_dist=0.1, sample_limit=len(fit))
    else:
        xy = np.zeros((len(fit), 2), np.float32)
    if rows is not None:
        phase("placing")
        labels, prob, xy = _place_rest(base, rows, labels, prob, xy)
    if assign_noise and (labels >= 0).any() and (labels < 0).any():
        keep = np.flatnonzero(labels >= 0)
        labels, prob, _ = _place_rest(base, keep, labels[keep], prob[keep], xy[keep])
    return _table(labels, prob, xy, x, params)


def _table(labels: np.ndarray, prob: np.ndarray, xy: np.ndarray, x: np.ndarray, params: ClusterParams):
    import pandas as pd

    labels = _relabel_by_size(labels)
    score, rank = _centrality(x, labels)
    df = pd.DataFrame({
        "cluster": labels.astype(np.int64),
        "probability": np.asarray(prob, dtype=np.float64),
        "map_x": xy[:, 0].astype(np.float64),
        "map_y": xy[:, 1].astype(np.float64),
        "score": score,
        "rank": rank,
        "is_noise": labels < 0,
    })
    df.attrs["params"] = params
    return df


def summary(table) -> dict:
    """Number of clusters, their sizes (largest first) and the share of noise."""
    labels = table["cluster"].to_numpy()
    sizes = [int((labels == c).sum()) for c in sorted(set(labels.tolist()) - {-1})]
    n = len(labels)
    noise = int((labels < 0).sum())
    return {"items": n, "clusters": len(sizes), "sizes": sizes, "noise": noise,
            "noise_share": noise / n if n else 0.0}


def clusters_csv(table, items) -> "pd.DataFrame":  # noqa: F821
    """The ``clusters.csv`` frame: ``path,cluster,x,y,probability`` (+ ``window``/``frame`` when present).

    Coordinates and probabilities are rounded so that the file is byte-identical between runs.
    """
    import pandas as pd

    out = pd.DataFrame({
        "path": items["path"].astype(str).to_numpy(),
        "cluster": table["cluster"].astype(np.int64).to_numpy(),
        "x": np.round(table["map_x"].to_numpy(dtype=np.float64), 4),
        "y": np.round(table["map_y"].to_numpy(dtype=np.float64), 4),
        "probability": np.round(table["probability"].to_numpy(dtype=np.float64), 4),
    })
    if "w" in items and (items["w"].to_numpy() > 0).any():
        win = [f"{int(a)},{int(b)},{int(c)},{int(d)}" if int(c) > 0 else ""
               for a, b, c, d in zip(items["x"], items["y"], items["w"], items["h"])]
        out["window"] = win
    if "frame" in items and (items["frame"].to_numpy() >= 0).any():
        out["frame"] = [int(f) if int(f) >= 0 else "" for f in items["frame"]]
    return out


# --- helpers --------------------------------------------------------------------------------------

def _sample(n: int, limit: int, seed: int) -> np.ndarray | None:
    """Sorted seeded sample of ``limit`` row indices, or None when all rows fit."""
    if n <= limit:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=limit, replace=False))


def _place_rest(base: np.ndarray, rows: np.ndarray, labels: np.ndarray, prob: np.ndarray,
                xy: np.ndarray, k: int = PLACE_K) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster, probability and map position of the items outside the sample, from their sampled neighbours."""
    from .neighbors import knn

    n = len(base)
    rest = np.setdiff1d(np.arange(n), rows)
    unit = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-12)
    sims, ids = knn(unit[rows], k, unit[rest], exact=True)
    w = np.clip(sims, 1e-3, None).astype(np.float64)
    w[ids < 0] = 0.0
    ids = np.where(ids < 0, 0, ids)
    nb_lab = labels[ids]
    cand = np.unique(labels)
    votes = np.stack([(w * (nb_lab == c)).sum(axis=1) for c in cand], axis=1)
    win = votes.argmax(axis=1)  # ties: the smaller label (noise first), deterministic
    out_lab = np.empty(n, np.int64)
    out_prob = np.empty(n, np.float64)
    out_xy = np.empty((n, 2), np.float32)
    out_lab[rows], out_prob[rows], out_xy[rows] = labels, prob, xy
    out_lab[rest] = cand[win]
    share = votes[np.arange(len(rest)), win] / np.maximum(w.sum(axis=1), 1e-12)
    nb_prob = (w * prob[ids] * (nb_lab == cand[win][:, None])).sum(axis=1) / np.maximum(
        votes[np.arange(len(rest)), win], 1e-12)
    out_prob[rest] = np.where(out_lab[rest] < 0, 0.0, share * nb_prob)
    out_xy[rest] = ((w[:, :, None] * xy[ids]).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12)[:, None])
    return out_lab, out_prob, out_xy


def _pad(x: np.ndarray, dims: int) -> np.ndarray:
    if x.shape[1] >= dims:
        return x[:, :dims]
    return np.hstack([x, np.zeros((len(x), dims - x.shape[1]), x.dtype)])


def _hdbscan(space: np.ndarray, min_cluster_size: int, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(space)
    if n < max(3, min_cluster_size):
        return np.full(n, -1, np.int64), np.zeros(n)
    import hdbscan

    ms = int(min(min_samples, n - 1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        model = hdbscan.HDBSCAN(min_cluster_size=int(min_cluster_size), min_samples=ms,
                                cluster_selection_method="eom", core_dist_n_jobs=1)
        labels = model.fit_predict(np.asarray(space, dtype=np.float64))
    return labels.astype(np.int64), np.nan_to_num(model.probabilities_.astype(np.float64))


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0..k-1 by decreasing size (ties: by first member), noise stays -1."""
    ids = [c for c in np.unique(labels) if c >= 0]
    first = {c: int(np.argmax(labels == c)) for c in ids}
    order = sorted(ids, key=lambda c: (-int((labels == c).sum()), first[c]))
    mapping = {c: i for i, c in enumerate(order)}
    return np.array([mapping.get(int(c), -1) for c in labels], dtype=np.int64)


def _centrality(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity to the own cluster's centre (noise: nearest centre) and rank within the cluster."""
    n = len(labels)
    score = np.zeros(n, np.float64)
    rank = np.zeros(n, np.int64)
    ids = sorted(c for c in set(labels.tolist()) if c >= 0)
    if n == 0:
        return score, rank
    if ids:
        centres = np.stack([x[labels == c].mean(axis=0) for c in ids]).astype(np.float32)
        centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
        sims = x @ centres.T
        for j, c in enumerate(ids):
            m = labels == c
            score[m] = sims[m, j]
        noise = labels < 0
        score[noise] = sims[noise].max(axis=1)
    for c in ids + [-1]:
        idx = np.flatnonzero(labels == c)
        if len(idx):
            order = idx[np.lexsort((idx, -np.round(score[idx], 6)))]
            rank[order] = np.arange(len(order))
    return np.round(score, 6), rank
