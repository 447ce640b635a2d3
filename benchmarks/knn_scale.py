"""All-pairs kNN at scale: time and peak memory of ``agcurate.ops.neighbors.knn`` on random unit vectors.

Random 1280-d unit vectors are the worst case for an approximate index (no structure), so 1% of
rows are planted as near-copies of other rows (cosine ~0.9): the figure that matters for dedup is
whether those are found. Recall@k against exact search is measured on a sample of queries.

    PYTHONPATH=. python benchmarks/knn_scale.py            # 100k
    PYTHONPATH=. python benchmarks/knn_scale.py --million  # also 1M (about 5 GB of vectors)
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
    m = int(n * planted)
    src = rng.choice(n // 2, size=m, replace=False)
    dst = n // 2 + rng.choice(n - n // 2, size=m, replace=False)
    noise = rng.standard_normal((m, d), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    cp = v[src] + 0.48 * noise  # cosine ~0.9 to the original
    v[dst] = cp / np.linalg.norm(cp, axis=1, keepdims=True)
    return v, np.stack([dst, src], axis=1)


def run(n: int, d: int, k: int, sample: int = 200) -> None:
    from agcurate.ops import neighbors

    v, planted = make_vectors(n, d)
    mode = "exact" if n <= neighbors.EXACT_LIMIT else (
        f"PCA-{neighbors.APPROX_DIMS} + IVF (nprobe {neighbors.NPROBE}) + exact re-rank x{neighbors.RERANK}")
    with PeakMemory() as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        sims, ids = neighbors.knn(v, k)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    found = np.mean([(ids[a] == b).any() for a, b in planted])
    rng = np.random.default_rng(1)
    qs = rng.choice(n, size=sample, replace=False)
    exact = v[qs] @ v.T
    exact[np.arange(sample), qs] = -np.inf
    top = np.argsort(-exact, axis=1)[:, :k]
    recall = np.mean([len(set(top[i]) & set(ids[q])) / k for i, q in enumerate(qs)])
    print(f"n={n:>9,} d={d} k={k}  {mode}")
    print(f"  time {dt:7.1f} s wall, {cpu:.1f} s CPU (load average {os.getloadavg()[0]:.1f})   peak memory +{(mem.peak - mem.start) / 2**30:.2f} GiB over the "
          f"{v.nbytes / 2**30:.2f} GiB of vectors (process peak {mem.peak / 2**30:.2f} GiB)")
    print(f"  planted near-copies found: {found:.3f}   recall@{k} vs exact on {sample} queries: {recall:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="*", default=[100_000])
    ap.add_argument("--million", action="store_true", help="also run 1,000,000 vectors")
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args()
    import faiss

    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} CPUs")
    for n in args.n + ([1_000_000] if args.million else []):
        run(n, args.dim, args.k)


if __name__ == "__main__":
    main()
