"""Novelty: how little an item belongs to its collection (or to a clean ``reference``), from embeddings.

Relative, unlike quality issues: a clear tile in a cloudy chip is novel, not bad. Evidence at several
neighbourhood sizes, since outliers often come as a group of look-alikes that a small neighbourhood
sees as ordinary:

* mean cosine distance to the ``k`` nearest neighbours for each ``k`` in ``neighbourhoods(n)`` (5, 15
  and 30% of the collection, at most 100), each on the fence scale (``fence_z``) of the collection
  (or of the reference, its items leaving themselves out), averaged;
* a density view: robust Mahalanobis distance in PCA projections (``mcd_component``), which
  sees a small group off the robust ellipsoid of the majority even when its members are close;
* a group view (``group_component``, up to ``SAMPLE_BASE`` base items): how much an item's neighbourhood
  widens from the smallest to the largest size, high for members of a small tight group of look-alikes
  apart from the rest;
``novelty_z`` is the largest of these, never clipped. All are measured relative to the collection's
own distribution of the same evidence (Tukey's fences: interquartile ranges beyond the upper quartile),
so one threshold transfers between collections whose raw distances differ in scale and in skew: a
robust z-score (median / MAD) does not, since kNN and Mahalanobis distances are right-skewed and their
tails differ from one collection to the next (planted items scored z 5-15 in EuroSAT, 40 in video).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

SAMPLE_BASE = 5_000  # beyond this many base items, neighbours are searched in a seeded sample
PCA_ABOVE = 5_000  # beyond this many items, neighbours are searched on 64 PCA dimensions
FIT_ROWS = 5_000  # PCA is fitted on at most this many (seeded) rows
MCD_FIT_ROWS = 500  # the robust covariance is fitted on at most this many (seeded) rows (>= 30 per dimension;
# FastMCD runs its quick one-stage search up to 500 rows, a three-stage one beyond, at 2-3x the cost)
REDUCE_POWER = 2  # power iterations of the randomized PCA that reduces large collections (sklearn's 7 is for
# the smallest components' accuracy; the 64-d subspace for neighbour search needs less, at a third of the cost)
MCD_DIMS = (12, 16)  # PCA sizes for the robust Mahalanobis distance (fewer for small collections)


def neighbourhoods(n: int) -> list[int]:
    """Neighbourhood sizes for ``n`` base items: 5, 15 and 30% of ``n`` (5-100), each below ``n``."""
    big = max(5, min(100, round(0.3 * n)))
    return sorted({max(1, min(k, n - 1)) for k in (5, 15, big)})


@contextmanager
def idle_threads():
    """faiss searches and BLAS (PCA, covariances) inside use the cores the machine leaves idle (its CPU
    share less the load average; at least one): their threads spin-wait for each other, so on busy cores
    two faiss threads took 2.5x the wall time and twice the CPU time of one (100k queries, 5000 base
    items, 64 dimensions, load 5 on 2 cores), while on an idle machine they halve it."""
    import os

    from threadpoolctl import threadpool_limits

    from ..system import cpu_threads
    from .neighbors import _faiss

    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on this platform: take the machine as idle
        load = 0.0
    faiss = _faiss()
    prev = faiss.omp_get_max_threads()
    threads = max(1, min(prev, cpu_threads() - int(load)))
    faiss.omp_set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        faiss.omp_set_num_threads(prev)


def knn_distances(vectors: np.ndarray, ks: list[int], reference: np.ndarray | None = None,
                  seed: int = 0) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray] | None]:
    """Mean cosine distance to the ``k`` nearest base items, per ``k``: of ``vectors`` and of the
    reference items (leave-one-out; None without a reference).

    Base = the reference, else the collection. Beyond ``SAMPLE_BASE`` base items, neighbours are
    searched in a seeded sample of that size with each ``k`` scaled by the sampling rate (the same
    neighbourhood, estimated); sampled items leave themselves out.
    """
    from .neighbors import knn

    vec = np.asarray(vectors, np.float32)
    full = vec if reference is None else np.asarray(reference, np.float32)
    sample = None
    if len(full) > SAMPLE_BASE:
        sample = np.sort(np.random.default_rng(seed).choice(len(full), SAMPLE_BASE, replace=False))
        scaled = {k: max(1, round(k * SAMPLE_BASE / len(full))) for k in ks}
    else:
        scaled = {k: k for k in ks}
    base = full if sample is None else full[sample]
    scaled = {k: max(1, min(v, len(base) - 1)) for k, v in scaled.items()}
    kmax = max(scaled.values())

    def means(dist: np.ndarray) -> dict[int, np.ndarray]:
        cum = np.cumsum(dist, axis=1)
        return {k: cum[:, v - 1] / v for k, v in scaled.items()}

    def self_scored(rows: np.ndarray) -> dict[int, np.ndarray]:
        """Rows of ``full`` against the base, leaving themselves out."""
        if sample is None:
            sims, _ = knn(base, kmax)
            return means(np.clip(1.0 - sims, 0.0, 2.0))
        return means(sampled_neighbours(rows, base, kmax, sample)[0])

    with idle_threads():
        if reference is None:
            return self_scored(vec), None
        ref_d = self_scored(full)
        sims, _ = knn(base, kmax, queries=vec)
    return means(np.clip(1.0 - sims, 0.0, 2.0)), ref_d


def sampled_neighbours(queries: np.ndarray, base: np.ndarray, k: int, sample: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distances and ids of the ``k`` nearest rows of ``base`` (a sample of the rows of
    ``queries`` at positions ``sample``); a query in the sample leaves itself out."""
    from .neighbors import knn

    sims, ids = knn(base, k + 1, queries=queries)
    pos = np.full(len(queries), -1, np.int64)
    pos[sample] = np.arange(len(sample))
    is_self = ids == pos[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)  # else drop the (k+1)-th
    keep = np.ones_like(ids, dtype=bool)
    keep[np.arange(len(ids)), drop] = False
    dist = np.clip(1.0 - sims[keep].reshape(len(ids), k), 0.0, 2.0)
    return dist, ids[keep].reshape(len(ids), k)


