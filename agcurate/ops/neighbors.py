"""Nearest neighbours over L2-normalised vectors (cosine = inner product), shared by every operation.

Up to ``EXACT_LIMIT`` items: exact search in blocks (faiss flat index, BLAS). Beyond: an ``AnnIndex``
(faiss: PCA to ``APPROX_DIMS`` dimensions, IVF cells, 8-bit scalar-quantised codes of the PCA
vectors, ~140 bytes per vector) proposes a shortlist of ``SHORTLIST`` x k candidates per query, and
the shortlist is re-scored exactly with the full vectors, so every similarity returned is exact; only
a neighbour missing from the shortlist can be missed (``benchmarks/knn_scale.py`` measures recall@10
against exact search at 100k and 1M resampled real vectors).
The index is built here on the fly, or given (``index=``) already trained and filled: the store keeps
one beside its parts (``agcurate.embedding.ann_index``) and attaches it to the vectors it loads
(``attach_index``), so every op that calls ``knn`` on those vectors uses it without rebuilding.
Indexes trained once (``AnnIndex.train``) and filled separately (``AnnIndex.empty_copy``, ``add``)
merge into one (``AnnIndex.merge``): how a collection too large for one machine's memory is indexed
shard by shard.
"""

from __future__ import annotations

import weakref

import numpy as np

EXACT_LIMIT = 20_000
APPROX_DIMS = 128       # PCA size for the approximate index: at 200k resampled real vectors, the exact
                        # top-40 by L2 in PCA-128 space holds 99.8% of the true top-10
CODES = "SQ8"           # faiss code of the PCA vectors in the cells: 8 bits per dimension. 4-bit fast-scan
                        # PQ (PQ64x4fs, 32 bytes) lost neighbours in dense neighbourhoods: recall@10 0.90
                        # at 1M even with a 16 x k shortlist; SQ8 keeps the PCA ranking
SHORTLIST = 5           # candidates per wanted neighbour, re-scored with the full vectors ...
MIN_SHORTLIST = 48      # ... and at least this many
NPROBE = 8              # IVF cells searched per query. 1M resampled real vectors (knn_scale.py --sweep):
                        # recall@10 0.995 / 0.998 / 0.999 with 3 / 4 / 5 x (k+1) candidates and 8 probes,
                        # the same with 16 probes at 1.4-1.6x the CPU time
TRAIN_PER_LIST = 40     # k-means training points per IVF cell (faiss asks for 39) ...
MAX_TRAIN = 262_144     # ... up to this many (k-means of 12,649 cells for 10M on 506k points took too long)
MIN_PER_LIST = 16       # ... so at least this many per cell in the largest indexes
MIN_TRAIN = 1024        # fewer training vectors: no PCA (cells hold the plain vectors)
QUERY_BLOCK = 65_536    # queries searched and re-ranked at a time (bounds memory at 1M+ items)
ADD_BLOCK = 131_072     # vectors compressed and added at a time


def _faiss():
    import faiss

    return faiss


