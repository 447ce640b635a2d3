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


def run(v: np.ndarray, planted: np.ndarray, k: int, sample: int = 500, exact: bool | None = None) -> None:
    from agcurate.ops import neighbors

    n, d = v.shape
    approx = neighbors.AnnIndex.wanted(n) if exact is None else not exact
    load0 = os.getloadavg()[0]
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        index = None
        if approx:
            rng = np.random.default_rng(0)
            size = min(n, neighbors.AnnIndex.training_size(n))
            index = neighbors.AnnIndex.train(v[np.sort(rng.choice(n, size, replace=False))], n)
            t_train = time.perf_counter() - t0
            index.add(v)
        t_build = time.perf_counter() - t0
        t1, c1 = time.perf_counter(), time.process_time()
        sims, ids = neighbors.knn(v, k, exact=not approx, index=index)
        t_search, cpu = time.perf_counter() - t1, time.process_time() - c1
    found = np.mean([(ids[a] == b).any() for a, b in planted]) if len(planted) else float("nan")
    rng = np.random.default_rng(1)
    qs = rng.choice(n, size=sample, replace=False)
    ex = v[qs] @ v.T
    ex[np.arange(sample), qs] = -np.inf
    top = np.argpartition(-ex, k, axis=1)[:, :k]
    recall = np.mean([len(set(top[i]) & set(ids[q])) / k for i, q in enumerate(qs)])
    if approx:
        ivf = neighbors._faiss().extract_index_ivf(index.index)
        mode = (f"ANN: {type(index.index).__name__} PCA-{min(d, neighbors.APPROX_DIMS)}, IVF {ivf.nlist} cells "
                f"(nprobe {ivf.nprobe}), 4-bit PQ fast-scan, exact re-rank of {neighbors.SHORTLIST}x{k + 1} candidates")
        size_line = (f"  build {t_build:7.1f} s (train {t_train:.1f} s on {size:,} vectors, add {t_build - t_train:.1f} s)"
                     f"   index {len(index.to_bytes()) / n:.0f} bytes/vector")
    else:
        mode, size_line = "exact (faiss flat)", None
    print(f"n={n:>9,} d={d} k={k}  {mode}")
    if size_line:
        print(size_line)
    print(f"  all-pairs kNN {t_search:7.1f} s wall, {cpu:.1f} s CPU (load average {load0:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after)")
    print(f"  peak memory +{(mem.peak - mem.start) / 2**30:.2f} GiB over the {v.nbytes / 2**30:.2f} GiB of vectors "
          f"(process peak {mem.peak / 2**30:.2f} GiB)")
    print(f"  planted near-copies found: {found:.3f}   recall@{k} vs exact on {sample} queries: {recall:.3f}",
          flush=True)


def sweep(v: np.ndarray, k: int, queries: int = 20_000, sample: int = 500) -> None:
    """Build the index once, then per (nprobe, shortlist) search ``queries`` random rows against all:
    recall@k on ``sample`` of them vs exact, and the all-pairs time projected as time x n / queries."""
    from agcurate.ops import neighbors

    n = len(v)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    index = neighbors.AnnIndex.train(v[np.sort(rng.choice(n, min(n, neighbors.AnnIndex.training_size(n)), replace=False))], n)
    index.add(v)
    print(f"n={n:,}: built in {time.perf_counter() - t0:.1f} s, {len(index.to_bytes()) / n:.0f} bytes/vector")
    qs = np.sort(np.random.default_rng(1).choice(n, queries, replace=False))
    ex = v[qs[:sample]] @ v.T
    ex[np.arange(sample), qs[:sample]] = -np.inf
    top = np.argpartition(-ex, k, axis=1)[:, :k]
    del ex
    ivf = neighbors._faiss().extract_index_ivf(index.index)
    for nprobe in (32, 64, 128):
        for short in (8, 16):
            ivf.nprobe = nprobe
            old = neighbors.SHORTLIST
            neighbors.SHORTLIST = short
            t, c = time.perf_counter(), time.process_time()
            _, ids = neighbors.knn(v, k + 1, queries=v[qs], exact=False, index=index)
            dt, cpu = time.perf_counter() - t, time.process_time() - c
            neighbors.SHORTLIST = old
            got = [set(row[row != q][:k]) for row, q in zip(ids[:sample], qs[:sample])]
            recall = np.mean([len(g & set(t_)) / k for g, t_ in zip(got, top)])
            print(f"  nprobe {nprobe:3d} shortlist {short:2d}x: recall@{k} {recall:.3f}   {queries:,} queries "
                  f"{dt:6.1f} s wall {cpu:6.1f} s CPU -> all-pairs projected {dt * n / queries:6.0f} s wall, "
                  f"{cpu * n / queries:6.0f} s CPU (load average {os.getloadavg()[0]:.1f})", flush=True)


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
        if args.sweep:
            sweep(v, args.k)
        else:
            run(v, planted, args.k, exact=True if args.exact else None)
        del v


if __name__ == "__main__":
    main()
