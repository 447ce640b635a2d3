"""Small synthetic test videos built from real still photos, with known shot structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = (160, 90)  # width, height
FPS = 10.0


def photo(name: str) -> np.ndarray:
    """A real RGB photo: scikit-image's bundled samples, or an image from examples/images."""
    if "." in name:
        from PIL import Image

        return np.asarray(Image.open(Path(__file__).resolve().parents[1] / "examples" / "images" / name).convert("RGB"))
    import skimage.data

    img = getattr(skimage.data, name)()
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img[:, :, :3]


def pan(img: np.ndarray, n: int, size=SIZE, zoom: float = 0.8, shift: float = 0.0) -> list[np.ndarray]:
    """``n`` frames of a slow horizontal pan across ``img`` (a moving camera over one scene)."""
    import cv2

    w, h = size
    ih, iw = img.shape[:2]
    ch = int(min(ih, iw * h / w) * zoom)
    cw = int(ch * w / h)
    y0 = (ih - ch) // 2
    span = iw - cw
    out = []
    for k in range(n):
        x0 = int(round(span * (shift + (1 - shift) * k / max(n - 1, 1)) * 0.999))
        crop = img[y0:y0 + ch, x0:x0 + cw]
        out.append(cv2.resize(crop, size, interpolation=cv2.INTER_AREA))
    return out


def hold(img: np.ndarray, n: int, size=SIZE, sharp_at: int | None = None, blur: float = 0.0) -> list[np.ndarray]:
    """``n`` copies of one still (a static hold); with ``blur`` all but frame ``sharp_at`` are blurred."""
    import cv2

    still = pan(img, 1, size, zoom=0.9)[0]
    frames = []
    for k in range(n):
        f = still.copy()
        if blur and k != sharp_at:
            f = cv2.GaussianBlur(f, (0, 0), blur)
        frames.append(f)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = FPS, fourcc: str = "mp4v") -> Path:
    """Write RGB frames with OpenCV's VideoWriter (mp4v in .mp4, MJPG in .avi)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert wr.isOpened(), f"cannot write {path}"
    for f in frames:
        wr.write(np.ascontiguousarray(f[:, :, ::-1]))
    wr.release()
    return path


SHOT_FRAMES = 10
SHARP_AT = 4  # the one sharp frame of the blurred static hold (an even frame: sampled at 5 fps)


def story(path: Path) -> tuple[Path, dict[str, range]]:
    """Shots A, B, a static hold (one sharp frame), C, A again, D; returns the frame range of each."""
    n = SHOT_FRAMES
    shots = [
        ("A", pan(photo("OSBS_029.jpg"), n)),
        ("B", pan(photo("coffee"), n)),
        ("hold", hold(photo("chelsea"), n, sharp_at=SHARP_AT, blur=1.5)),
        ("C", pan(photo("rocket"), n)),
        ("A2", pan(photo("OSBS_029.jpg"), n, shift=0.1)),
        ("D", pan(photo("astronaut"), n)),
    ]
    frames, ranges, pos = [], {}, 0
    for name, fr in shots:
        ranges[name] = range(pos, pos + len(fr))
        frames += fr
        pos += len(fr)
    return write_video(path, frames), ranges
