"""Video files through OpenCV: one item per sampled frame, a whole video decoded in one sequential pass.

Container metadata (frame count, duration) is not trusted: frames are counted by demuxing the
packets (cheap, nothing is decoded), and a file that ends early only loses the frames it lacks.
The same pass reads each packet's timestamp, so a frame's ``time_s`` is the container's presentation
time (phones record variable frame rate), and ``--fps`` samples the frames nearest to 0, 1/fps, 2/fps...
seconds. Packets come in decode order, so the timestamps are sorted into presentation order; where
they are missing or repeat (e.g. MPEG program streams), times fall back to frame index / frame rate.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import SourceError
from ..items import Item, file_fingerprint
from .base import Decoded, Source, SourceOptions
from .sniff import VIDEO_FORMATS

DEFAULT_FPS = 2.0  # samples per second of video when SourceOptions.fps is None
FALLBACK_FPS = 25.0  # assumed frame rate when the container states none
STATIC_DIFF = 1.0  # mean absolute grey difference (0-255) on a 32x18 thumbnail: below it, "the same picture"
STATIC_SHARPER = 1.05  # ... unless the new sample is this much sharper (then it may be the better keyframe)


def sample_indices(n_frames: int, video_fps: float, fps: float | None) -> list[int]:
    """0-based frame indices to keep when sampling ``fps`` frames per second (0 or >= video rate: all).

    For a constant frame rate: frame ``round(k * video_fps / fps)`` for k = 0, 1, ... (halves round up).
    """
    return sample_times([i / video_fps for i in range(max(n_frames, 0))], video_fps, fps)


def sample_times(times: Sequence[float], video_fps: float, fps: float | None) -> list[int]:
    """0-based indices of the frames whose timestamps lie nearest to 0, 1/fps, 2/fps, ... seconds.

    ``times`` are the frames' presentation times in seconds, increasing. A tie goes to the later
    frame; a target past the last frame's half duration ends the list; a frame is listed once.
    ``fps`` 0, or at least the video's rate, keeps every frame; ``None`` means ``DEFAULT_FPS``.
    """
    n = len(times)
    fps = DEFAULT_FPS if fps is None else float(fps)
    if fps <= 0 or fps >= video_fps:
        return list(range(n))
    if n == 0:
        return []
    last_duration = times[-1] - times[-2] if n > 1 else 1.0 / video_fps
    end = times[-1] + last_duration / 2
    eps = 1e-9
    out: list[int] = []
    j = 0
    k = 0
    while True:
        target = k / fps
        if target >= end - eps:
            return out
        while j + 1 < n and times[j + 1] - target <= target - times[j] + eps:
            j += 1
        if not out or j != out[-1]:
            out.append(j)
        k += 1


def presentation_times(stamps_ms: Sequence[float], video_fps: float) -> list[float]:
    """Seconds since the first frame for each frame in presentation order, from the packets' timestamps
    (milliseconds, in decode order); index / ``video_fps`` when they are missing or not distinct."""
    ordered = sorted(stamps_ms)
    if len(ordered) > 1 and all(b - a > 1e-3 for a, b in zip(ordered, ordered[1:])):
        return [(t - ordered[0]) / 1000.0 for t in ordered]
    return [i / video_fps for i in range(len(stamps_ms))]


def fourcc_name(value: float) -> str:
    """The four-character codec code OpenCV reports, printable (e.g. ``h264``), or ``?``."""
    code = int(value) if value and value > 0 else 0
    chars = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return chars.strip() if chars.strip() and chars.isprintable() else "?"


MP4_TOP_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"pdin", b"moof", b"mfra",
                 b"meta", b"styp", b"sidx", b"ssix", b"prft", b"emsg", b"mvex", b"junk", b"pnot"}


def mp4_truncated(path: str | os.PathLike) -> bool:
    """True when an ISO-BMFF (mp4/mov) file's top-level boxes are intact but the last one runs past
    the file's end (a cut-off download or copy); False for intact or unrecognisable files."""
    size = os.path.getsize(path)
    pos = 0
    with open(path, "rb") as fh:
        while pos + 8 <= size:
            fh.seek(pos)
            head = fh.read(16)
            box, kind = struct.unpack(">I", head[:4])[0], head[4:8]
            if kind not in MP4_TOP_BOXES:
                return False
            if box == 1 and len(head) >= 16:
                box = struct.unpack(">Q", head[8:16])[0]
            elif box == 0:  # the box extends to the end of the file
                return False
            if box < 8:
                return False
            pos += box
        return pos > size


@contextmanager
def quiet_opencv():
    """Silence OpenCV's own log lines while probing broken files: the reason goes into SourceError."""
    import cv2

    try:
        old = cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # very old builds
        yield
        return
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(old)


def _open(path: str, raw: bool = False):
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg quiet: problems come back as SourceError
    import cv2

    if raw:  # demux only: grab() reads packets without decoding them
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_FORMAT, -1])
    else:
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    return cap


