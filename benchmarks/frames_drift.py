"""Does agcurate's camera path follow a real hand-held walk, or run away from it? An independent check.

1. The real maize-croprow walk (856x480, 60 fps, 4.6 s; the same 3 s the spliced benchmark uses as
   shot D, written at 25 fps). Nothing matches its frames more than a few hundredths of a second apart
   (SIFT at full resolution: inliers per gap are printed), so no tracker gives a drift-free overlap.
   It does have a landmark: a white drip line, found in each full-resolution frame by its colour (low
   saturation, high value) and a Hough line, independently of agcurate. The camera path of the shot
   predicts where the first frame's drip line lies in each later frame; the distance (full-resolution
   pixels, median over frames where the line is found) is compared with "no motion" (the line where
   it was). The motion steps the tracker accepts are listed with their residual share (the grey
   difference a step leaves once applied, as a share of what "no motion" leaves).
2. Synthetic hand-held walks over real field photos with a known camera (``splice.handheld_walk``:
   closing in while swinging, motion blur), 6 s at 25 fps: kept frames, redundant pairs (> 80% true
   overlap) and the longest stretch no kept frame covers by 20% (the coverage bars).
3. The two slow pans over aerial tiles of ``splice.more_shots``: the residual share of their steps.
Each is run with the residual check (``RESIDUAL_SHARE``, default) and without it (as before).

    PYTHONPATH=. nice python benchmarks/frames_drift.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from splice import FPS, SIZE, _clip_frames, default_shots, handheld_walk, more_shots  # noqa: E402

SWINGS = {"mild": (4.0, 0.08, 1.6), "strong": (8.0, 0.15, 1.6)}


def drip_line(bgr: np.ndarray) -> np.ndarray | None:
    """The white drip line in the upper right of a maize-walk frame, as (x1, y1, x2, y2), or None."""
    import cv2

    h, w = bgr.shape[:2]
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    m = ((hsv[..., 1] < 35) & (hsv[..., 2] > 200)).astype(np.uint8) * 255
    m[:int(h * 0.04)] = 0  # the sky
    m[int(h * 0.6):] = 0
    m[:, :int(w * 0.45)] = 0
    lines = cv2.HoughLinesP(m, 1, np.pi / 360, 60, minLineLength=w * 0.12, maxLineGap=12)
    best = None
    for x1, y1, x2, y2 in ([] if lines is None else lines.reshape(-1, 4)):
        if 10 < np.degrees(np.arctan2(y2 - y1, x2 - x1)) < 50:
            length = np.hypot(x2 - x1, y2 - y1)
            if best is None or length > best[0]:
                best = (length, np.array([x1, y1, x2, y2], float))
    return None if best is None else best[1]


def line_distance(seg: np.ndarray, line: np.ndarray) -> float:
    """Mean distance of ``seg``'s end points from the infinite line through ``line``."""
    p, q = line[:2], line[2:]
    n = np.array([p[1] - q[1], q[0] - p[0]]) / np.linalg.norm(q - p)
    return float(np.mean([abs((e - p) @ n) for e in (seg[:2], seg[2:])]))


