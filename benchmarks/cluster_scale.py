"""Clustering at scale: time and peak memory of ``agcurate.ops.cluster.cluster`` on synthetic vectors.

    PYTHONPATH=. python benchmarks/cluster_scale.py [--n 100000] [--dim 1280] [--centres 50]

The vectors are ``--centres`` Gaussian clusters (sizes drawn unevenly) on the unit sphere, L2-normalised
like real embeddings; the bar is 100k items in under 3 minutes on a 2-core machine. Prints the time of
each stage, peak memory (resident set, MiB) and how well the known clusters were recovered (ARI).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synthetic(n: int, dim: int, centres: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors (float32) and their true cluster ids."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(centres, 2.0))
    labels = rng.choice(centres, size=n, p=weights)
    c = rng.normal(size=(centres, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = rng.standard_normal(size=(n, dim), dtype=np.float32)
    spread = np.where(rng.random(n) < 0.02, 1.2, 0.6).astype(np.float32) / np.float32(np.sqrt(dim))
    x *= spread[:, None]                      # 2% of the items much farther from their centre
    x += c[labels]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, labels


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--centres", type=int, default=50)
    ap.add_argument("--reduction", default="umap")
    args = ap.parse_args(argv)

    from sklearn.metrics import adjusted_rand_score

    import agcurate.ops.cluster as oc

    x, y = synthetic(args.n, args.dim, args.centres)
    print(f"{args.n:,} vectors x {args.dim} ({x.nbytes / 2**20:,.0f} MiB), {args.centres} true clusters; "
          f"peak memory before clustering {peak_mib():,.0f} MiB", flush=True)
    # stage timings: wrap the library's steps without changing them
    stages: dict[str, float] = {}
    for name in ("pca_reduce", "umap_reduce", "_hdbscan", "_place_rest", "_centrality"):
        fn = getattr(oc, name)

        def timed(*a, _fn=fn, _name=name, **kw):
            t = time.perf_counter()
            try:
                return _fn(*a, **kw)
            finally:
                key = _name if _name != "umap_reduce" else f"umap_reduce({a[1]}-D)"
                stages[key] = stages.get(key, 0.0) + time.perf_counter() - t
        setattr(oc, name, timed)
    t0, c0 = time.perf_counter(), time.process_time()
    table = oc.cluster(x, reduction=args.reduction)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = oc.summary(table)
    load = os.getloadavg()[0]
    print(f"clustered in {total:,.1f} s wall (bar: 180 s), {cpu:,.1f} s CPU; peak memory {peak_mib():,.0f} MiB; "
          f"load average {load:.1f} on {os.cpu_count()} cores")
    for k, v in stages.items():
        print(f"  {k:22} {v:7.1f} s")
    p = table.attrs["params"]
    print(f"min cluster size {p.min_cluster_size}, UMAP fitted on {p.sample_size:,} items; "
          f"{s['clusters']} clusters, noise {s['noise_share']:.1%}, "
          f"ARI vs truth {adjusted_rand_score(y, table['cluster']):.3f}")


if __name__ == "__main__":
    main()
