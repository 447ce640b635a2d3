"""Keyframe quality on videos spliced from real clips: agcurate frames vs PySceneDetect.

Shots A, B, a static hold, C, A again, D (640x360, 25 fps). Bar: every distinct shot has a kept
frame, at most one kept frame per distinct shot on average (+10%), nothing kept from the repeat.

    PYTHONPATH=. python benchmarks/frames_quality.py [--data ../shared/data] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from splice import HOLD_STILL, LOOKALIKE_STILL, default_shots, splice  # noqa: E402


def shot_of(frame: int, shots) -> int:
    for i, s in enumerate(shots):
        if s.first <= frame <= s.last:
            return i
    return -1


def score(kept_frames: list[int], shots) -> dict:
    """Coverage and redundancy of a kept frame list against the known shots."""
    distinct = list(dict.fromkeys(s.name for s in shots))
    first_of = {}
    for i, s in enumerate(shots):
        first_of.setdefault(s.name, i)
    hit = [shot_of(f, shots) for f in kept_frames]
    covered = {shots[i].name for i in hit if i >= 0}
    repeat_idx = [i for i, s in enumerate(shots) if first_of[s.name] != i]
    repeat_kept = sum(1 for i in hit if i in repeat_idx)
    return {"covered": f"{len(covered)}/{len(distinct)}", "kept": len(kept_frames),
            "per_shot": len(kept_frames) / len(distinct), "repeat_kept": repeat_kept,
            "ok": len(covered) == len(distinct) and len(kept_frames) <= 1.1 * len(distinct) and repeat_kept == 0}


def run_agcurate(video: Path, out: Path, store: Path, verify_layout: bool = True, mode: str = "auto") -> list[int]:
    """Frames ``agcurate.frames`` keeps (default threshold; JPEG, CSV and HTML written to ``out``)."""
    import agcurate
    from agcurate.ops.keyframes import DEFAULT_THRESHOLD

    res = agcurate.frames([video], threshold=DEFAULT_THRESHOLD, out=out, store=store, progress=False,
                          verify_layout=verify_layout, mode=mode)
    return sorted(res.videos[0].kept["frame"].tolist())


def run_scenedetect(video: Path) -> list[int]:
    """One frame per detected scene (its middle): the most economical way to use a cut detector."""
    from scenedetect import ContentDetector, detect

    scenes = detect(str(video), ContentDetector(), start_in_scene=True)
    return [int((a.frame_num + b.frame_num - 1) // 2) for a, b in scenes]


def have_scenedetect() -> bool:
    import importlib.util

    return importlib.util.find_spec("scenedetect") is not None


def uniform(n_frames: int, every: int) -> list[int]:
    return list(range(every // 2, n_frames, every))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("AGCURATE_SHARED_DATA", "../shared/data"))
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each shot")
    ap.add_argument("--work", default=".bench/frames", help="folder for spliced videos and outputs")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    scenarios = [("hold unlike the maize clip", HOLD_STILL), ("hold looks like the maize clip (hard)", LOOKALIKE_STILL)]
    scenedetect = have_scenedetect()
    if not scenedetect:
        print("PySceneDetect not installed (pip install 'agcurate[bench]'): its rows are skipped")
    for title, still in scenarios:
        shots = default_shots(args.data, args.seconds, hold=still)
        video = work / f"spliced-{Path(still).stem}.mp4"
        splice(shots, video)
        n = shots[-1].last + 1
        print(f"\n== {title}: {video} ({n} frames, {n / 25:.0f} s; shots "
              + ", ".join(f"{s.name} {s.first}-{s.last}" for s in shots) + ")")
        print(f"{'method':38s} {'covered':>8s} {'kept':>5s} {'per shot':>9s} {'repeat kept':>12s}  bar  frames")
        t0 = time.perf_counter()
        methods = [("agcurate frames (defaults)", lambda: run_agcurate(video, work / f"out-{Path(still).stem}",
                                                                        work / "store"))]
        methods.append(("agcurate frames --mode shots", lambda: run_agcurate(
            video, work / "out-shots", work / "store", mode="shots")))
        methods.append(("agcurate --mode shots, no layout check", lambda: run_agcurate(
            video, work / "out-nolayout", work / "store", verify_layout=False, mode="shots")))
        if scenedetect:
            methods.append(("PySceneDetect ContentDetector", lambda: run_scenedetect(video)))
        methods.append(("uniform, 1 frame / 3 s", lambda: uniform(n, 75)))
        for name, fn in methods:
            t0 = time.perf_counter()
            kept = fn()
            dt = time.perf_counter() - t0
            s = score(kept, shots)
            print(f"{name:38s} {s['covered']:>8s} {s['kept']:5d} {s['per_shot']:9.2f} "
                  f"{('yes (%d)' % s['repeat_kept']) if s['repeat_kept'] else 'no':>12s}  "
                  f"{'PASS' if s['ok'] else 'fail'} {kept}  [{dt:.1f} s]")


if __name__ == "__main__":
    main()
