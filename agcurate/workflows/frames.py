"""``agcurate.frames``: sample and embed videos, keep non-redundant keyframes, write them as JPEG + CSV + HTML.

The selection itself is the pure function ``agcurate.ops.keyframes.select_keyframes``; this module
glues embedding (through the cached store), decoding of the chosen frames and the outputs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..embedding.config import EmbedConfig
from ..errors import NoUsableInputError, UsageError
from ..ops.keyframes import DEFAULT_THRESHOLD
from .common import check_range, embed_input, output_record, record_outputs

CSV_NAME = "frames.csv"
HTML_NAME = "frames.html"
JPEG_DIR = "frames"
JPEG_QUALITY = 90
CSV_COLUMNS = ["frame", "time_s", "path", "score", "video", "segment", "segment_start_s", "segment_end_s",
               "sharpness"]


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
        return self.table[self.table["is_keyframe"]]


@dataclass
class FramesResult:
    """What ``frames()`` produced: per-video results, ``table`` (the ``frames.csv`` rows), the
    CSV/HTML paths and the embedding run."""

    videos: list[VideoKeyframes]
    table: "pd.DataFrame | None" = None  # noqa: F821
    csv: Path | None = None
    html: Path | None = None
    embeddings: object = None
    written: list[Path] = field(default_factory=list)

    @property
    def n_sampled(self) -> int:
        return sum(len(v.table) for v in self.videos)

    @property
    def n_kept(self) -> int:
        return sum(int(v.table["is_keyframe"].sum()) for v in self.videos)

    @property
    def duration_s(self) -> float:
        return sum(v.duration_s for v in self.videos)


def frames(paths: Iterable[str | os.PathLike] | None = None, *, threshold: float = DEFAULT_THRESHOLD,
           out: str | os.PathLike | None = None, verify_layout: bool = True, skip_static: bool = True,
           config: EmbedConfig | None = None, progress: bool | None = None,
           on_embedded: Callable | None = None, **options) -> FramesResult:
    """Embed the sampled frames of every video under ``paths`` and keep their keyframes.

    ``fps`` (an ``EmbedConfig`` field, in ``options`` or ``config``) is the samples per second
    (None: the video source's default, 0: every frame); ``threshold`` is the cosine similarity at
    which two frames count as showing the same thing. With ``out`` the keyframes go to
    ``out/frames/`` (a sub-folder per video when there are several), the table to
    ``out/frames.csv`` and a contact sheet to ``out/frames.html``. ``verify_layout`` decodes the
    samples once more for tiny grey thumbnails that confirm a repeated shot. ``skip_static`` does
    not embed a sample that looks the same as the previous one and is not sharper (a static hold
    costs one embedding). ``options``: ``EmbedConfig`` fields.
    """
    from dataclasses import replace

    from ..ops.keyframes import select_keyframes
    from ..sources import SourceOptions

    check_range("--threshold", threshold, -1.0, 1.0)
    cfg = EmbedConfig.make(config, **options)
    if cfg.tile is not None:
        raise UsageError("--tile does not apply to videos: frames keeps whole frames")
    opts = cfg.source_options()
    if paths is None and cfg.bands is None and cfg.stretch is None:
        # the last collection's sampling, as embed() would use it (a given --fps still applies)
        from ..embedding.store import last_collection

        opts = SourceOptions(**last_collection(cfg.store_root()).get("source_options", {}))
        if cfg.fps is not None:
            opts = replace(opts, fps=cfg.fps)
    opts = replace(opts or SourceOptions(), skip_static=skip_static)
    from ..embedding.encode import NothingToEmbedError

    try:
        emb = embed_input(paths, cfg, progress=progress, on_embedded=on_embedded, source_options=opts)
    except NothingToEmbedError as exc:
        if exc.skipped:  # unreadable files: the message names them
            raise
        raise NoUsableInputError(exc.message("video")) from None  # no file at all: frames wants videos
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
        duration = float(meta.get("duration_s") or 0.0)  # the container's (right for variable frame rates)
        if duration <= 0:
            duration = n_frames / fps_v if fps_v > 0 else float(sub["time_s"].max())
        videos.append(VideoKeyframes(path=path, table=table, video_fps=fps_v, duration_s=duration))
    result = FramesResult(videos=videos, embeddings=emb)
    if out is not None:
        write_outputs(result, Path(out), emb)
    else:
        result.table = frames_table(result, {})
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
    from ..sources import read_group

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


def frames_table(result: FramesResult, jpegs: dict[str, Path]) -> "pd.DataFrame":  # noqa: F821
    """The ``frames.csv`` rows: one per keyframe, with its JPEG's path (empty when not written)."""
    import pandas as pd

    rows = []
    for video in result.videos:
        seg = video.table.groupby("segment")["time_s"].min().sort_index()
        seg_end = dict(zip(seg.index, list(seg.to_numpy()[1:]) + [video.duration_s]))
        for r in video.kept.itertuples(index=False):
            jpeg = jpegs.get(r.key)
            rows.append({"frame": int(r.frame), "time_s": round(float(r.time_s), 3),
                         "path": str(jpeg.resolve()) if jpeg else "", "score": round(float(r.score), 4),
                         "video": video.path, "segment": int(r.segment),
                         "segment_start_s": round(float(seg.loc[r.segment]), 3),
                         "segment_end_s": round(float(seg_end[r.segment]), 3),
                         "sharpness": round(float(r.sharpness), 2)})
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def write_outputs(result: FramesResult, out: Path, emb) -> None:
    """Write keyframe JPEGs, ``frames.csv`` and ``frames.html`` under ``out``, recorded in
    ``out/outputs.json``."""
    from ..report.frames import write_frames_html
    from ..report.html import write_csv

    out.mkdir(parents=True, exist_ok=True)
    _remove_previous(out)
    folders = _folder_names([v.path for v in result.videos]) if len(result.videos) > 1 else [""]
    by_key = {it.key: it for it in emb.to_items()}
    jpegs: dict[str, Path] = {}
    for video, folder in zip(result.videos, folders):
        video.folder = folder
        target = out / JPEG_DIR / folder if folder else out / JPEG_DIR
        written = _write_jpegs([by_key[k] for k in video.kept["key"]], target)
        jpegs.update((k, p) for k, p in written.items() if p is not None)
        result.written.extend(p for p in written.values() if p is not None)
    result.table = frames_table(result, jpegs)
    result.csv = write_csv(result.table, out / CSV_NAME)
    result.html = write_frames_html(result, out / HTML_NAME)
    record_outputs(out, [result.csv, result.html, out / JPEG_DIR], output_record("frames", emb))


def _write_jpegs(items, target: Path) -> dict[str, Path | None]:
    """Decode ``items`` (frames of one video, one sequential pass) and save each as a JPEG."""
    from PIL import Image

    from ..sources import read_group

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

