"""JPEG decode on the CPU workers vs on the model's device (``--decode cpu`` vs ``--decode gpu``).

    python benchmarks/gpu_decode.py                                   # this machine: device cpu
    python benchmarks/gpu_decode.py --device cuda --n 4000 --workers 8   # on a GPU machine: nvjpeg

Prints, per image set (``small``: rice-leaf 256 px + EuroSAT 64 px JPEGs, the set of
embed_throughput.py; ``large``: the 1920x1080 maize field photos, repeated up to ``--n``):
- decode throughput, one CPU decode worker (read, decode, resize, signals: ``--decode cpu``'s work
  per worker) vs the device path's two halves: one worker reading bytes and headers, and the main
  process decoding, turning and resizing batches on ``--device`` and measuring the signals;
- end-to-end ``agcurate.embed`` throughput with ``--decode cpu`` and ``--decode gpu`` (whole call and
  the loop after start-up), same files, same device, empty stores.
With ``--device cpu`` the device path runs on the CPU through torchvision's CPU decoder: that checks
the code path and its overheads, not nvjpeg's speed (the script says so).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from embed_throughput import real_jpegs  # noqa: E402 - the same files as the embed benchmark


def large_jpegs(n: int) -> list[Path]:
    data = Path(os.environ.get("AGCURATE_SHARED_DATA") or ROOT.parent / "shared" / "data")
    files = sorted((data / "maize-croprow-video" / "mydata" / "images").rglob("*.jpg"))
    if not files:
        sys.exit("shared/data/maize-croprow-video not found")
    return [files[i % len(files)] for i in range(n)]


def linked(files: list[Path], folder: Path) -> list[Path]:
    """Each file under its own name: a link to its first use, a copy when it repeats (a repeated link
    would be reported as the same file and skipped; a copy is a distinct item, as another photo is)."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    out, seen = [], set()
    for i, f in enumerate(files):
        p = folder / f"{i:05d}_{f.name}"
        if f in seen:
            shutil.copyfile(f, p)
        else:
            p.symlink_to(f)
            seen.add(f)
        out.append(p)
    return out


def cpu_worker_rate(files, size) -> float:
    """One decode worker's images/s on the CPU path (single-threaded, in this process)."""
    from agcurate.embedding.loader import DecodeDataset
    from agcurate.items import Item
    from agcurate.sources import SourceOptions

    ds = DecodeDataset([Item(path=str(f)) for f in files], SourceOptions(), size)
    t = time.perf_counter()
    n = sum(1 for r in ds if r["pixels"] is not None)
    assert n == len(files)
    return n / (time.perf_counter() - t)


def device_rates(files, size, device, batch_size, threads) -> tuple[float, float]:
    """(one worker reading bytes + headers, the main process's decode/turn/resize/signals on ``device``)."""
    import torch

    from agcurate.embedding.gpu_decode import BatchDecoder
    from agcurate.embedding.loader import DecodeDataset, collate_rows, cpu_fallback, describe_device_decoded
    from agcurate.items import Item
    from agcurate.sources import SourceOptions

    if not device.startswith("cuda"):
        torch.set_num_threads(1)  # as a decode worker: intra-op threads only fight the other processes
    ds = DecodeDataset([Item(path=str(f)) for f in files], SourceOptions(), size, jpeg_bytes=True)
    t = time.perf_counter()
    answers = list(ds)
    read = len(answers) / (time.perf_counter() - t)
    assert all(a.get("jpeg") is not None for a in answers), "some files took the CPU path"
    batches = [collate_rows(answers[i:i + batch_size]) for i in range(0, len(answers), batch_size)]
    with BatchDecoder(size, device, cpu_fallback(size), describe_device_decoded, threads=threads) as dec:
        dec(collate_rows(answers[:min(8, len(answers))])).wait()  # warm-up: decoder and kernels
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        for b in batches:
            ready = dec(b)
            ready.wait()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        main = len(answers) / (time.perf_counter() - t)
    return read, main


def end_to_end(files, decode, device, batch_size, workers, store) -> tuple[float, float]:
    import agcurate

    t = time.perf_counter()
    if device == "cpu":  # EmbedConfig refuses --decode gpu with --device cpu; auto is the CPU on this machine
        device = "auto"
    emb = agcurate.embed(files, store=store, decode=decode, device=device, batch_size=batch_size, workers=workers,
                         backend="torch", progress=False, remember=False)
    wall = time.perf_counter() - t
    assert emb.stats.found == emb.stats.encoded and not emb.skipped, emb.skipped[:3]
    return emb.stats.encoded / wall, emb.stats.rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu (the code path only) or cuda")
    ap.add_argument("--n", type=int, default=256, help="images per set")
    ap.add_argument("--sets", default="small,large")
    ap.add_argument("--batch-size", type=int, default=None, help="default: 32 on cpu, 128 on cuda")
    ap.add_argument("--workers", type=int, default=None, help="decode workers (default: embed's own)")
    args = ap.parse_args()
    import torch

    from agcurate.embedding import gpu_decode

    cuda = args.device.startswith("cuda")
    batch = args.batch_size or (128 if cuda else 32)
    threads = args.workers or 2
    if cuda:
        where = f"{torch.cuda.get_device_name()} (nvjpeg through torchvision {__import__('torchvision').__version__})"
    else:  # let --decode gpu run its device path on the CPU: the same code, torchvision's CPU decoder
        real = gpu_decode.resolve_decode
        gpu_decode.resolve_decode = lambda d, dev, **kw: "gpu" if d == "gpu" else real(d, dev, **kw)
        where = ("cpu: the device path runs on the CPU (torchvision's libjpeg decoder); this checks the "
                 "code path and its overheads, NOT nvjpeg's speed")
    print(f"device {where}; lite0 @224, batch {batch}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name in args.sets.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            src = real_jpegs(args.n) if name == "small" else large_jpegs(args.n)
            files = linked(src, Path(tmp) / "in")
            cpu_w = cpu_worker_rate(files[:min(len(files), 128)], 224)
            read_w, main = device_rates(files, 224, args.device, batch, threads)
            e2e = {d: end_to_end([Path(tmp) / "in"], d, args.device, batch, args.workers, Path(tmp) / f"store-{d}")
                   for d in ("cpu", "gpu")}
            print(f"[{name}] {len(files)} JPEGs ({'rice-leaf 256 px + EuroSAT 64 px' if name == 'small' else 'maize 1920x1080'})")
            print(f"  decode, CPU path:    {cpu_w:8.1f} img/s per worker (read, decode, resize, signals)")
            print(f"  decode, device path: {read_w:8.1f} img/s per worker (read bytes + header), "
                  f"{main:8.1f} img/s in the main process on {args.device} (decode, turn, resize, "
                  f"signals in {threads} threads)")
            for d, (wall, loop) in e2e.items():
                print(f"  embed --decode {d}:  {wall:8.1f} img/s whole call, {loop:8.1f} img/s loop after start-up")
            print(f"  gpu / cpu, loop: {e2e['gpu'][1] / e2e['cpu'][1]:.2f}   load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