def read_all(path: Path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            return out
        out.append(f)


def sift_inliers(a: np.ndarray, b: np.ndarray) -> int:
    import cv2

    sift = cv2.SIFT_create(4000)
    (ka, da), (kb, db) = sift.detectAndCompute(a, None), sift.detectAndCompute(b, None)
    good = [m for m, n in cv2.BFMatcher().knnMatch(db, da, k=2) if m.distance < 0.75 * n.distance]
    if len(good) < 8:
        return 0
    _, inl = cv2.findHomography(np.float32([kb[m.queryIdx].pt for m in good]),
                                np.float32([ka[m.trainIdx].pt for m in good]), cv2.RANSAC, 3.0)
    return int(inl.sum()) if inl is not None else 0


@contextlib.contextmanager
def accepted_shares():
    """Collect the residual share of every camera motion (not "no motion") the tracker accepts."""
    import agcurate.ops.motion as mo

    shares: list[float] = []
    plain = mo.frame_motion

    def spy(prev, cur, pts=None, raw=None, residual=None):
        m = plain(prev, cur, pts, raw, residual)
        if m is not None and not np.allclose(m, np.eye(3)):
            shares.append(mo.residual_share(*(raw or (prev, cur)), m))
        return m

    mo.frame_motion = spy
    try:
        yield shares
    finally:
        mo.frame_motion = plain


def landmark(walk: list[np.ndarray], start_s: float, seconds: float, with_samples: bool) -> dict:
    """Track shot D as the frames workflow sees it (25 fps, analysed every 3rd frame, plus the 2 fps
    samples when ``with_samples``) and score its camera path against the drip line."""
    import cv2

    import agcurate.ops.motion as mo
    from agcurate.sources.video import sample_indices
    from agcurate.workflows.frames import small_grey

    n = int(round(seconds * FPS))
    first = 375  # shot D's first frame in the spliced video (6 shots of 3 s)
    src = [min(len(walk) - 1, int((start_s + k / FPS) * 60)) for k in range(n)]
    idx = set(range(0, n, 3))
    if with_samples:
        idx |= {f - first for f in sample_indices(first + n, FPS, 2.0) if f >= first}
    idx = sorted(idx)
    grey = [small_grey(cv2.cvtColor(walk[src[k]], cv2.COLOR_BGR2RGB)) for k in idx]
    with accepted_shares() as accepted:
        motion = mo.track(grey, np.array(idx) / FPS)
    path = mo.smooth_path(motion.transform, np.array(idx) / FPS, motion.size)
    scale = walk[0].shape[1] / motion.size[0]
    s = np.diag([scale, scale, 1.0])
    line0 = drip_line(walk[src[idx[0]]])
    err, still = [], []
    for k in range(1, len(idx)):
        line = drip_line(walk[src[idx[k]]])
        if line is None or line0 is None:
            continue
        m = s @ np.linalg.inv(path[k]) @ path[0] @ np.linalg.inv(s)  # first frame's pixels into frame k's
        pred = cv2.perspectiveTransform(line0.reshape(2, 1, 2), m).ravel()
        err.append(line_distance(pred, line))
        still.append(line_distance(line0, line))
    return {"frames": len(idx), "tracked": float(motion.tracked[1:].mean()),
            "overlap": mo.overlap(path[0], path[-1], motion.size), "err": np.array(err), "still": np.array(still),
            "accepted": accepted, "found": len(err)}


def walk_figures(photo: np.ndarray, swing: tuple[float, float, float], seed: int) -> dict:
    """agcurate's views of a synthetic hand-held walk, scored with the true overlaps."""
    import cv2

    from agcurate.ops.motion import overlaps, select_views
    from agcurate.workflows.frames import small_grey

    frames, maps = handheld_walk(photo, swing_deg=swing[0], swing=swing[1], hz=swing[2], seed=seed)
    idx = list(range(0, len(frames), 3))  # the workflow's analysis rate at 25 fps
    grey = [small_grey(frames[i]) for i in idx]
    sharp = np.array([float(cv2.Laplacian(g, cv2.CV_32F).var()) for g in grey])
    with accepted_shares() as shares:
        res = select_views(grey, np.array(idx) / FPS, sharp)
    kept = [idx[i] for i in np.flatnonzero(res["is_keyframe"])]
    redundant = sum(overlaps(maps[a], maps[[b]], SIZE)[0] > 0.8 for j, a in enumerate(kept) for b in kept[j + 1:])
    cover = np.max([overlaps(maps[k], maps, SIZE) for k in kept], axis=0)
    run = longest = 0
    for c in cover:
        run = run + 1 if c < 0.2 else 0
        longest = max(longest, run)
    return {"kept": len(kept), "redundant": int(redundant), "uncovered": longest / FPS, "min_cover": float(cover.min()),
            "cuts": int(res["segment"].nunique() - 1), "share": max(shares, default=float("nan"))}


def main() -> None:
    import cv2

    import agcurate.ops.motion as mo
    from agcurate.workflows.frames import small_grey

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("AGCURATE_SHARED_DATA", "../shared/data"))
    args = ap.parse_args()
    data = Path(args.data)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    walk = read_all(data / "maize-croprow-video" / "test_video" / "1.mp4")
    d = default_shots(data, 3.0)[-1]
    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in walk[60:64]]
    print("\n== real maize walk: SIFT inliers (full resolution) between frames 1/60, 2/60, 3/60 s apart:",
          [sift_inliers(grey[0], grey[g]) for g in (1, 2, 3)])
    photos = sorted((data / "maize-croprow-video" / "mydata" / "images" / "test").glob("*.jpg"))[1:4]
    share = mo.RESIDUAL_SHARE
    for label, value in (("with the residual check (default)", share), ("without it (before)", float("inf"))):
        mo.RESIDUAL_SHARE = value
        print(f"\n--- {label}")
        for samples in (False, True):
            r = landmark(walk, d.start_s, d.seconds, samples)
            acc = ", ".join(f"{x:.2f}" for x in r["accepted"]) or "none"
            print(f"shot D, {r['frames']} analysed frames ({'every 3rd + the 2 fps samples' if samples else 'every 3rd'}):"
                  f" steps measured {r['tracked']:.0%}, path overlap first-last {r['overlap']:.2f}; drip line found in"
                  f" {r['found']} frames, predicted {np.median(r['err']):.0f} px off (median; max {r['err'].max():.0f}),"
                  f" 'no motion' {np.median(r['still']):.0f} px (max {r['still'].max():.0f}); accepted steps'"
                  f" residual shares: {acc}")
        for shot in (s for s in more_shots(data) if s.pan != (0.0, 0.0)):  # the held-out splice's pans
            frames = _clip_frames(shot, FPS, SIZE)[::3]
            grey = [small_grey(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)) for f in frames]
            with accepted_shares() as shares:
                motion = mo.track(grey, np.arange(len(grey)) * 3 / FPS)
            print(f"slow pan over {Path(shot.source).name}: steps measured {motion.tracked[1:].mean():.0%},"
                  f" largest residual share of an accepted step {max(shares, default=float('nan')):.2f}")
        for name, swing in SWINGS.items():
            for k, p in enumerate(photos):
                rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
                f = walk_figures(rgb, swing, seed=k + 1)
                print(f"synthetic walk, {name} swing {swing}, {p.name}: kept {f['kept']}, redundant {f['redundant']},"
                      f" uncovered {f['uncovered']:.1f} s (least cover {f['min_cover']:.2f}), false cuts {f['cuts']};"
                      f" largest residual share of an accepted step {f['share']:.2f}")
    mo.RESIDUAL_SHARE = share


if __name__ == "__main__":
    main()
