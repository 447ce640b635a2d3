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


STTS_PATH = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stts")


def retime_mp4(path: Path, durations: list[int]) -> Path:
    """Make an MP4 variable-frame-rate in place: frame i lasts ``durations[i]`` ticks of the track's timescale.

    Rewrites the time-to-sample table (``stts``) and the sizes of the boxes around it; the moov box must
    come after the media data (as OpenCV writes it), so no chunk offset moves. Keep the sum of the
    durations equal to the original to leave every other duration field valid.
    """
    import struct

    data = bytearray(path.read_bytes())
    chain: list[int] = []  # offsets of moov, trak, ..., stts
    pos, end = 0, len(data)
    for kind in STTS_PATH:
        while pos + 8 <= end:
            size, name = struct.unpack(">I4s", data[pos:pos + 8])
            if name == kind:
                chain.append(pos)
                pos, end = pos + 8, pos + size
                break
            pos += size
        else:
            raise ValueError(f"{path}: no {kind.decode()} box")
    stts = chain[-1]
    old_size = struct.unpack(">I", data[stts:stts + 4])[0]
    count = struct.unpack(">I", data[stts + 12:stts + 16])[0]  # size, "stts", version+flags, entry count
    n_frames = sum(struct.unpack(">I", data[stts + 16 + 8 * k:stts + 20 + 8 * k])[0] for k in range(count))
    assert len(durations) == n_frames, f"{path}: {n_frames} frames, {len(durations)} durations"
    body = struct.pack(">4sII", b"stts", 0, len(durations)) + b"".join(struct.pack(">II", 1, d) for d in durations)
    new = struct.pack(">I", 4 + len(body)) + body
    grow = len(new) - old_size
    assert data.find(b"mdat") < chain[0], "moov must follow mdat"
    data[stts:stts + old_size] = new
    for box in chain[:-1]:
        size = struct.unpack(">I", data[box:box + 4])[0]
        data[box:box + 4] = struct.pack(">I", size + grow)
    path.write_bytes(bytes(data))
    return path


def timescale_mp4(path: Path) -> int:
    """The video track's timescale (ticks per second) from its ``mdhd`` box (version 0)."""
    import struct

    data = path.read_bytes()
    at = data.find(b"mdhd")
    return struct.unpack(">I", data[at + 16:at + 20])[0]


def window_pan(img: np.ndarray, corners: list[tuple[int, int]], size=SIZE, window: tuple[int, int] | None = None,
               ) -> list[np.ndarray]:
    """Frames cut from a large picture at the given top-left corners (a window ``window`` pixels wide
    and high, default ``size``) and resized to ``size``: a camera sliding over a scene whose true
    overlap between any two frames is known (``window_overlap``)."""
    import cv2

    ww, wh = window or size
    return [cv2.resize(np.ascontiguousarray(img[y:y + wh, x:x + ww]), size, interpolation=cv2.INTER_AREA)
            for x, y in corners]


def window_overlap(a: tuple[int, int], b: tuple[int, int], window: tuple[int, int]) -> float:
    """Shared area of two equal windows at top-left corners ``a`` and ``b``, as a share of one window."""
    w, h = window
    return max(0, w - abs(a[0] - b[0])) * max(0, h - abs(a[1] - b[1])) / (w * h)
