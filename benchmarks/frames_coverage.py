"""Keyframes of continuous footage, fixed cameras, spliced shots and synthetic pans: agcurate frames
(defaults, ``--mode auto``) vs PySceneDetect and uniform 1 fps sampling.

Per video: kept frames; redundant pairs (two kept frames sharing more than 80% of the view); the
largest stretch of the video not covered by any kept frame (no kept frame shares at least 20% with
it), in seconds; and, where the content is known, keyframes per distinct shot, per person or per car
and how many keyframes show the empty car park. Overlap is exact for the synthetic pans (windows
slid over a real 1920x1080 field photo); for real continuous footage it is measured by agcurate's own
tracker (the same yardstick for every method, not an independent one; where it measured fewer than
half of the steps, as on the swinging hand-held maize walk, it is no yardstick and nothing is printed:
benchmarks/frames_drift.py checks that walk against a landmark instead). Speed: seconds of video per
wall second for ``agcurate.frames`` on a video new to the store (model already loaded).

    PYTHONPATH=. nice python benchmarks/frames_coverage.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from frames_quality import have_scenedetect, run_scenedetect, shot_of  # noqa: E402
from splice import FPS, default_shots, more_shots, splice  # noqa: E402

REDUNDANT = 0.8
COVERED = 0.2
# who walks through one-by-one-person-detection.mp4 and when cars are in view in car-detection.mp4
# (frame ranges read off contact sheets; the same ranges as tests/test_motion.py)
PEOPLE = [(75, 210), (235, 450), (505, 690), (745, 875), (930, 1195), (1235, 1360)]
CARS = [(56, 110), (184, 240), (316, 346)]
PAN_WINDOW = (480, 270)  # the camera's view inside the 1920x1080 photo, written at 640x360


def uniform(n_frames: int, fps: float, every_s: float = 1.0) -> list[int]:
    return sorted({int(round(k * every_s * fps)) for k in range(int(n_frames / fps / every_s) + 1)} - {n_frames})


def pans(data: Path, work: Path) -> list[tuple[str, Path, list[tuple[int, int]]]]:
    """Two slow pans over real field photos with known windows: across the rows, and out and back."""
    import cv2
    from videokit import window_pan, write_video

    out = []
    photos = sorted((data / "maize-croprow-video" / "mydata" / "images" / "test").glob("*.jpg"))
    if len(photos) < 2:
        return out
    w, h = PAN_WINDOW
    a = cv2.cvtColor(cv2.imread(str(photos[0])), cv2.COLOR_BGR2RGB)
    b = cv2.cvtColor(cv2.imread(str(photos[1])), cv2.COLOR_BGR2RGB)
    across = [(int(x), 400) for x in np.linspace(0, a.shape[1] - w, 250)]          # 10 s, 1440 px
    there = [(int(x), int(y)) for x, y in zip(np.linspace(0, b.shape[1] - w, 150), np.linspace(0, b.shape[0] - h, 150))]
    back_and_forth = there + there[::-1]                                            # 12 s, out and back
    for name, img, corners in (("pan across a field photo", a, across), ("pan out and back", b, back_and_forth)):
        path = work / f"{name.replace(' ', '-')}.mp4"
        if not path.exists():
            write_video(path, window_pan(img, corners, size=(640, 360), window=PAN_WINDOW), fps=FPS)
        out.append((name, path, corners))
    return out


def exact_overlap(corners, window=PAN_WINDOW):
    from videokit import window_overlap

    return lambda i, j: window_overlap(corners[i], corners[j], window)


def tracked_overlap(video: Path):
    """Overlap between any two frames by agcurate's tracker (frames snapped to the analysed ones), the
    analysed frames, and the share of steps whose motion the tracker could measure."""
    from agcurate.ops.motion import overlap, track
    from agcurate.workflows.frames import analysed_frames

    items, grey = analysed_frames(video)
    idx = [it.frame for it in items]
    mo = track(grey)
    idx = np.array(idx)

    def ov(a: int, b: int) -> float:
        i, j = int(np.abs(idx - a).argmin()), int(np.abs(idx - b).argmin())
        if mo.segment[i] != mo.segment[j]:
            return 0.0
        return overlap(mo.transform[i], mo.transform[j], mo.size)
    return ov, idx, float(mo.tracked[1:].mean()) if len(idx) > 1 else 1.0


def coverage_figures(kept: list[int], frames: list[int], ov, fps: float) -> tuple[int, float]:
    """Redundant pairs among ``kept`` and the longest run of ``frames`` no kept frame covers (seconds)."""
    redundant = sum(ov(a, b) > REDUNDANT for i, a in enumerate(kept) for b in kept[i + 1:])
    run_start, longest = None, 0.0
    for f in frames:
        covered = any(ov(f, k) >= COVERED for k in kept)
        if not covered and run_start is None:
            run_start = f
        if covered and run_start is not None:
            longest = max(longest, (f - run_start) / fps)
            run_start = None
    if run_start is not None:
        longest = max(longest, (frames[-1] - run_start + 1) / fps)
    return redundant, longest


def run_agcurate(video: Path, store: Path) -> tuple[list[int], float, float, list[str]]:
    """Kept frames, wall seconds, CPU seconds (this process's threads and finished worker processes)
    and the keyframes' reasons."""
    import resource

    import agcurate

    def cpu_now() -> float:
        return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                      resource.getrusage(resource.RUSAGE_CHILDREN)))

    t0, c0 = time.perf_counter(), cpu_now()
    res = agcurate.frames([video], store=store, progress=False)
    dt, cpu = time.perf_counter() - t0, cpu_now() - c0
    kept = res.videos[0].kept
    return sorted(kept["frame"].tolist()), dt, cpu, kept["reason"].tolist()


