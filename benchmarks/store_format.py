"""Vector column formats for the store's Parquet parts: bytes per vector, write and read speed.

Compares the raw float16 bytes older stores wrote (``fixed_size_binary``, unreadable by other tools)
with Arrow ``fixed_size_list`` columns of float16, float32, and float32 holding float16-rounded
values (what the store writes: readable by DuckDB and Polars, which lack float16, at float16's size).

    PYTHONPATH=. python benchmarks/store_format.py [--n 50000] [--dim 1280]
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


def main() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agcurate.embedding.store import _vectors_of, vector_column

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=1280)
    args = ap.parse_args()
    n, d = args.n, args.dim
    v = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v16 = v.astype(np.float16)
    cases = {
        "fixed_size_binary (raw float16, old)":
            pa.FixedSizeBinaryArray.from_buffers(pa.binary(2 * d), n, [None, pa.py_buffer(v16.tobytes())]),
        "fixed_size_list<float16>": pa.FixedSizeListArray.from_arrays(pa.array(v16.reshape(-1)), d),
        "fixed_size_list<float32>": pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), d),
        "fixed_size_list<float32>, f16-rounded (store)": vector_column(v),
    }
    print(f"{n:,} unit vectors x {d}, zstd, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.parquet"
        for name, col in cases.items():
            t0 = time.perf_counter()
            pq.write_table(pa.table({"vector": col}), path, compression="zstd")
            tw = time.perf_counter() - t0
            t0 = time.perf_counter()
            x = _vectors_of(pq.read_table(path).column("vector"), d)
            tr = time.perf_counter() - t0
            assert x.shape == (n, d)
            print(f"  {name:48s} {path.stat().st_size / n:6.0f} B/vector   write {n / tw:8,.0f}/s   "
                  f"read {n / tr:8,.0f}/s")


if __name__ == "__main__":
    main()
