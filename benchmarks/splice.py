"""Splice test videos from real clips in shared/data: shots with known boundaries, a static hold, a repeat."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZE = (640, 360)
FPS = 25.0


@dataclass
class Shot:
    """One shot of the spliced video: where it comes from and which distinct scene it shows."""

    name: str        # distinct scene id: a repeated shot has the name of the earlier one
    source: str      # video file, or a still image for a static hold
    start_s: float
    seconds: float
    first: int = -1  # frame range in the spliced video, filled by splice()
    last: int = -1
    pan: tuple[float, float] = (0.0, 0.0)  # a still seen through a window (60%) sliding this share across, down


def fit(frame: np.ndarray, size=SIZE) -> np.ndarray:
    """Centre-crop to the target aspect ratio, then resize (BGR uint8)."""
    import cv2

    h, w = frame.shape[:2]
    tw, th = size
    if w * th > h * tw:
        nw = int(round(h * tw / th))
        frame = frame[:, (w - nw) // 2:(w - nw) // 2 + nw]
    else:
        nh = int(round(w * th / tw))
        frame = frame[(h - nh) // 2:(h - nh) // 2 + nh]
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _clip_frames(shot: Shot, fps: float, size) -> list[np.ndarray]:
    import cv2

    n_out = int(round(shot.seconds * fps))
    if Path(shot.source).suffix.lower() in (".jpg", ".jpeg", ".png"):
        if shot.pan != (0.0, 0.0):
            img = cv2.imread(shot.source)
            h, w = img.shape[:2]
            vw = int(min(0.6 * w, 0.6 * h * size[0] / size[1]))
            vh = int(round(vw * size[1] / size[0]))
            x0, y0 = (w - vw) // 2 - int(shot.pan[0] * w / 2), (h - vh) // 2 - int(shot.pan[1] * h / 2)
            return [fit(img[y:y + vh, x:x + vw], size) for x, y in
                    ((int(round(x0 + k / max(n_out - 1, 1) * shot.pan[0] * w)),
                      int(round(y0 + k / max(n_out - 1, 1) * shot.pan[1] * h))) for k in range(n_out))]
        still = fit(cv2.imread(shot.source), size)
        return [still] * n_out
    cap = cv2.VideoCapture(shot.source)
    src_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames, i = [], 0
    wanted = [int((shot.start_s + k / fps) * src_fps) for k in range(n_out)]
    cache = None
    while len(frames) < n_out:
        target = wanted[len(frames)]
        while i <= target:
            ok, f = cap.read()
            if not ok:
                break
            cache, i = f, i + 1
        if cache is None:
            raise RuntimeError(f"cannot read {shot.source}")
        frames.append(fit(cache, size))
        if i <= target:  # clip ended: hold its last frame
            frames.extend([frames[-1]] * (n_out - len(frames)))
    cap.release()
    return frames


def splice(shots: list[Shot], out: str | Path, fps: float = FPS, size=SIZE, fourcc: str = "mp4v") -> list[Shot]:
    """Write the shots one after the other into ``out``; fill each shot's frame range."""
    import cv2

    w = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    pos = 0
    for s in shots:
        frames = _clip_frames(s, fps, size)
        s.first, s.last = pos, pos + len(frames) - 1
        for f in frames:
            w.write(f)
        pos += len(frames)
    w.release()
    return shots


HOLD_STILL = "maize-croprow-video/mydata/images/test/1637.jpg"       # a field unlike the maize clip
LOOKALIKE_STILL = "maize-croprow-video/mydata/images/test/1139.jpg"  # the same kind of rows as the clip


def default_shots(data: str | Path, seconds: float = 3.0, hold: str = HOLD_STILL) -> list[Shot]:
    """A, B, a static hold, C, A again, D from intel-sample-videos and maize-croprow-video.

    A = a parking-lot camera (car-detection, 0-3 s), B = a signer (asl_gestures/book), hold = a
    maize field photo, C = bottles on a table, A again = the parking lot 21 s later, D = a
    handheld walk along maize rows (maize-croprow-video/test_video/1.mp4).
    """
    data = Path(data)
    iv = data / "intel-sample-videos"
    return [
        Shot("A", str(iv / "car-detection.mp4"), 0.0, seconds),
        Shot("B", str(iv / "asl_gestures/book.mkv"), 0.0, seconds),
        Shot("hold", str(data / hold), 0.0, seconds),
        Shot("C", str(iv / "bottle-detection.mp4"), 5.0, seconds),
        Shot("A", str(iv / "car-detection.mp4"), 21.0, seconds),
        Shot("D", str(data / "maize-croprow-video/test_video/1.mp4"), 0.5, seconds),
    ]