def ivf_lists(n: int) -> int:
    """IVF cells for about ``n`` vectors: ~4 sqrt(n) (cells of ~250 at 1M), at least 16."""
    return int(max(16, min(4 * np.sqrt(max(n, 1)), max(16, n // TRAIN_PER_LIST))))


class AnnIndex:
    """A trained faiss index over compressed copies of unit vectors (ids: the order they were added).

    It only proposes candidates (``shortlist``); ``knn`` re-ranks them exactly with the full vectors.
    Pure: trained, grown, searched and (de)serialised in memory. ``rows`` maps index ids to rows of
    the vectors being searched (``-1``: not among them, never proposed); None means id = row.
    """

    def __init__(self, index, trained_for: int, rows: np.ndarray | None = None):
        self.index = index
        self.trained_for = trained_for
        self.rows = rows

    @classmethod
    def train(cls, sample: np.ndarray, expected: int | None = None, seed: int = 0) -> "AnnIndex":
        """An empty index trained on ``sample`` (a random sample of the collection), sized for
        ``expected`` vectors (default: the sample's size)."""
        faiss = _faiss()
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        d = sample.shape[1]
        expected = max(expected or len(sample), len(sample))
        per_list = TRAIN_PER_LIST if len(sample) < MAX_TRAIN else MIN_PER_LIST
        nlist = min(ivf_lists(expected), max(1, len(sample) // per_list))
        dims = min(d, APPROX_DIMS)
        if len(sample) < MIN_TRAIN:  # too few to learn a PCA: plain vectors in the cells
            spec = f"IVF{nlist},Flat"
        else:
            spec = (f"PCA{dims}," if dims < d else "") + f"IVF{nlist},{CODES}"
        # L2 on unit vectors ranks like the inner product, and PCA may centre the data under L2
        index = faiss.index_factory(d, spec, faiss.METRIC_L2)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.seed = seed
        ivf.cp.niter = 10
        ivf.cp.max_points_per_centroid = TRAIN_PER_LIST
        ivf.cp.min_points_per_centroid = MIN_PER_LIST
        ivf.nprobe = min(nlist, NPROBE)
        # one thread: training is many small parallel loops (k-means iterations) whose OpenMP threads
        # spin-wait; on 2 busy cores that made it 10-30x slower than one thread
        prev = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            index.train(sample)
        finally:
            faiss.omp_set_num_threads(prev)
        return cls(index, expected)

    @staticmethod
    def wanted(n: int) -> bool:
        """Whether ``knn`` over ``n`` vectors searches approximately by default (else exactly)."""
        return n > EXACT_LIMIT

    @staticmethod
    def training_size(n: int) -> int:
        """How many sampled vectors train an index for ``n``."""
        return min(TRAIN_PER_LIST * ivf_lists(n), MAX_TRAIN)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        """Append vectors (their ids continue from ``len(self)``)."""
        for s in range(0, len(vectors), ADD_BLOCK):
            self.index.add(np.ascontiguousarray(vectors[s:s + ADD_BLOCK], dtype=np.float32))

    def empty_copy(self) -> "AnnIndex":
        """The same trained index holding no vectors: a shard to fill (``add``) and ``merge`` back."""
        faiss = _faiss()
        copy = faiss.clone_index(self.index)
        copy.reset()
        return AnnIndex(copy, self.trained_for)

    def merge(self, other: "AnnIndex") -> None:
        """Move the vectors of ``other`` (an ``empty_copy`` of the same trained index, then filled)
        into this one; their ids continue from ``len(self)``, in ``other``'s order. ``other`` is left empty."""
        faiss = _faiss()
        mine, theirs = _projection(self.index), _projection(other.index)
        if len(mine) != len(theirs) or not all(np.array_equal(a, b) for a, b in zip(mine, theirs)):
            raise ValueError("these indexes were trained apart (another PCA): they cannot be merged")
        ivf = faiss.extract_index_ivf(self.index)
        ivf.merge_from(faiss.extract_index_ivf(other.index), len(self))  # faiss checks the cells match
        self.index.ntotal, other.index.ntotal = ivf.ntotal, 0  # a PCA wrapper counts for itself

    def describe(self) -> str:
        """What the index is, in words (for benchmarks and logs)."""
        faiss = _faiss()
        ivf = faiss.downcast_index(faiss.extract_index_ivf(self.index))
        pca = f"PCA-{ivf.d}, " if ivf.d != self.dim else ""
        codes = type(ivf).__name__.removeprefix("IndexIVF")
        return f"{pca}IVF {ivf.nlist} cells (nprobe {ivf.nprobe}), {codes} codes of {ivf.code_size} bytes"

    def bind(self, rows: np.ndarray) -> "AnnIndex":
        """The same index searching only the ids with ``rows[id] >= 0``, reporting them as rows."""
        return AnnIndex(self.index, self.trained_for, np.asarray(rows, np.int64))

    def shortlist(self, queries: np.ndarray, n: int) -> np.ndarray:
        """(len(queries), n) candidate rows per query, best first by compressed distance (-1: none)."""
        faiss = _faiss()
        q = np.ascontiguousarray(queries, dtype=np.float32)
        n = int(min(n, len(self) if self.rows is None else int((self.rows >= 0).sum())))
        if n <= 0:
            return np.full((len(q), 0), -1, np.int64)
        params = None
        if self.rows is not None:
            ok = self.rows >= 0
            bits = np.packbits(ok, bitorder="little")
            sel = faiss.IDSelectorBitmap(len(ok), faiss.swig_ptr(bits))
            inner = faiss.SearchParametersIVF(sel=sel, nprobe=faiss.extract_index_ivf(self.index).nprobe)
            params = faiss.SearchParametersPreTransform(index_params=inner) if isinstance(
                self.index, faiss.IndexPreTransform) else inner
        _, ids = self.index.search(q, n, params=params)  # ``bits`` and ``sel`` live until here
        if self.rows is not None:
            ids = np.where(ids >= 0, self.rows[np.maximum(ids, 0)], -1)
        return ids

    def to_bytes(self) -> np.ndarray:
        """The index as a uint8 array (faiss serialisation), for ``from_bytes``."""
        return _faiss().serialize_index(self.index)

    @classmethod
    def from_bytes(cls, data: np.ndarray, trained_for: int) -> "AnnIndex":
        return cls(_faiss().deserialize_index(np.asarray(data, np.uint8)), trained_for)


def _projection(index) -> list[np.ndarray]:
    """The matrices and offsets of the linear transforms (PCA) an index applies before its cells."""
    faiss = _faiss()
    if not isinstance(index, faiss.IndexPreTransform):
        return []
    out = []
    for i in range(index.chain.size()):
        t = faiss.downcast_VectorTransform(index.chain.at(i))
        out += [faiss.vector_to_array(t.A), faiss.vector_to_array(t.b)]
    return out


_ATTACHED: dict[int, tuple[weakref.ref, AnnIndex]] = {}


def attach_index(vectors: np.ndarray, index: AnnIndex) -> None:
    """Let ``knn`` on this very array (not a copy or a slice) use ``index``, whose ids (or ``rows``)
    are the array's rows; dropped when the array is garbage-collected."""
    key = id(vectors)
    _ATTACHED[key] = (weakref.ref(vectors, lambda _r, key=key: _ATTACHED.pop(key, None)), index)


def attached_index(vectors) -> AnnIndex | None:
    """The index attached to this array by ``attach_index``, if any."""
    hit = _ATTACHED.get(id(vectors))
    return hit[1] if hit is not None and hit[0]() is vectors else None


def knn(base: np.ndarray, k: int, queries: np.ndarray | None = None, *, exact: bool | None = None,
        seed: int = 0, index: AnnIndex | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar rows of ``base`` for each query: (similarities, indices), best first.

    With ``queries=None`` every row of ``base`` is a query and is not its own neighbour. Missing
    neighbours (k larger than the collection) have index -1 and similarity -inf. ``exact`` forces
    (True) or forbids (False) the exact search; by default it is used up to ``EXACT_LIMIT`` items.
    The approximate search uses ``index`` (or the one attached to ``base``, see ``attach_index``)
    when it covers ``base``, else builds one.
    """
    if index is None:
        index = attached_index(base)
    base = np.ascontiguousarray(base, dtype=np.float32)
    self_search = queries is None
    q = base if self_search else np.ascontiguousarray(queries, dtype=np.float32)
    n, d = base.shape
    kk = min(n, k + (1 if self_search else 0))
    if kk <= 0 or len(q) == 0:
        return np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
    if exact is None:
        exact = not AnnIndex.wanted(n)
    if exact:
        faiss = _faiss()
        index = faiss.IndexFlatIP(d)
        index.add(base)
        sims, ids = index.search(q, kk)
    else:
        sims, ids = _approx_search(base, q, kk, seed, index)
    if self_search:
        sims, ids = _drop_self(sims, ids)
    out_s = np.full((len(q), k), -np.inf, np.float32)
    out_i = np.full((len(q), k), -1, np.int64)
    m = min(k, ids.shape[1])
    out_s[:, :m], out_i[:, :m] = sims[:, :m], ids[:, :m]
    out_s[out_i < 0] = -np.inf
    return out_s, out_i


def _approx_search(base: np.ndarray, q: np.ndarray, kk: int, seed: int,
                   index: AnnIndex | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shortlists from ``index`` (built from ``base`` when None or not covering it), re-ranked exactly."""
    n = len(base)
    covers = index is not None and (len(index) == n if index.rows is None else int(index.rows.max(initial=-1)) < n)
    if not covers:
        rng = np.random.default_rng(seed)
        sample = base[np.sort(rng.choice(n, size=min(n, AnnIndex.training_size(n)), replace=False))]
        index = AnnIndex.train(sample, n, seed)
        del sample
        index.add(base)
    cand = min(n, max(SHORTLIST * kk, MIN_SHORTLIST))
    sims = np.empty((len(q), kk), np.float32)
    ids = np.empty((len(q), kk), np.int64)
    for s in range(0, len(q), QUERY_BLOCK):
        qb = q[s:s + QUERY_BLOCK]
        sims[s:s + len(qb)], ids[s:s + len(qb)] = rerank(base, qb, index.shortlist(qb, cand), kk)
    return sims, ids


def rerank(base: np.ndarray, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner products of each query with its candidate rows of ``base`` (-1: none), best ``k``
    first (faiss's gather-free kernel: ~15x numpy's einsum over gathered rows)."""
    faiss = _faiss()
    base = np.ascontiguousarray(base, dtype=np.float32)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    cand = np.ascontiguousarray(candidates, dtype=np.int64)
    sims = np.full(cand.shape, -np.inf, np.float32)  # the kernel skips ids < 0: they stay -inf
    if cand.size:
        faiss.fvec_inner_products_by_idx(faiss.swig_ptr(sims), faiss.swig_ptr(q), faiss.swig_ptr(base),
                                         faiss.swig_ptr(cand), base.shape[1], len(q), cand.shape[1])
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    out_s, out_i = np.take_along_axis(sims, order, 1), np.take_along_axis(cand, order, 1)
    if out_s.shape[1] < k:
        pad = k - out_s.shape[1]
        out_s = np.pad(out_s, ((0, 0), (0, pad)), constant_values=-np.inf)
        out_i = np.pad(out_i, ((0, 0), (0, pad)), constant_values=-1)
    out_i[~np.isfinite(out_s)] = -1
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


def pairs_above(vectors: np.ndarray, threshold: float, k: int = 32, *,
                index: AnnIndex | None = None) -> list[tuple[int, int, float]]:
    """All pairs (i < j) whose cosine similarity is at least ``threshold``, among each item's k nearest."""
    sims, ids = knn(vectors, k, index=index)
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
