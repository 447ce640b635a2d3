"""Speed of ``agcurate frames`` on a 640x360, 25 fps video spliced from real clips, as a multiple of real time.

Runs the real CLI in a fresh process with an empty store (so Python start-up, model load, decoding,
embedding, selection and writing JPEG/CSV/HTML all count), then once more from the cache.

    PYTHONPATH=. python benchmarks/frames_speed.py [--seconds-per-shot 10] [--variant "--fps 1"]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from splice import default_shots, splice  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_cli(video: Path, store: Path, out: Path, extra: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system, all threads and decode workers) and the summary line."""
    import resource

    env = {**os.environ, "PYTHONPATH": str(ROOT), "AGCURATE_NO_PROGRESS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "agcurate", "frames", str(video), "--store", str(store),
                        "--out", str(out), *extra], capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode != 0:
        raise SystemExit(f"agcurate frames failed:\n{r.stdout}\n{r.stderr}")
    summary = [ln for ln in r.stdout.splitlines() if "keyframes from" in ln]
    return dt, cpu, summary[0].strip() if summary else ""


def decode_rate(video: Path, fps: float | None) -> tuple[int, float]:
    """Sampled frames decoded (one pass, grab/retrieve) per second, without the model."""
    from agcurate.sources import SourceOptions
    from agcurate.sources.video import VideoSource

    src = VideoSource()
    t0 = time.perf_counter()
    items = src.items(video, SourceOptions(fps=fps))
    n = sum(1 for d in src.read(items, SourceOptions()) if d.rgb is not None)
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("AGCURATE_SHARED_DATA", "../shared/data"))
    ap.add_argument("--seconds-per-shot", type=float, default=10.0, help="6 shots: 60 s by default")
    ap.add_argument("--variant", action="append", default=None,
                    help='extra CLI options to time, e.g. "--fps 1" or "--image-size 160" (repeatable; '
                         'default: the defaults only)')
    ap.add_argument("--work", default=".bench/frames")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    shots = default_shots(args.data, args.seconds_per_shot)
    video = work / f"speed-{int(6 * args.seconds_per_shot)}s.mp4"
    if not video.exists():
        splice(shots, video)
    from agcurate.sources.video import VideoSource

    n_frames, video_fps, _ = VideoSource().probe(str(video))
    duration = n_frames / video_fps
    print(f"video: {video} (640x360, 25 fps, {duration:.0f} s); {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}")
    n, t = decode_rate(video, 0)
    print(f"decode only, every frame: {n} frames in {t:.2f} s = {n / t:.0f} frames/s = {duration / t:.0f}x real time")
    for variant in args.variant or [""]:
        extra = variant.split()
        label = variant or "defaults"
        with tempfile.TemporaryDirectory() as tmp:
            cold, cold_cpu, summary = run_cli(video, Path(tmp) / "store", Path(tmp) / "out", extra)
            warm, warm_cpu, _ = run_cli(video, Path(tmp) / "store", Path(tmp) / "out", extra)
        with tempfile.TemporaryDirectory() as tmp:  # model set up once (e.g. ONNX export), this video new
            run_cli(ROOT / "examples" / "videos" / "intel-shots.mp4", Path(tmp) / "store", Path(tmp) / "o", extra)
            new, new_cpu, new_summary = run_cli(video, Path(tmp) / "store", Path(tmp) / "out", extra)
        print(f"agcurate frames ({label}), empty store: {cold:.1f} s wall = {duration / cold:.1f}x real time; "
              f"{cold_cpu:.1f} CPU s = {duration / cold_cpu:.1f}x real time per core [{summary}]")
        print(f"agcurate frames ({label}), new video, model already set up in the store: {new:.1f} s wall = "
              f"{duration / new:.1f}x real time; {new_cpu:.1f} CPU s = {duration / new_cpu:.1f}x real time per core")
        print(f"agcurate frames ({label}), from cache: {warm:.1f} s wall = {duration / warm:.1f}x real time; "
              f"{warm_cpu:.1f} CPU s")
    print(f"load average now {os.getloadavg()[0]:.1f} (other processes share these cores: wall-clock ratios "
          "drop with load; CPU seconds do not)")


if __name__ == "__main__":
    main()