def novelty_components(vectors: np.ndarray, reference: np.ndarray | None = None,
                       seed: int = 0) -> dict[str, np.ndarray]:
    """``knn_z`` (fence score of the kNN distance, averaged over ``neighbourhoods``), ``group_z``
    (``group_component``), ``mcd_z`` (where the collection is large enough) and ``novelty_z``, the
    largest of them."""
    with idle_threads():
        return _novelty_components(vectors, reference, seed)


def _novelty_components(vectors: np.ndarray, reference: np.ndarray | None, seed: int) -> dict[str, np.ndarray]:
    vec, ref = reduce_vectors(np.asarray(vectors, np.float32),
                              None if reference is None else np.asarray(reference, np.float32), seed)
    n_base = len(vec) if ref is None else len(ref)
    out: dict[str, np.ndarray] = {}
    if n_base < 3:
        out["novelty_z"] = np.zeros(len(vec))
        return out
    ks = neighbourhoods(n_base)
    dist, ref_dist = knn_distances(vec, ks, ref, seed)
    zs = [fence_z(dist[k], None if ref_dist is None else ref_dist[k]) for k in ks]
    out["knn_z"] = np.mean(zs, axis=0)
    if len(ks) > 1 and n_base <= SAMPLE_BASE:  # in a sample the smallest neighbourhood is 1 item: noise
        out["group_z"] = group_component(dist, ref_dist, ks[0], ks[-1])
    m = mcd_component(vec, ref, seed)
    if m is not None:
        out["mcd_z"] = m
    out["novelty_z"] = np.max([out[c] for c in ("knn_z", "group_z", "mcd_z") if c in out], axis=0)
    return out


def group_component(dist: dict[int, np.ndarray], ref_dist: dict[int, np.ndarray] | None, small: int,
                    big: int) -> np.ndarray:
    """Evidence that an item belongs to a small tight group apart from the rest (a micro-cluster, as in
    Papadimitriou et al.'s LOCI, 2003): how much its neighbourhood widens from ``small`` to ``big``
    neighbours, ``log(d_big / d_small)``, on the fence scale (``fence_z``) of the collection (or the
    reference). Members of a planted group of look-alikes have close neighbours up to the group's size and
    far ones beyond it, so their kNN distances alone read as ordinary (dense). Counted only for items
    beyond the upper quartile of the ``big``-neighbour distance (elsewhere at most 0), and ``d_small`` is
    never taken below the collection's 5th percentile, so duplicates inside the bulk are no group.
    Measured where neighbours are searched among all base items (up to ``SAMPLE_BASE``): in a sample the
    smallest neighbourhood shrinks to one item, whose distance is noise (100,000 synthetic items: 94
    false flags, no outlier found that the other views missed)."""
    base = dist if ref_dist is None else ref_dist
    floor = max(float(np.percentile(base[small], 5)), 1e-6)

    def widening(d: dict[int, np.ndarray]) -> np.ndarray:
        return np.log(np.maximum(d[big], floor) / np.maximum(d[small], floor))

    z = fence_z(widening(dist), None if ref_dist is None else widening(ref_dist))
    far = fence_z(dist[big], None if ref_dist is None else ref_dist[big]) > 0
    return np.where(far, z, np.minimum(z, 0.0))


