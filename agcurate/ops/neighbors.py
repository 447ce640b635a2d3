"""Nearest neighbours over L2-normalised vectors (cosine = inner product), shared by every operation.

Up to ``EXACT_LIMIT`` items: exact search in blocks (faiss flat index, BLAS). Beyond: the vectors are
reduced by PCA to ``APPROX_DIMS`` dimensions, an IVF index over the reduced vectors proposes
``RERANK`` x k candidates per query, and the candidates are re-scored exactly with the full vectors.
That keeps an all-pairs search sub-quadratic and cheap in memory (100k x 1280: seconds on 2 cores).
"""

from __future__ import annotations

import numpy as np

EXACT_LIMIT = 20_000
APPROX_DIMS = 128       # PCA size for the approximate index (embeddings keep most of their variance)
RERANK = 2              # candidates per wanted neighbour, re-scored with the full vectors
NPROBE = 20             # IVF cells searched per query
PCA_SAMPLE = 4096       # rows whose SVD gives the PCA
TRAIN_PER_LIST = 40     # k-means training points per IVF cell
RERANK_BYTES = 256 << 20  # memory for gathering candidate vectors while re-ranking


def _faiss():
    import faiss

    return faiss


def knn(base: np.ndarray, k: int, queries: np.ndarray | None = None, *, exact: bool | None = None,
        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar rows of ``base`` for each query: (similarities, indices), best first.

    With ``queries=None`` every row of ``base`` is a query and is not its own neighbour. Missing
    neighbours (k larger than the collection) have index -1 and similarity -inf. ``exact`` forces
    (True) or forbids (False) the exact search; by default it is used up to ``EXACT_LIMIT`` items.
    """
    base = np.ascontiguousarray(base, dtype=np.float32)
    self_search = queries is None
    q = base if self_search else np.ascontiguousarray(queries, dtype=np.float32)
    n, d = base.shape
    kk = min(n, k + (1 if self_search else 0))
    if kk <= 0 or len(q) == 0:
        return np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
    if exact is None:
        exact = n <= EXACT_LIMIT
    if exact:
        faiss = _faiss()
        index = faiss.IndexFlatIP(d)
        index.add(base)
        sims, ids = index.search(q, kk)
    else:
        sims, ids = _approx_search(base, q, kk, seed)
    if self_search:
        sims, ids = _drop_self(sims, ids)
    out_s = np.full((len(q), k), -np.inf, np.float32)
    out_i = np.full((len(q), k), -1, np.int64)
    m = min(k, ids.shape[1])
    out_s[:, :m], out_i[:, :m] = sims[:, :m], ids[:, :m]
    out_s[out_i < 0] = -np.inf
    return out_s, out_i


def _approx_search(base: np.ndarray, q: np.ndarray, kk: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA + IVF candidates, re-ranked exactly with the full vectors."""
    faiss = _faiss()
    n, d = base.shape
    rng = np.random.default_rng(seed)
    nlist = int(max(16, min(2 * np.sqrt(n), n // TRAIN_PER_LIST)))
    sample = base[np.sort(rng.choice(n, size=min(n, TRAIN_PER_LIST * nlist), replace=False))]
    dims = min(d, APPROX_DIMS)
    if dims < d:
        # uncentred PCA (top right singular vectors of a sample): a linear map, so inner products
        # in the reduced space approximate the full ones; an SVD of a few thousand rows is cheap
        sub = sample[rng.choice(len(sample), size=min(len(sample), PCA_SAMPLE), replace=False)]
        proj = _top_directions(sub, dims, rng)

        def reduce(x):
            return np.ascontiguousarray(x @ proj)
    else:
        def reduce(x):
            return x
    rb = reduce(base)
    rs = reduce(sample)
    quantizer = faiss.IndexFlatIP(dims)
    index = faiss.IndexIVFFlat(quantizer, dims, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    index.cp.seed = seed
    index.cp.max_points_per_centroid = TRAIN_PER_LIST
    index.train(rs)
    index.add(rb)
    index.nprobe = min(nlist, NPROBE)
    del rs, sample
    cand = min(n, max(kk * RERANK, kk + 8))
    rq = rb if q is base else np.ascontiguousarray(reduce(q), dtype=np.float32)
    _, ids = index.search(rq, cand)
    del rb, rq, index
    sims = np.full(ids.shape, -np.inf, np.float32)
    block = max(64, RERANK_BYTES // (cand * d * 4))
    for s in range(0, len(q), block):
        blk = ids[s:s + block]
        safe = np.where(blk < 0, 0, blk)
        sc = np.einsum("qd,qcd->qc", q[s:s + block], base[safe])
        sc[blk < 0] = -np.inf
        sims[s:s + block] = sc
    order = np.argsort(-sims, axis=1, kind="stable")[:, :kk]
    return np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)


def _top_directions(x: np.ndarray, dims: int, rng: np.random.Generator, power: int = 2) -> np.ndarray:
    """(d, dims) orthonormal basis of the top right singular vectors of ``x`` (randomised SVD,
    Halko et al.): a few thin matrix products instead of a full decomposition."""
    omega = rng.standard_normal((x.shape[1], min(x.shape[1], dims + 16)), dtype=np.float32)
    y = x @ omega
    for _ in range(power):
        y, _ = np.linalg.qr(y)
        y = x @ (x.T @ y)
    qm, _ = np.linalg.qr(y)
    _, _, vt = np.linalg.svd(qm.T @ x, full_matrices=False)
    return np.ascontiguousarray(vt[:dims].T, dtype=np.float32)


def _drop_self(sims: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index from its neighbour list (or the last entry if absent)."""
    rows = np.arange(len(ids))[:, None]
    is_self = ids == rows
    # keep order; when self is missing (ties, approximate search) drop the weakest neighbour
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), ids.shape[1] - 1)
    keep = np.ones_like(ids, dtype=bool)
    keep[np.arange(len(ids)), drop] = False
    k = ids.shape[1] - 1
    return sims[keep].reshape(-1, k), ids[keep].reshape(-1, k)


def pairs_above(vectors: np.ndarray, threshold: float, k: int = 32) -> list[tuple[int, int, float]]:
    """All pairs (i < j) whose cosine similarity is at least ``threshold``, among each item's k nearest."""
    sims, ids = knn(vectors, k)
    rows = np.broadcast_to(np.arange(len(ids))[:, None], ids.shape)
    ok = (ids >= 0) & (sims >= threshold)
    a, b, s = rows[ok], ids[ok], sims[ok]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    if len(lo) == 0:
        return []
    order = np.lexsort((-s, hi, lo))
    lo, hi, s = lo[order], hi[order], s[order]
    first = np.ones(len(lo), bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return [(int(x), int(y), float(v)) for x, y, v in zip(lo[first], hi[first], s[first])]
