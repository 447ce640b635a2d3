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


def _camera_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-to-camera rotation of a camera above a ground plane (world z up, ground at z = 0) heading
    ``yaw`` (radians, in the ground plane), tilted ``pitch`` up from looking straight down, turned
    ``roll`` about its optical axis. Camera axes: x right, y down the image, z along the view."""
    d = np.array([np.cos(yaw), np.sin(yaw), 0.0])       # heading
    nadir = np.stack([np.cross(-d, [0.0, 0.0, -1.0]), -d, [0.0, 0.0, -1.0]])  # rows: x, y, z of the camera
    c, s = np.cos(pitch), np.sin(pitch)
    tilt = np.array([[1, 0, 0], [0, c, s], [0, -s, c]])  # the view turns from straight down towards ``d``
    c, s = np.cos(roll), np.sin(roll)
    turn = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return turn @ tilt @ nadir


def ground_view(pos: np.ndarray, yaw: float, pitch: float, roll: float, size=(640, 360), hfov_deg: float = 66.0,
                ) -> np.ndarray:
    """The 3x3 map of a camera's pixels onto the ground (texture pixels), for a camera at ``pos``
    (x, y, height in texture pixels) with the given heading, tilt and roll."""
    w, h = size
    f = w / 2 / np.tan(np.deg2rad(hfov_deg) / 2)
    k = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    r = _camera_rotation(yaw, pitch, roll)
    ground_to_image = k @ np.column_stack([r[:, 0], r[:, 1], -r @ pos])  # ground points (x, y, 1), z = 0
    m = np.linalg.inv(ground_to_image)
    return m / m[2, 2]


def drive(texture: np.ndarray, way: str = "forward", seconds: float = 10.0, fps: float = 10.0, size=(640, 360),
          seed: int = 0, shake_deg: float = 0.6, blur_share: float = 0.3, noise: float = 3.0,
          exposure: float = 0.12, moves: float = 5.0) -> tuple[list[np.ndarray], np.ndarray]:
    """A continuous drive over a real picture used as the ground, with a known camera, and the
    artefacts of a phone video: a perspective view (66 degrees across, tilted 40 degrees up from
    straight down going ``forward``, 10 degrees ``sideways``), travel at a steady pace (the view
    moves on by about ``moves`` footprints over the drive), a slow sway and bob, hand shake and roll
    (``shake_deg``, smoothed noise), motion blur over ``blur_share`` of the step from the frame before,
    sensor noise (``noise`` grey levels), and exposure drift (``exposure``: gain up to this share off).
    Returns RGB frames and, per frame, the 3x3 map of its pixels into the texture (the true overlap of
    any two frames follows, e.g. ``agcurate.ops.motion.overlaps``). The height is chosen so that the
    whole drive stays inside the texture."""
    import cv2

    rng = np.random.default_rng(seed)
    th, tw = texture.shape[:2]
    n = int(round(seconds * fps))
    t = np.arange(n) / fps
    forward = way == "forward"
    pitch0 = np.deg2rad(40.0 if forward else 10.0)
    along_x = tw >= th  # travel along the texture's long side
    yaw0 = 0.0 if along_x else np.pi / 2
    if not forward:
        yaw0 += np.pi / 2  # looking across the direction of travel

    def smooth_noise(scale: float, sigma_s: float) -> np.ndarray:
        x = rng.normal(0, 1, n + 40)
        x = cv2.GaussianBlur(x.reshape(-1, 1), (1, 0), sigma_s * fps).ravel()[20:20 + n]
        return scale * x / max(float(np.abs(x).max()), 1e-9)

    shake = [np.deg2rad(shake_deg) * smooth_noise(1.0, 0.08) for _ in range(3)]
    phase = rng.uniform(0, 2 * np.pi, 3)
    # footprint of the camera at height 1 (texture units per unit height), to scale the drive
    corners = np.array([[0, 0, 1], [size[0], 0, 1], [size[0], size[1], 1], [0, size[1], 1]], float).T

    def footprint(height: float, x: float, y: float) -> np.ndarray:
        p = ground_view(np.array([x, y, height]), yaw0, pitch0, 0.0, size) @ corners
        return p[:2] / p[2]

    fp = footprint(1.0, 0.0, 0.0)
    depth = np.ptp(fp[0] if along_x else fp[1])  # footprint extent along the travel, per unit height
    width = np.ptp(fp[1] if along_x else fp[0])
    long_side, short_side = (tw, th) if along_x else (th, tw)
    # travel = moves * depth * height, and footprint (with the drive's sway) stays inside the texture
    height = min(0.92 * long_side / (depth * (1 + moves)), 0.7 * short_side / width)
    travel = moves * depth * height
    start = (long_side - travel) / 2 - (np.mean(fp[0] if along_x else fp[1])) * height
    centre = short_side / 2 - (np.mean(fp[1] if along_x else fp[0])) * height
    s_along = start + travel * t / max(t[-1], 1e-9)
    s_across = centre + 0.05 * width * height * np.sin(2 * np.pi * 0.3 * t + phase[0])
    z = height * (1 + 0.03 * np.sin(2 * np.pi * 1.8 * t + phase[1]))  # a walker's bob
    yaw = yaw0 + np.deg2rad(1.5) * np.sin(2 * np.pi * 0.2 * t + phase[2]) + shake[0]
    pitch = pitch0 + shake[1]
    roll = shake[2] * 1.5
    xy = (s_along, s_across) if along_x else (s_across, s_along)
    maps = np.array([ground_view(np.array([xy[0][k], xy[1][k], z[k]]), yaw[k], pitch[k], roll[k], size)
                     for k in range(n)])
    gain = 1 + exposure * smooth_noise(1.0, 1.5)
    frames = []
    for k in range(n):
        views = [maps[k]] if k == 0 else [maps[k - 1] + u * (maps[k] - maps[k - 1])
                                          for u in np.linspace(1 - blur_share, 1, 6)]
        f = np.zeros((size[1], size[0], 3), np.float32)
        for m in views:
            f += cv2.warpPerspective(texture, np.linalg.inv(m), size, flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REFLECT)
        f = f / len(views) * gain[k] + rng.normal(0, noise, f.shape)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return frames, maps
