"""``frames``: sample and embed videos, keep non-redundant keyframes, write them as JPEG + CSV + HTML.

The selection itself is the pure function ``agcurate.ops.frames.select_keyframes``; this module
glues embedding (through the cached store), decoding of the chosen frames and the outputs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import NoUsableInputError
from .ops.frames import DEFAULT_THRESHOLD

CSV_NAME = "frames.csv"
HTML_NAME = "frames.html"
JPEG_DIR = "frames"
JPEG_QUALITY = 90


@dataclass
class VideoKeyframes:
    """Result for one video: every sampled frame's selection row, and the written keyframes."""

    path: str
    table: "pd.DataFrame"  # noqa: F821  one row per sampled frame (select_keyframes + sharpness)
    duration_s: float = 0.0
    video_fps: float = 0.0
    folder: str = ""  # sub-folder of frames/ holding this video's JPEGs ("" for a single video)

    @property
    def kept(self) -> "pd.DataFrame":  # noqa: F821
        return self.table[self.table["keep"]]


@dataclass
class FramesResult:
    """What ``keyframes()`` produced: per-video results, the CSV/HTML paths and the embedding run."""

    videos: list[VideoKeyframes]
    csv: Path | None = None
    html: Path | None = None
    embeddings: object = None
    written: list[Path] = field(default_factory=list)

    @property
    def n_sampled(self) -> int:
        return sum(len(v.table) for v in self.videos)

    @property
    def n_kept(self) -> int:
        return sum(int(v.table["keep"].sum()) for v in self.videos)

    @property
    def duration_s(self) -> float:
        return sum(v.duration_s for v in self.videos)


def keyframes(paths: Iterable[str | os.PathLike] | None = None, *, out: str | os.PathLike = "agcurate-out",
              fps: float | None = None, threshold: float = DEFAULT_THRESHOLD, write: bool = True,
              verify_layout: bool = True, skip_static: bool = True, **embed_kwargs) -> FramesResult:
    """Embed the sampled frames of every video under ``paths`` and keep their keyframes.

    ``fps`` samples per second (None: the video source's default, 0: every frame); ``threshold`` is
    the cosine similarity at which two frames count as showing the same thing. With ``write`` the
    keyframes go to ``out/frames/`` (a sub-folder per video when there are several), the table to
    ``out/frames.csv`` and a contact sheet to ``out/frames.html``. ``verify_layout`` decodes the
    samples once more for tiny grey thumbnails that confirm a repeated shot. ``skip_static`` does
    not embed a sample that looks the same as the previous one and is not sharper (a static hold
    costs one embedding). ``embed_kwargs`` go to ``embed``.
    """
    from dataclasses import replace

    from .embedding import embed
    from .ops.frames import select_keyframes
    from .sources import SourceOptions

    opts = embed_kwargs.pop("source_options", None)
    if opts is None and paths is None:  # the last collection's sampling, as embed() would use it
        from .store import last_collection, resolve_store_root

        opts = SourceOptions(**last_collection(resolve_store_root(embed_kwargs.get("store"))).get(
            "source_options", {}))
    opts = replace(opts or SourceOptions(), skip_static=skip_static)
    if fps is not None:
        opts = replace(opts, fps=fps)
    emb = embed(None if paths is None else list(paths), source_options=opts, **embed_kwargs)
    frames = emb.items["kind"].to_numpy() == "frame"
    if not frames.any():
        where = ", ".join(emb.inputs[:3]) + (" ..." if len(emb.inputs) > 3 else "")
        raise NoUsableInputError(f"no video found in {where} ({len(emb)} still image(s) ignored)")
    videos: list[VideoKeyframes] = []
    items = emb.items
    by_key = {it.key: it for it in emb.to_items()}
    for path in dict.fromkeys(items.loc[frames, "path"]):
        rows = np.flatnonzero(frames & (items["path"].to_numpy() == path))
        rows = rows[np.argsort(items["frame"].to_numpy()[rows], kind="stable")]
        sub = items.iloc[rows].reset_index(drop=True)
        sub_items = [by_key[k] for k in sub["key"]]
        table = select_keyframes(emb.vectors[rows], sub, threshold=threshold,
                                 layout=layout_vectors(sub_items) if verify_layout else None)
        table["sharpness"] = sub["sharpness"].to_numpy() if "sharpness" in sub else np.nan
        table["key"] = sub["key"].to_numpy()
        meta = _meta(sub)
        fps_v = float(meta.get("video_fps") or 0.0)
        n_frames = int(meta.get("n_frames") or (int(sub["frame"].max()) + 1))
        videos.append(VideoKeyframes(path=path, table=table, video_fps=fps_v,
                                     duration_s=n_frames / fps_v if fps_v > 0 else float(sub["time_s"].max())))
    result = FramesResult(videos=videos, embeddings=emb)
    if write:
        write_outputs(result, Path(out), emb)
    return result


LAYOUT_SIZE = (16, 9)


