"""Model-only vs end-to-end embedding throughput, measured in one run.

    python benchmarks/embed_throughput.py [--n 600] [--batch-size 32] [--workers N] [--variants]
    python benchmarks/embed_throughput.py --device cuda --batch-size 128 --n 4000   # on a GPU machine
    python benchmarks/embed_throughput.py --engines --n 600   # local engine vs --engine ray (local Ray)

Model-only: pre-decoded, pre-resized uint8 tensors through the same ModelRunner `embed` uses.
End-to-end: `agcurate.embed` on the JPEG files into an empty store (decode in workers, model,
Parquet writes), wall time of the whole call. Both halves run on ``--device`` (cpu by default;
with cuda only the torch runner exists, fp16 autocast). The ratio end-to-end / model-only is the figure
that matters (the machine is shared and noisy; absolute numbers move from run to run).
With --variants it also times NCHW vs channels_last and 1 vs all threads.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def real_jpegs(n: int) -> list[Path]:
    data = Path(os.environ.get("AGCURATE_SHARED_DATA") or ROOT.parent / "shared" / "data")
    rice = sorted((data / "rice-leaf").rglob("*.jpg"))
    euro = sorted((data / "eurosat-rgb").rglob("*.jpg"))
    if not rice and not euro:
        sys.exit("shared/data/rice-leaf and eurosat-rgb not found")
    files = [f for pair in zip(rice, euro) for f in pair] + rice[len(euro):] + euro[len(rice):]
    return files[:n]


def model_only(files, size, batch_size, channels_last=True, threads=None, backend="torch", cache=None,
               device="cpu") -> float:
    import torch

    from agcurate.encoders import get_encoder
    from agcurate.encoders.runners import ModelRunner, make_runner
    from agcurate.embedding.signals import resize_square
    from agcurate.sources.images import decode_image

    enc = get_encoder("lite0")
    runner = make_runner(enc, "cpu", "onnx", cache_dir=cache) if backend == "onnx" else ModelRunner(enc, device)
    if threads:
        torch.set_num_threads(threads)
    if not channels_last:
        runner.model = runner.model.to(memory_format=torch.contiguous_format)
    pixels = [torch.from_numpy(resize_square(decode_image(f.read_bytes(), size)[0], size).transpose(2, 0, 1).copy())
              for f in files]
    batches = [torch.stack(pixels[i:i + batch_size]) for i in range(0, len(pixels), batch_size)]
    runner(batches[0])  # warm-up (and, on CUDA, the first batch size's kernel choice)
    if len(batches[-1]) != len(batches[0]):
        runner(batches[-1])
    if not channels_last:  # ModelRunner converts inputs to channels_last; undo it for this variant
        import torch.nn.functional as F

        def run(b):
            with torch.inference_mode():
                x = ((b.float() - runner.mean) / runner.std).contiguous()
                return F.normalize(runner.model(x).flatten(1), dim=1)
    else:
        run = runner
    t = time.perf_counter()
    for b in batches:
        run(b)
    return len(files) / (time.perf_counter() - t)


def end_to_end(files, batch_size, workers, backend="auto", cache=None, device="cpu",
               engine="local") -> tuple[float, float]:
    import agcurate

    if cache:
        os.environ["AGCURATE_ONNX_CACHE"] = str(cache)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i, f in enumerate(files):
            (folder / f"{i:05d}_{f.name}").symlink_to(f)
        t = time.perf_counter()
        emb = agcurate.embed([folder], store=Path(tmp) / "store", batch_size=batch_size, workers=workers,
                             progress=False, remember=False, backend=backend, device=device, engine=engine)
        wall = time.perf_counter() - t
        assert emb.stats.encoded == len(files), emb.skipped[:3]
        return len(files) / wall, emb.stats.rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds; medians are printed")
    ap.add_argument("--variants", action="store_true")
    ap.add_argument("--onnx-only", action="store_true", help="skip the torch rounds")
    ap.add_argument("--device", default="cpu", help="cpu (ONNX Runtime and torch) or cuda (torch only)")
    ap.add_argument("--engines", action="store_true", help="compare the local engine with --engine ray")
    args = ap.parse_args()
    if args.engines:
        return engines_main(args)
    if args.device != "cpu":
        return gpu_main(args)
    files = real_jpegs(args.n)
    cache = Path(tempfile.mkdtemp(prefix="agcurate-onnx-"))
    print(f"{len(files)} real JPEGs (rice-leaf 256 px + EuroSAT 64 px), lite0 @224, batch {args.batch_size}")
    model_only(files[:64], 224, args.batch_size, backend="onnx", cache=cache)  # export once, untimed
    rows = {k: [] for k in ("onnx model", "onnx e2e", "torch model", "torch e2e")}
    for _ in range(args.repeats):  # interleave so that background load hits every figure alike
        rows["onnx model"].append(model_only(files, 224, args.batch_size, backend="onnx", cache=cache))
        rows["onnx e2e"].append(end_to_end(files, args.batch_size, args.workers, "onnx", cache)[0])
        if not args.onnx_only:
            rows["torch model"].append(model_only(files, 224, args.batch_size))
            rows["torch e2e"].append(end_to_end(files, args.batch_size, args.workers, "torch")[0])
    rows = {k: v for k, v in rows.items() if v}
    med = {k: float(np.median(v)) for k, v in rows.items()}
    for k, v in rows.items():
        print(f"{k:12s} images/s: " + " ".join(f"{x:6.1f}" for x in v) + f"   median {med[k]:6.1f}")
    print(f"ratio end-to-end / model-only, onnx (default on CPU): {med['onnx e2e'] / med['onnx model']:.2f}")
    if "torch model" in med:
        print(f"ratio end-to-end / model-only, torch channels_last:   {med['torch e2e'] / med['torch model']:.2f}")
        print(f"onnx over torch, model-only:                          {med['onnx model'] / med['torch model']:.2f}x")
    if args.variants:
        print(f"torch NCHW model-only:                  {model_only(files, 224, args.batch_size, False):7.1f} images/s")
        print(f"torch channels_last 1 thread:           {model_only(files, 224, args.batch_size, True, 1):7.1f} images/s")


def gpu_main(args) -> None:
    """Model-only vs end-to-end on a GPU (torch runner, fp16 autocast): same files, same device."""
    import torch

    files = real_jpegs(args.n)
    print(f"{len(files)} real JPEGs, lite0 @224, batch {args.batch_size}, {torch.cuda.get_device_name()}")
    model, e2e = [], []
    for _ in range(args.repeats):
        model.append(model_only(files, 224, args.batch_size, device=args.device))
        e2e.append(end_to_end(files, args.batch_size, args.workers, "torch", device=args.device)[0])
    for name, v in (("model", model), ("e2e", e2e)):
        print(f"{name:6s} images/s: " + " ".join(f"{x:8.1f}" for x in v) + f"   median {np.median(v):8.1f}")
    print(f"ratio end-to-end / model-only ({args.device}): {np.median(e2e) / np.median(model):.3f}")


def engines_main(args) -> None:
    """End-to-end, local engine vs Ray Data on a local Ray with this machine's cores (interleaved);
    the loop rate leaves out start-up (model build; for Ray also the actors' start)."""
    import ray

    files = real_jpegs(args.n)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    print(f"{len(files)} real JPEGs, lite0 @224, batch {args.batch_size}, ray {ray.__version__} local "
          f"({os.cpu_count()} CPUs, started in {time.perf_counter() - t:.1f} s), load average {os.getloadavg()[0]:.1f}")
    cache = Path(tempfile.mkdtemp(prefix="agcurate-onnx-"))
    model_only(files[:64], 224, args.batch_size, backend="onnx", cache=cache)  # export once, untimed
    res = {"local": [], "ray": []}
    for _ in range(args.repeats):
        for engine in res:
            res[engine].append(end_to_end(files, args.batch_size, args.workers, "onnx", cache, engine=engine))
    for engine, v in res.items():
        wall, loop = np.median([x[0] for x in v]), np.median([x[1] for x in v])
        print(f"{engine:6s} images/s, whole call: " + " ".join(f"{x[0]:6.1f}" for x in v) + f"  median {wall:6.1f};"
              f"  loop (after start-up): " + " ".join(f"{x[1]:6.1f}" for x in v) + f"  median {loop:6.1f}")
    print(f"ray / local, loop: {np.median([x[1] for x in res['ray']]) / np.median([x[1] for x in res['local']]):.2f}"
          f"   load average after {os.getloadavg()[0]:.1f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