class VideoSource(Source):
    """Video containers OpenCV's FFmpeg backend reads (mp4/mov, mkv/webm, avi, mpeg-ts/ps, flv, asf)."""

    name = "video"
    formats = frozenset(VIDEO_FORMATS)

    def probe(self, path: str) -> tuple[int, float, str]:
        """Frames actually present, frame rate and codec of a video; ``SourceError`` when unusable."""
        n, video_fps, codec, _ = self.probe_times(path)
        return n, video_fps, codec

    def probe_times(self, path: str) -> tuple[int, float, str, list[float]]:
        """``probe`` plus each frame's presentation time in seconds (see ``presentation_times``)."""
        with quiet_opencv():
            return self._probe(path)

    def _probe(self, path: str) -> tuple[int, float, str, list[float]]:
        import cv2

        cap = _open(path, raw=True)
        try:
            if not cap.isOpened():
                if mp4_truncated(path):
                    raise SourceError("truncated video: the file ends before its container does "
                                      "(incomplete download or copy?)")
                raise SourceError("cannot open video: corrupt or unsupported container")
            video_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            codec = fourcc_name(cap.get(cv2.CAP_PROP_FOURCC))
            stamps: list[float] = []
            while cap.grab():
                stamps.append(float(cap.get(cv2.CAP_PROP_POS_MSEC)))
        finally:
            cap.release()
        n = len(stamps)
        if n == 0:
            raise SourceError("no video frames in the file (audio only, empty or truncated)")
        if not (0 < video_fps < 1000):
            video_fps = FALLBACK_FPS
        cap = _open(path)
        try:
            ok = cap.isOpened() and cap.grab() and cap.retrieve()[0]
        finally:
            cap.release()
        if not ok:
            raise SourceError(f"no decodable frame: codec {codec!r} is not supported by this OpenCV "
                              f"build, or the data is corrupt")
        return n, video_fps, codec, presentation_times(stamps, video_fps)

    def items(self, path: Path, opts: SourceOptions) -> list[Item]:
        n, video_fps, codec, times = self.probe_times(str(path))
        fp = file_fingerprint(path)
        last = times[-1] - times[-2] if n > 1 else 1.0 / video_fps
        meta = {"video_fps": round(video_fps, 6), "n_frames": n, "codec": codec,
                "duration_s": round(times[-1] + last, 6)}
        frames = sample_times(times, video_fps, opts.fps)
        if getattr(opts, "skip_static", False):
            frames = self.moving_samples(str(path), frames)
        return [Item(path=str(path), kind="frame", frame=i, time_s=round(times[i], 6), fingerprint=fp,
                     meta=meta)
                for i in frames]

    def moving_samples(self, path: str, frames: list[int]) -> list[int]:
        """Drop samples that repeat the last kept one: same 32x18 grey thumbnail, not sharper.

        A static hold or a fixed camera watching nothing move costs one embedding, not one per
        sample; a sharper copy of the same picture is still kept, so the sharpest can win.
        """
        import cv2
        import numpy as np

        if len(frames) < 2:
            return frames
        probe = [Item(path=path, kind="frame", frame=i) for i in frames]
        keep: dict[int, bool] = {i: True for i in frames}
        last_thumb, last_sharp = None, 0.0
        for dec in self.read(probe, SourceOptions()):
            if dec.rgb is None:
                continue  # reported when the frame is read for embedding
            gray = cv2.cvtColor(dec.rgb, cv2.COLOR_RGB2GRAY)
            thumb = cv2.resize(gray, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
            h, w = gray.shape
            scale = min(1.0, 160.0 / max(w, 1))
            small = cv2.resize(gray, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
            sharp = float(cv2.Laplacian(small, cv2.CV_32F).var())
            if (last_thumb is not None and float(np.abs(thumb - last_thumb).mean()) < STATIC_DIFF
                    and sharp <= last_sharp * STATIC_SHARPER):
                keep[dec.item.frame] = False
                continue
            last_thumb, last_sharp = thumb, sharp
        return [i for i in frames if keep[i]]

    def read(self, items: Sequence[Item], opts: SourceOptions) -> Iterator[Decoded]:
        """Decode the wanted frames in one pass: ``grab()`` skips, ``retrieve()`` decodes kept ones."""
        import cv2

        wanted = sorted(items, key=lambda it: it.frame)
        with quiet_opencv():
            cap = _open(wanted[0].path)
        if not cap.isOpened():
            for it in wanted:
                yield Decoded(it, error="cannot open video (file changed, corrupt or unsupported)")
            return
        try:
            pos = 0  # index of the next frame grab() returns
            for k, it in enumerate(wanted):
                ended = False
                while pos <= it.frame:
                    if not cap.grab():
                        ended = True
                        break
                    pos += 1
                if ended:
                    msg = (f"no frame {it.frame}: the video breaks off after {pos} frame(s) "
                           f"(truncated, corrupt or changed file)")
                    for rest in wanted[k:]:
                        yield Decoded(rest, error=msg)
                    return
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    yield Decoded(it, error=f"cannot decode frame {it.frame}")
                    continue
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 else cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
                yield Decoded(it, rgb=rgb, size=(rgb.shape[1], rgb.shape[0]))
        finally:
            cap.release()
