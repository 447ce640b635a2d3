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
