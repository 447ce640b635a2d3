"""All-pairs kNN at scale: build time, search time, recall@k, bytes per vector and peak memory of
``agcurate.ops.neighbors`` (the ANN index the store keeps, exact re-ranking of its shortlists).

Two kinds of vectors, both with 1% of rows planted as near-copies of others (cosine ~0.9, what dedup
must find):
- ``resampled`` (default): real lite0 embeddings of two shared data sets (EuroSAT, rice leaves; 2,040
  images, embedded once into a cache store), resampled SMOTE-style: each vector is a random point
  between a real embedding and one of its 10 real neighbours, plus noise shaped like the real
  covariance. Neighbourhoods look like real ones.
- ``random``: 1280-d unit Gaussian vectors, the worst case for any index (no structure at all).

    PYTHONPATH=. nice python benchmarks/knn_scale.py                     # 100k, resampled
    PYTHONPATH=. nice python benchmarks/knn_scale.py --n 1000000         # 1M (about 5 GB of vectors)
    PYTHONPATH=. nice python benchmarks/knn_scale.py --data random
    PYTHONPATH=. nice python benchmarks/knn_scale.py --n 1000000 --sweep  # nprobe x shortlist grid
    PYTHONPATH=. nice python benchmarks/knn_scale.py --n 1000000 --shard-of 10000000  # one shard of 10M, projected
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss() -> int:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


class PeakMemory:
    """Samples the process's resident memory every 20 ms; ``peak`` is the highest seen."""

    def __enter__(self):
        self.peak = self.start = rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss())