def more_shots(data: str | Path, seconds: float = 3.0) -> list[Shot]:
    """E, F, G, H, I, E again, J from other sources than ``default_shots`` (no threshold was set on
    them): E = a signer (asl_gestures/walk), F = a slow drone-height pan over an aerial tile (the view
    slides 20% of the tile, its last frame still shares about two thirds with its first), G = the empty
    room of one-by-one-person-detection, H = a drone photo (static hold), I = the car park between two
    cars, J = a slow pan down an aerial orthophoto."""
    data = Path(data)
    iv = data / "intel-sample-videos"
    df = data / "deepforest-aerial"
    return [
        Shot("E", str(iv / "asl_gestures/walk.mkv"), 0.0, seconds),
        Shot("F", str(df / "2019_YELL_2_541000_4977000_image_crop.png"), 0.0, seconds, pan=(0.2, 0.0)),
        Shot("G", str(iv / "one-by-one-person-detection.mp4"), 2.0, seconds),
        Shot("H", str(df / "AWPE Pigeon Lake 2020 DJI_0005.JPG"), 0.0, seconds),
        Shot("I", str(iv / "car-detection.mp4"), 11.0, seconds),
        Shot("E", str(iv / "asl_gestures/walk.mkv"), 0.0, seconds),
        Shot("J", str(df / "OSBS_029.png"), 0.0, seconds, pan=(0.0, 0.15)),
    ]


def handheld_walk(photo: np.ndarray, seconds: float = 6.0, fps: float = FPS, size=SIZE, zoom_end: float = 0.4,
                  swing_deg: float = 4.0, swing: float = 0.08, hz: float = 1.6, seed: int = 0,
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """A hand-held walk over a real photo with a known camera: the view closes in on a point ahead
    (to ``zoom_end`` of its first width) while it swings (turning ``swing_deg`` degrees and sliding
    ``swing`` of the photo's width, at ``hz``), each frame motion-blurred over the step from the one
    before. Returns the RGB frames and, per frame, the 3x3 map of its pixels into the photo (so the
    true overlap of any two frames follows, e.g. ``agcurate.ops.motion.overlaps``)."""
    import cv2

    rng = np.random.default_rng(seed)
    ph, pw = photo.shape[:2]
    n = int(round(seconds * fps))
    phase = rng.uniform(0, 2 * np.pi, 3)
    frames, maps = [], []

    def view(m: np.ndarray) -> np.ndarray:
        return cv2.warpPerspective(photo, np.linalg.inv(m), size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)

    for k in range(n):
        t = k / fps
        z = 1 + (1 / zoom_end - 1) * k / max(n - 1, 1)
        ww = 0.8 * pw / z
        wh = ww * size[1] / size[0]
        ang = np.deg2rad(swing_deg) * np.sin(2 * np.pi * hz * t + phase[0])
        cx = pw / 2 + swing * pw * np.sin(2 * np.pi * hz * t + phase[1]) / z
        cy = 0.55 * ph + 0.5 * swing * ph * np.sin(4 * np.pi * hz * t + phase[2]) / z
        c, s = np.cos(ang), np.sin(ang)
        m = (np.array([[c, -s, cx], [s, c, cy], [0, 0, 1]]) @ np.array([[1, 0, -ww / 2], [0, 1, -wh / 2], [0, 0, 1]])
             @ np.diag([ww / size[0], wh / size[1], 1.0]))
        f = view(m).astype(np.float32)
        if maps:  # motion blur: the exposure sweeps over the step from the previous pose
            for u in (0.25, 0.5, 0.75):
                f += view(maps[-1] + u * (m - maps[-1]))
            f /= 4
        frames.append(f.astype(np.uint8))
        maps.append(m)
    return frames, np.array(maps)