def layout_vector(rgb: np.ndarray, size: tuple[int, int] = LAYOUT_SIZE) -> np.ndarray:
    """A tiny grey thumbnail, mean removed and L2-normalised: the framing of a picture, not its meaning."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    t = cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    t -= t.mean()
    n = float(np.linalg.norm(t))
    # the last entry marks a flat picture (a black or grey screen), so two of them still match
    return np.append(t / n, 0.0).astype(np.float32) if n > 1e-3 else np.append(np.zeros_like(t), 1.0)


def layout_vectors(items) -> np.ndarray:
    """``layout_vector`` of each item (frames of one video, decoded in one pass); zeros where unreadable."""
    from .sources import read_group

    out = np.zeros((len(items), LAYOUT_SIZE[0] * LAYOUT_SIZE[1] + 1), np.float32)
    if not items:
        return out
    pos = {it.key: i for i, it in enumerate(items)}
    for dec in read_group(items):
        if dec.rgb is not None:
            out[pos[dec.item.key]] = layout_vector(dec.rgb)
    return out


def _meta(sub) -> dict:
    import json

    raw = sub["meta"].iloc[0] if "meta" in sub and len(sub) else ""
    try:
        return json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}


def _folder_names(paths: list[str]) -> list[str]:
    """A distinct, file-system-safe sub-folder name per video (its file name, numbered on clashes)."""
    names: list[str] = []
    used: set[str] = set()
    for p in paths:
        base = re.sub(r"[^\w.-]+", "_", Path(p).name).strip("._") or "video"
        name, k = base, 2
        while name.lower() in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name.lower())
        names.append(name)
    return names


def _remove_previous(out: Path) -> None:
    """Delete the JPEGs a previous run listed in ``out/frames.csv`` (only those, only under frames/)."""
    import pandas as pd

    csv = out / CSV_NAME
    if not csv.is_file():
        return
    try:
        old = pd.read_csv(csv, usecols=["path"])["path"].dropna().astype(str)
    except (ValueError, OSError, pd.errors.ParserError):
        return
    root = (out / JPEG_DIR).resolve()
    for p in old:
        f = Path(p).resolve()
        if f.suffix.lower() == ".jpg" and root in f.parents and f.is_file():
            f.unlink()


def write_outputs(result: FramesResult, out: Path, emb) -> None:
    """Write keyframe JPEGs, ``frames.csv`` and ``frames.html`` under ``out``."""
    import pandas as pd

    from .report.frames import write_frames_html
    from .report.html import write_csv

    out.mkdir(parents=True, exist_ok=True)
    _remove_previous(out)
    folders = _folder_names([v.path for v in result.videos]) if len(result.videos) > 1 else [""]
    by_key = {it.key: it for it in emb.to_items()}
    rows = []
    for video, folder in zip(result.videos, folders):
        video.folder = folder
        target = out / JPEG_DIR / folder if folder else out / JPEG_DIR
        kept = video.kept
        written = _write_jpegs([by_key[k] for k in kept["key"]], target)
        result.written.extend(p for p in written.values() if p is not None)
        seg = video.table.groupby("segment")["time_s"].min().sort_index()
        seg_end = dict(zip(seg.index, list(seg.to_numpy()[1:]) + [video.duration_s]))
        for r in kept.itertuples(index=False):
            jpeg = written.get(r.key)
            rows.append({"frame": int(r.frame), "time_s": round(float(r.time_s), 3),
                         "path": str(jpeg.resolve()) if jpeg else "", "score": round(float(r.score), 4),
                         "video": video.path, "segment": int(r.segment),
                         "segment_start_s": round(float(seg.loc[r.segment]), 3),
                         "segment_end_s": round(float(seg_end[r.segment]), 3),
                         "sharpness": round(float(r.sharpness), 2)})
    cols = ["frame", "time_s", "path", "score", "video", "segment", "segment_start_s", "segment_end_s", "sharpness"]
    result.csv = write_csv(pd.DataFrame(rows, columns=cols), out / CSV_NAME)
    result.html = write_frames_html(result, out / HTML_NAME)


def _write_jpegs(items, target: Path) -> dict[str, Path | None]:
    """Decode ``items`` (frames of one video, one sequential pass) and save each as a JPEG."""
    from PIL import Image

    from .sources import read_group

    target.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path | None] = {it.key: None for it in items}
    if not items:
        return written
    for dec in read_group(items):
        if dec.rgb is None:
            continue
        f = target / f"frame_{dec.item.frame:06d}.jpg"
        tmp = f.with_name(f.name + ".tmp")
        Image.fromarray(dec.rgb).save(tmp, format="JPEG", quality=JPEG_QUALITY)
        os.replace(tmp, f)
        written[dec.item.key] = f
    return written


def format_time(seconds: float) -> str:
    """``mm:ss.ss`` (``h:mm:ss.ss`` past an hour) for captions."""
    seconds = max(0.0, float(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{s:05.2f}" if h else f"{int(m):02d}:{s:05.2f}"