def main() -> None:
    import cv2

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("AGCURATE_SHARED_DATA", "../shared/data"))
    ap.add_argument("--work", default=".bench/frames-coverage")
    args = ap.parse_args()
    data, work = Path(args.data), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    iv = data / "intel-sample-videos"
    shots = default_shots(data, 3.0)
    spliced = work / "spliced.mp4"
    splice(shots, spliced)
    held_out = work / "spliced-more.mp4"  # other sources, no threshold set on them
    spliced_shots = {spliced: shots, held_out: splice(more_shots(data, 3.0), held_out)}
    videos = [("maize-croprow walk (continuous)", data / "maize-croprow-video" / "test_video" / "1.mp4", None),
              ("one-by-one-person-detection", iv / "one-by-one-person-detection.mp4", None),
              ("car-detection", iv / "car-detection.mp4", None),
              ("spliced shots (6 x 3 s, one repeat)", spliced, None),
              ("spliced shots, more sources (7 x 3 s, one repeat, 2 slow pans)", held_out, None)]
    videos += [(name, path, corners) for name, path, corners in pans(data, work)]
    scenedetect = have_scenedetect()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (other processes share the cores)")
    if not scenedetect:
        print("PySceneDetect not installed (pip install 'agcurate[bench]'): its rows are skipped")
    import agcurate

    with tempfile.TemporaryDirectory() as tmp:  # load the model once, so the timings below are per video
        agcurate.frames([HERE.parent / "examples" / "videos" / "intel-shots.mp4"], store=Path(tmp) / "s", progress=False)
        speeds = []
        for name, video, corners in videos:
            cap = cv2.VideoCapture(str(video))
            fps, n = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            cap.release()
            duration = n / fps
            if corners is not None:
                ov, frames = exact_overlap(corners), list(range(n))
                yard = "exact"
            else:
                ov, idx, measured = tracked_overlap(video)
                frames = idx.tolist()
                yard = "tracker"
                if measured < 0.5:  # steps it cannot measure count as still: no yardstick for coverage
                    yard = (f"tracker, which measured only {measured:.0%} of the steps: no yardstick here "
                            "(see benchmarks/frames_drift.py)")
            kept_a, dt, cpu, reasons = run_agcurate(video, Path(tmp) / f"store-{len(speeds)}")
            speeds.append((name, duration, dt, cpu, os.getloadavg()[0]))
            methods = [("agcurate frames (auto)", kept_a)]
            if scenedetect:
                methods.append(("PySceneDetect ContentDetector", run_scenedetect(video)))
            methods.append(("uniform 1 fps", uniform(n, fps)))
            print(f"\n== {name}: {video.name}, {duration:.1f} s, {n} frames; overlap: {yard}")
            print(f"{'method':32s} {'kept':>5s} {'redundant':>10s} {'uncovered s':>12s}  content")
            for label, kept in methods:
                red, gap = (coverage_figures(kept, frames, ov, fps) if "spliced" not in name and "person" not in name
                            and "car" not in name and "no yardstick" not in yard else ("-", None))
                content = ""
                if "person" in name:
                    per = [sum(a <= f <= b for f in kept) for a, b in PEOPLE]
                    content = f"keyframes per person {per} (all >= 1: {'yes' if min(per) >= 1 else 'NO'})"
                elif "car" in name:
                    empty = sum(not any(a <= f <= b for a, b in CARS) for f in kept)
                    per = [sum(a <= f <= b for f in kept) for a, b in CARS]
                    content = f"empty car park x{empty} (once: {'yes' if empty == 1 else 'NO'}); per car {per}"
                elif "spliced" in name:
                    shots = spliced_shots[video]
                    distinct = list(dict.fromkeys(s.name for s in shots))
                    hit = [shot_of(f, shots) for f in kept]
                    covered = {shots[i].name for i in hit if i >= 0}
                    first = {s.name: i for i, s in reversed(list(enumerate(shots)))}
                    repeat = sum(1 for i in hit if i >= 0 and first[shots[i].name] != i)
                    per_shot = len(kept) / len(distinct)
                    content = (f"covered {len(covered)}/{len(distinct)} shots, {per_shot:.2f} keyframes per shot, "
                               f"{repeat} from the repeat (bar <= 1.2 and all covered: "
                               f"{'yes' if per_shot <= 1.2 and len(covered) == len(distinct) else 'NO'})")
                gap_s = "-" if gap is None else f"{gap:.1f}"
                print(f"{label:32s} {len(kept):5d} {red!s:>10s} {gap_s:>12s}  {content}")
            if label and reasons:
                print(f"  agcurate reasons: {', '.join(f'{f}:{r}' for f, r in zip(kept_a, reasons))}")
    print("\nspeed of agcurate.frames at defaults (video new to the store, model loaded):")
    total_v = sum(s[1] for s in speeds)
    total_t = sum(s[2] for s in speeds)
    total_c = sum(s[3] for s in speeds)
    for name, d, t, cpu, load in speeds:
        print(f"  {name:40s} {d:6.1f} s of video in {t:6.1f} s wall = {d / t:5.1f}x real time; "
              f"{cpu:6.1f} CPU s = {2 * d / cpu:5.1f}x real time if it had 2 cores to itself (load {load:.1f})")
    print(f"  all {total_v:.0f} s of video in {total_t:.0f} s wall = {total_v / total_t:.1f}x real time, "
          f"{total_c:.0f} CPU s = {2 * total_v / total_c:.1f}x on 2 free cores; "
          f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