def make_vectors(n: int, d: int, seed: int = 0, planted: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors, generated in chunks (float32); returns them and (copy, original) planted pairs."""
    rng = np.random.default_rng(seed)
    v = np.empty((n, d), np.float32)
    for s in range(0, n, 50_000):
        blk = rng.standard_normal((min(50_000, n - s), d), dtype=np.float32)
        blk /= np.linalg.norm(blk, axis=1, keepdims=True)
        v[s:s + len(blk)] = blk
    return v, plant(v, rng, planted)


REAL_SETS = ("eurosat-rgb/images", "rice-leaf")


def real_vectors(cache: Path) -> np.ndarray:
    """lite0 embeddings of the shared EuroSAT and rice-leaf images (embedded once into ``cache``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import shared_data_root

    import agcurate

    root = shared_data_root()
    if root is None:
        raise SystemExit("shared data not found (set AGCURATE_SHARED_DATA); use --data random")
    emb = agcurate.embed([root / s for s in REAL_SETS], store=cache, progress=False, remember=False)
    return emb.vectors


def resampled(real: np.ndarray, n: int, seed: int = 0, planted: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors resampled from ``real`` (see the module docstring) with planted near-copies."""
    rng = np.random.default_rng(seed)
    sims = real @ real.T
    np.fill_diagonal(sims, -2)
    nb = np.argsort(-sims, axis=1)[:, :10]
    mu = real.mean(0)
    _, sv, vt = np.linalg.svd(real - mu, full_matrices=False)
    shape = (sv / np.sqrt(len(real)))[:, None] * vt  # noise with the real data's covariance
    d = real.shape[1]
    v = np.empty((n, d), np.float32)
    for s in range(0, n, 50_000):
        m = min(50_000, n - s)
        i = rng.integers(0, len(real), m)
        j = nb[i, rng.integers(0, nb.shape[1], m)]
        a = rng.random((m, 1), dtype=np.float32)
        x = a * real[i] + (1 - a) * real[j] + 0.15 * (rng.standard_normal((m, len(sv)), dtype=np.float32) @ shape)
        v[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return v, plant(v, rng, planted)


def plant(v: np.ndarray, rng: np.random.Generator, planted: float) -> np.ndarray:
    """Overwrite ``planted`` of the rows with near-copies (cosine ~0.9) of others; (copy, original) pairs."""
    n, d = v.shape
    m = int(n * planted)
    src = rng.choice(n // 2, size=m, replace=False)
    dst = n // 2 + rng.choice(n - n // 2, size=m, replace=False)
    noise = rng.standard_normal((m, d), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    cp = v[src] + 0.48 * noise
    v[dst] = cp / np.linalg.norm(cp, axis=1, keepdims=True)
    return np.stack([dst, src], axis=1)


def truth(v: np.ndarray, qs: np.ndarray, k: int) -> np.ndarray:
    """The exact k nearest rows of ``v`` (not themselves) for the rows ``qs``."""
    top = np.empty((len(qs), k), np.int64)
    for s in range(0, len(qs), 100):
        ex = v[qs[s:s + 100]] @ v.T
        ex[np.arange(len(ex)), qs[s:s + 100]] = -np.inf
        top[s:s + len(ex)] = np.argpartition(-ex, k, axis=1)[:, :k]
    return top


def recall_at(ids: np.ndarray, qs: np.ndarray, top: np.ndarray) -> float:
    """Mean share of each query's true neighbours ``top`` among its found ones ``ids`` (itself dropped)."""
    k = top.shape[1]
    return float(np.mean([len(set(row[row != q][:k]) & set(t)) / k for row, q, t in zip(ids, qs, top)]))


def build(v: np.ndarray, expected: int | None = None, sample: np.ndarray | None = None):
    """(index, train seconds, add seconds, train sample size): the index ``knn`` builds for ``v``,
    trained on a random sample of ``sample`` (default ``v``) sized for ``expected`` vectors (default
    ``len(v)``)."""
    from agcurate.ops import neighbors

    pool = v if sample is None else sample
    expected = expected or len(v)
    size = min(len(pool), neighbors.AnnIndex.training_size(expected))
    t0 = time.perf_counter()
    rows = np.sort(np.random.default_rng(0).choice(len(pool), size, replace=False))
    index = neighbors.AnnIndex.train(pool[rows], expected)
    t1 = time.perf_counter()
    index.add(v)
    return index, t1 - t0, time.perf_counter() - t1, size


def run(v: np.ndarray, planted: np.ndarray, k: int, sample: int = 500, exact: bool | None = None) -> None:
    from agcurate.ops import neighbors

    n, d = v.shape
    approx = neighbors.AnnIndex.wanted(n) if exact is None else not exact
    load0 = os.getloadavg()[0]
    with PeakMemory() as mem:
        c0 = time.process_time()
        index = None
        if approx:
            index, t_train, t_add, size = build(v)
        c_build = time.process_time() - c0
        t1, c1 = time.perf_counter(), time.process_time()
        sims, ids = neighbors.knn(v, k, exact=not approx, index=index)
        t_search, cpu = time.perf_counter() - t1, time.process_time() - c1
    load1 = os.getloadavg()[0]
    found = np.mean([(ids[a] == b).any() for a, b in planted]) if len(planted) else float("nan")
    qs = np.random.default_rng(1).choice(n, size=sample, replace=False)
    recall = recall_at(np.concatenate([qs[:, None], ids[qs]], 1), qs, truth(v, qs, k))
    if approx:
        short = min(n, max(neighbors.SHORTLIST * (k + 1), neighbors.MIN_SHORTLIST))
        mode = f"ANN: {index.describe()}, exact re-rank of {short} candidates"
        size_line = (f"  build {t_train + t_add:7.1f} s wall, {c_build:.1f} s CPU (train {t_train:.1f} s on {size:,} "
                     f"vectors, add {t_add:.1f} s)   index {len(index.to_bytes()) / n:.0f} bytes/vector")
    else:
        mode, size_line = "exact (faiss flat)", None
    print(f"n={n:>9,} d={d} k={k}  {mode}")
    if size_line:
        print(size_line)
    print(f"  all-pairs kNN {t_search:7.1f} s wall, {cpu:.1f} s CPU (load average {load0:.1f} before, "
          f"{load1:.1f} after)")
    print(f"  peak memory +{(mem.peak - mem.start) / 2**30:.2f} GiB over the {v.nbytes / 2**30:.2f} GiB of vectors "
          f"(process peak {mem.peak / 2**30:.2f} GiB)")
    print(f"  planted near-copies found: {found:.3f}   recall@{k} vs exact on {sample} queries: {recall:.3f}",
          flush=True)


def sweep(v: np.ndarray, k: int, queries: int = 20_000, sample: int = 500) -> None:
    """Build the index once, then per (nprobe, shortlist) search ``queries`` random rows against all:
    recall@k on ``sample`` of them vs exact, and the all-pairs time projected as time x n / queries."""
    from agcurate.ops import neighbors

    n = len(v)
    index, t_train, t_add, _ = build(v)
    print(f"n={n:,}: {index.describe()}; built in {t_train + t_add:.1f} s, {len(index.to_bytes()) / n:.0f} bytes/vector")
    qs = np.sort(np.random.default_rng(1).choice(n, queries, replace=False))
    top = truth(v, qs[:sample], k)
    ivf = neighbors._faiss().extract_index_ivf(index.index)
    old = ivf.nprobe, neighbors.SHORTLIST, neighbors.MIN_SHORTLIST
    for nprobe in (8, 16):
        for short in (3, 4, 5, 8):
            ivf.nprobe, neighbors.SHORTLIST, neighbors.MIN_SHORTLIST = nprobe, short, 0
            t, c = time.perf_counter(), time.process_time()
            _, ids = neighbors.knn(v, k + 1, queries=v[qs], exact=False, index=index)
            dt, cpu = time.perf_counter() - t, time.process_time() - c
            print(f"  nprobe {nprobe:3d} shortlist {short:2d} x (k+1): recall@{k} {recall_at(ids[:sample], qs, top):.3f}   "
                  f"{queries:,} queries {dt:6.1f} s wall {cpu:6.1f} s CPU -> all-pairs projected {dt * n / queries:6.0f} s "
                  f"wall, {cpu * n / queries:6.0f} s CPU (load average {os.getloadavg()[0]:.1f})", flush=True)
    ivf.nprobe, neighbors.SHORTLIST, neighbors.MIN_SHORTLIST = old


def shard_projection(v: np.ndarray, total: int, k: int, sample: int = 500, queries: int = 20_000) -> None:
    """``v`` is one shard of a collection of ``total`` vectors: train the index once for ``total``
    (on a sample of this shard), fill the shard as two halves merged into one (how shards are
    built in parallel and merged), search all of its rows, and project build and all-pairs time to
    ``total``: ``queries`` rows searched with total/n times the probes scan as many codes each as a query
    of the merged index (its cells hold total/n times the shard's codes); the re-rank of each query's
    shortlist (vectors in memory) costs the same. The projection is that time x total / ``queries``."""
    from agcurate.ops import neighbors

    faiss = neighbors._faiss()
    n = len(v)
    shards = total / n
    c0 = time.process_time()
    trained, t_train, _, size = build(v[:0], expected=total, sample=v)
    t0 = time.perf_counter()
    index, other = trained.empty_copy(), trained.empty_copy()
    index.add(v[: n // 2])
    other.add(v[n // 2:])
    t_add = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.merge(other)
    t_merge = time.perf_counter() - t0
    c_build = time.process_time() - c0
    per_vec = len(index.to_bytes()) / n
    print(f"shard of {n:,} for {total:,} vectors ({shards:g} shards): {index.describe()}")
    print(f"  train {t_train:.1f} s on {size:,} vectors (once for all shards), add {t_add:.1f} s (two halves), "
          f"merge {t_merge:.2f} s; {c_build:.1f} s CPU; {per_vec:.0f} bytes/vector")
    # all-pairs within the shard (its rows against its part of the cells), re-ranked exactly
    short = min(n, max(neighbors.SHORTLIST * (k + 1), neighbors.MIN_SHORTLIST))
    load0 = os.getloadavg()[0]
    t, c = time.perf_counter(), time.process_time()
    _, ids = neighbors.knn(v, k + 1, queries=v, exact=False, index=index)
    t_all, c_all = time.perf_counter() - t, time.process_time() - c
    qs = np.random.default_rng(1).choice(n, size=sample, replace=False)
    recall = recall_at(ids[qs], qs, truth(v, qs, k))
    print(f"  all-pairs within the shard: {t_all:.1f} s wall, {c_all:.1f} s CPU (load average {load0:.1f}); "
          f"recall@{k} vs exact {recall:.3f}")
    # the merged index's cells hold ``shards`` times the codes of this shard's: probing ``shards`` times
    # as many of this shard's cells scans as many codes per query as the merged index will
    ivf = faiss.extract_index_ivf(index.index)
    sub = v[np.sort(np.random.default_rng(2).choice(n, min(n, queries), replace=False))]
    nprobe = ivf.nprobe
    ivf.nprobe = int(min(ivf.nlist, round(nprobe * shards)))
    t, c = time.perf_counter(), time.process_time()
    neighbors.knn(v, k + 1, queries=sub, exact=False, index=index)
    t_q, c_q = time.perf_counter() - t, time.process_time() - c
    ivf.nprobe = nprobe
    gib = 2**30
    print(f"  {len(sub):,} queries probing {round(nprobe * shards)} of the shard's cells (the codes a query of the merged "
          f"index scans): {t_q:.1f} s wall, {c_q:.1f} s CPU")
    print(f"  projection for {total:,}: build {t_train + shards * t_add:.0f} s (train once + {shards:g} x add; shards "
          f"can be added in parallel and merged, {t_merge:.2f} s per merge here); all-pairs "
          f"{t_q * total / len(sub):.0f} s wall, {c_q * total / len(sub):.0f} s CPU ({total:,} such queries); "
          f"index {per_vec * total / gib:.1f} GiB; vectors {total * v.shape[1] * 4 / gib:.1f} GiB float32", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="*", default=[100_000])
    ap.add_argument("--million", action="store_true", help="also run 1,000,000 vectors")
    ap.add_argument("--data", choices=("resampled", "random"), default="resampled")
    ap.add_argument("--dim", type=int, default=1280, help="random data only")
    ap.add_argument("--exact", action="store_true", help="force exact search (the reference)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "agcurate-knn-bench-store")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--sweep", action="store_true", help="nprobe x shortlist grid on a sample of queries")
    ap.add_argument("--shard-of", type=int, metavar="TOTAL",
                    help="treat each --n as one shard of TOTAL vectors: build, merge, search it, project to TOTAL")
    args = ap.parse_args()
    import faiss

    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} CPUs, "
          f"data: {args.data}")
    real = real_vectors(args.cache) if args.data == "resampled" else None
    for n in args.n + ([1_000_000] if args.million else []):
        if real is not None:
            v, planted = resampled(real, n)
        else:
            v, planted = make_vectors(n, args.dim)
        if args.shard_of:
            shard_projection(v, args.shard_of, args.k)
        elif args.sweep:
            sweep(v, args.k)
        else:
            run(v, planted, args.k, exact=True if args.exact else None)
        del v


if __name__ == "__main__":
    main()
