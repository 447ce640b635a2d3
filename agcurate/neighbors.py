"""Nearest neighbours over L2-normalised vectors (cosine = inner product), shared by every operation.

Exact search in blocks for small collections; an IVF index beyond ``EXACT_LIMIT`` items keeps
the all-pairs search sub-quadratic.
"""

from __future__ import annotations

import numpy as np

EXACT_LIMIT = 20_000


def _faiss():
    import faiss

    return faiss


def knn(base: np.ndarray, k: int, queries: np.ndarray | None = None, *, exact: bool | None = None,
        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar rows of ``base`` for each query: (similarities, indices), best first.

    With ``queries=None`` every row of ``base`` is a query and is not its own neighbour. Missing
    neighbours (k larger than the collection) have index -1 and similarity -inf.
    """
    faiss = _faiss()
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
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(min(max(16, 4 * np.sqrt(n)), n // 39))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = base[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
        index.cp.niter = 10
        index.cp.seed = seed
        index.train(sample)
        index.nprobe = max(8, nlist // 32)
    index.add(base)
    sims, ids = index.search(q, kk)
    if self_search:
        sims, ids = _drop_self(sims, ids)
    out_s = np.full((len(q), k), -np.inf, np.float32)
    out_i = np.full((len(q), k), -1, np.int64)
    m = min(k, ids.shape[1])
    out_s[:, :m], out_i[:, :m] = sims[:, :m], ids[:, :m]
    out_s[out_i < 0] = -np.inf
    return out_s, out_i


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
    out = {}
    for i in range(len(ids)):
        for s, j in zip(sims[i], ids[i]):
            if j < 0 or s < threshold:
                break
            a, b = (i, int(j)) if i < j else (int(j), i)
            out[(a, b)] = max(out.get((a, b), -1.0), float(s))
    return sorted((a, b, s) for (a, b), s in out.items())
