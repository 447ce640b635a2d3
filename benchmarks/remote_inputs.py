"""Photos read from an object store (``s3://``) vs the same files on the local disk, in one run.

    python benchmarks/remote_inputs.py [--n 1000] [--workers N] [--store-url]

The files (real JPEGs from ``shared/data``: rice-leaf photos and EuroSAT patches, interleaved) are
put into a local S3 server (moto, in a process of its own) and listed and embedded from there through
s3fs; then the same files are embedded from the local disk, each into an empty store. Printed:
listing time and its share of the run, end-to-end items/s for both, and the ratio. With
``--store-url`` the S3 run also writes its store to ``s3://``. A local server has no network
latency: the ratio measures agcurate's URL path (ranged reads for listing, a temporary copy per
file for decoding), not a real bucket's bandwidth.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from embed_throughput import real_jpegs  # noqa: E402


def local_s3():
    """A moto S3 server in its own process on a free port (in this process it would share the GIL
    with the client), with the environment s3fs reads pointed at it."""
    import subprocess
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=url)
    return server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--store-url", action="store_true", help="write the S3 run's store to s3:// too")
    args = ap.parse_args()

    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    files = real_jpegs(args.n)
    server = local_s3()
    import s3fs

    from agcurate.embedding import embed
    from agcurate.sources import discover

    fs = s3fs.S3FileSystem()
    fs.mkdir("bench")
    t = time.perf_counter()
    fs.put([str(f) for f in files], [f"bench/photos/{i:06d}-{f.name}" for i, f in enumerate(files)])
    print(f"uploaded {len(files)} files ({sum(f.stat().st_size for f in files) / 1e6:.1f} MB) "
          f"in {time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        local_dir = Path(tmp) / "photos"
        local_dir.mkdir()
        for i, f in enumerate(files):
            (local_dir / f"{i:06d}-{f.name}").symlink_to(f.resolve())
        embed([str(files[0])], store=Path(tmp) / "warm", progress=False)  # model export, once
        t = time.perf_counter()
        listed = discover(["s3://bench/photos"])
        t_list = time.perf_counter() - t
        store = "s3://bench/store" if args.store_url else Path(tmp) / "s3-store"
        t = time.perf_counter()
        remote = embed(["s3://bench/photos"], store=store, workers=args.workers, progress=False)
        t_remote = time.perf_counter() - t
        t = time.perf_counter()
        local = embed([str(local_dir)], store=Path(tmp) / "local-store", workers=args.workers, progress=False)
        t_local = time.perf_counter() - t
    server.terminate()
    assert len(listed.items) == len(remote) == len(local) == len(files), (len(listed.items), len(remote), len(local))
    load = os.getloadavg()[0]
    print(f"listing s3://bench/photos: {len(listed.items)} photos in {t_list:.2f} s "
          f"({len(files) / t_list:,.0f} files/s; {t_list / t_remote:.1%} of the S3 run)")
    print(f"end to end from s3:// ({'s3' if args.store_url else 'local'} store): {len(files) / t_remote:.1f} items/s")
    print(f"end to end from local disk:         {len(files) / t_local:.1f} items/s")
    print(f"ratio s3 / local: {t_local / t_remote:.2f}   (load average {load:.1f})")


if __name__ == "__main__":
    main()
