"""Speed of outlier scoring: N items (default 100,000) read from an embedding store and scored.

Builds a store of synthetic embeddings once (clustered vectors in a 64-d latent space projected to
the encoder's 1280 dimensions, plus 2% planted outliers, with brightness/saturation/sharpness/nodata
signals and the quality measures), then times: reading the store, and ``score_outliers`` at default
settings (quality issues + novelty at three neighbourhood sizes + robust Mahalanobis).

Usage: python benchmarks/outliers_speed.py [--n 100000] [--dim 1280] [--store DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agcurate.ops.outliers import score_outliers  # noqa: E402
from agcurate.embedding.store import EmbeddingStore  # noqa: E402


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = 64
    centres = rng.normal(size=(50, latent)).astype(np.float32)
    z = centres[rng.integers(0, 50, n)] + 0.6 * rng.normal(size=(n, latent)).astype(np.float32)
    planted = rng.random(n) < 0.02
    z[planted] = rng.normal(size=(planted.sum(), latent)).astype(np.float32) * 2.5
    proj = rng.normal(size=(latent, dim)).astype(np.float32) / np.sqrt(latent)
    v = z @ proj + 0.05 * rng.normal(size=(n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v, planted


def build_store(root: Path, n: int, dim: int) -> EmbeddingStore:
    st = EmbeddingStore(root, f"bench-{dim}", f"bench-{dim}", dim)
    if st.parts():
        return st
    v, planted = synthetic(n, dim)
    rng = np.random.default_rng(1)
    for start in range(0, n, 20_000):
        stop = min(n, start + 20_000)
        rows = [{"key": f"/bench/img_{i:06d}.jpg", "path": f"/bench/img_{i:06d}.jpg", "kind": "image",
                 "fingerprint": "x", "brightness": float(rng.normal(0.9 if planted[i] else 0.4, 0.05)),
                 "saturation": float(rng.normal(0.3, 0.05)), "sharpness": float(rng.lognormal(5, 0.5)),
                 "nodata": 0.0, "white_share": float(rng.beta(1, 30)), "clipped": float(rng.beta(1, 50)),
                 "dark_channel": float(rng.uniform(0.1, 0.3)), "contrast": float(rng.uniform(0.1, 0.3)),
                 "blur": float(rng.normal(0.25, 0.05))} for i in range(start, stop)]
        st.append(rows, v[start:stop])
    return st


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--store", default=str(Path(tempfile.gettempdir()) / "agcurate-bench-outliers-speed"))
    args = ap.parse_args()
    root = Path(args.store) / f"n{args.n}-q2"
    t0 = time.perf_counter()
    st = build_store(root, args.n, args.dim)
    print(f"store ready ({args.n:,} items, dim {args.dim}) in {time.perf_counter() - t0:.1f} s")
    t0, c0 = time.perf_counter(), time.process_time()
    stored = st.load()
    t_load, c_load = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    res = score_outliers(stored.vectors, stored.items)
    t_score, c_score = time.perf_counter() - t0, time.process_time() - c0
    planted = set(f"/bench/img_{i:06d}.jpg" for i in np.flatnonzero(synthetic(args.n, args.dim)[1]))
    top = res["path"].head(len(planted))
    print(f"read store: {t_load:.1f} s   score_outliers: {t_score:.1f} s   total: {t_load + t_score:.1f} s "
          f"({args.n:,} items; target < 30 s)")
    print(f"CPU time (all threads; load-independent): read {c_load:.1f} s, score {c_score:.1f} s, "
          f"total {c_load + c_score:.1f} s")
    print(f"flagged {int(res['is_outlier'].sum()):,}; planted outliers in the top {len(planted):,}: "
          f"{len(planted & set(top)) / max(1, len(planted)):.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} (2 cores, shared)")


if __name__ == "__main__":
    main()