def fence_z(values: np.ndarray, ref: np.ndarray | None = None, floor: float = 1e-3) -> np.ndarray:
    """``(x - Q3) / IQR`` of ``ref`` (default: ``values`` itself): how many interquartile ranges an item
    lies beyond the upper quartile of its collection. Tukey's inner fence is 1.5, the outer
    ("far out") fence 3. Scale-free and one-sided by construction, so it transfers between collections
    with differently skewed distance distributions. The IQR is never below ``floor``; NaN scores 0."""
    x = np.asarray(values, dtype=np.float64)
    r = x if ref is None else np.asarray(ref, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return np.zeros_like(x)
    q1, q3 = np.percentile(r, [25, 75])
    return np.nan_to_num((x - q3) / max(float(q3 - q1), floor), nan=0.0)


def robust_z(values: np.ndarray, ref: np.ndarray | None = None, side: str = "high",
             floor: float = 1e-6) -> np.ndarray:
    """(x - median) / scale of ``ref`` (Iglewicz-Hoaglin): scale = 1.4826 MAD, or 1.2533 x mean absolute
    deviation where MAD is 0, and never below ``floor``.

    ``side="high"`` keeps only large values (clipped at 0), ``"low"`` only small ones, ``"both"`` the
    absolute deviation, ``"signed"`` the plain z-score (nothing clipped: order is kept on both sides).
    NaN (signal absent for an item) scores 0.
    """
    x = np.asarray(values, dtype=np.float64)
    r = x if ref is None else np.asarray(ref, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return np.zeros_like(x)
    med = float(np.median(r))
    dev = np.abs(r - med)
    mad = float(np.median(dev))
    scale = max(1.4826 * mad if mad > 0 else 1.2533 * float(dev.mean()), floor)
    z = (x - med) / scale
    if side != "signed":
        z = np.abs(z) if side == "both" else np.maximum(-z if side == "low" else z, 0.0)
    return np.nan_to_num(z, nan=0.0)


def _pca(base: np.ndarray, dims: int, seed: int, power: int | str = "auto"):
    """PCA fitted on at most ``FIT_ROWS`` seeded rows of ``base`` (randomized with ``power`` iterations
    for a few components of long vectors, else an eigen-decomposition of the covariance)."""
    from sklearn.decomposition import PCA

    rows = base
    if len(base) > FIT_ROWS:
        rows = base[np.random.default_rng(seed).choice(len(base), FIT_ROWS, replace=False)]
    if base.shape[1] > 4 * dims and min(rows.shape) > 4 * dims:
        solver = "randomized"  # a few components of long vectors: far cheaper than a full eigh
    else:
        solver = "covariance_eigh" if len(rows) > base.shape[1] else "full"
    return PCA(n_components=min(dims, len(rows), base.shape[1]), svd_solver=solver, iterated_power=power,
               random_state=seed).fit(rows)


def reduce_vectors(vectors: np.ndarray, reference: np.ndarray | None = None, seed: int = 0):
    """PCA to 64 dimensions for large collections (fit on the reference when given), re-normalised;
    small collections and short vectors are returned unchanged."""
    base = vectors if reference is None else reference
    if len(base) <= PCA_ABOVE or vectors.shape[1] <= 64:
        return vectors, reference
    pca = _pca(base, 64, seed, REDUCE_POWER)

    def tr(a):
        out = pca.transform(a).astype(np.float32, copy=False)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    return tr(vectors), (None if reference is None else tr(reference))


def robust_distance(fit: np.ndarray, query: np.ndarray | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Robust Mahalanobis distances (MinCovDet on the densest 75% of ``fit``): of ``fit`` and of ``query``.

    The covariance is fitted on at most ``MCD_FIT_ROWS`` seeded rows of ``fit`` (FastMCD is slow on
    large inputs); it falls back to a shrunk covariance (Ledoit-Wolf) when the robust fit is singular.
    """
    import warnings

    from sklearn.covariance import LedoitWolf, MinCovDet

    rows = fit
    if len(fit) > MCD_FIT_ROWS:
        rows = fit[np.random.default_rng(seed).choice(len(fit), MCD_FIT_ROWS, replace=False)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est = MinCovDet(support_fraction=0.75, random_state=seed).fit(rows)
        except (ValueError, np.linalg.LinAlgError):
            est = LedoitWolf().fit(rows)
        d_fit = np.sqrt(np.maximum(est.mahalanobis(fit), 0))
        d_q = d_fit if query is None else np.sqrt(np.maximum(est.mahalanobis(query), 0))
    return d_fit, d_q


def mcd_component(vectors: np.ndarray, reference: np.ndarray | None = None, seed: int = 0,
                  side: str = "fence") -> np.ndarray | None:
    """Calibrated robust Mahalanobis distance of each item in PCA projections of the embeddings.

    One projection per size in ``MCD_DIMS`` (capped at a tenth of the collection), each fitted on
    the reference when given; their fence scores (``fence_z``, or robust z-scores with ``side``) are
    averaged. None for tiny collections.
    """
    base = vectors if reference is None else reference
    cap = min(len(base) // 10, base.shape[1])
    dims_list = sorted({min(d, cap) for d in MCD_DIMS})
    if cap < 2:
        return None
    pca = _pca(base, max(dims_list), seed)
    proj_base = pca.transform(base)
    proj = proj_base if reference is None else pca.transform(vectors)
    zs = []
    for dims in dims_list:
        if reference is None:
            d, d_ref = robust_distance(proj[:, :dims], None, seed)
        else:
            d_ref, d = robust_distance(proj_base[:, :dims], proj[:, :dims], seed)
        zs.append(fence_z(d, d_ref) if side == "fence" else robust_z(d, d_ref, side, 1e-3))
    return np.mean(zs, axis=0)
