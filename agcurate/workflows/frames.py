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
from ..ops.keyframes import DEFAULT_THRESHOLD, LAYOUT_THRESHOLD
from ..ops.motion import DEFAULT_OVERLAP, MODES
from .common import check_choice, check_range, embed_input, output_record, record_outputs

CSV_NAME = "frames.csv"
HTML_NAME = "frames.html"
JPEG_DIR = "frames"
JPEG_QUALITY = 90
CSV_COLUMNS = ["frame", "time_s", "path", "score", "video", "segment", "segment_start_s", "segment_end_s",
               "sharpness", "reason", "overlap", "camera"]
ANALYSIS_FPS = 10.0   # frames per second measured for camera motion and change (at most the video's rate)
ANALYSIS_WIDTH = 160  # ... as grey pictures this wide
AHEAD_FRAMES = 20_000  # frames analysed while embedding, at most (~290 MB of grey frames, ~33 min of video)


@dataclass
class VideoKeyframes:
    """Result for one video: every sampled frame's selection row, and the written keyframes."""

    path: str
    table: "pd.DataFrame"  # noqa: F821  one row per sampled frame (select_keyframes + sharpness)
    duration_s: float = 0.0
    video_fps: float = 0.0
    folder: str = ""  # sub-folder of frames/ holding this video's JPEGs ("" for a single video)
    items: dict = field(default_factory=dict)  # key -> Item of analysed frames that were not embedded

    @property
    def kept(self) -> "pd.DataFrame":  # noqa: F821
        return self.table[self.table["is_keyframe"]]

    @property
    def n_sampled(self) -> int:
        """Frames embedded (the others were only measured for motion and change)."""
        return int(self.table["sampled"].sum()) if "sampled" in self.table else len(self.table)


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
        return sum(v.n_sampled for v in self.videos)

    @property
    def n_kept(self) -> int:
        return sum(int(v.table["is_keyframe"].sum()) for v in self.videos)

    @property
    def duration_s(self) -> float:
        return sum(v.duration_s for v in self.videos)


def frames(paths: Iterable[str | os.PathLike] | None = None, *, threshold: float = DEFAULT_THRESHOLD,
           mode: str = "auto", overlap: float = DEFAULT_OVERLAP,
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

    ``mode``: ``shots`` keeps one frame per run of similar embeddings (cuts, repeats);
    ``coverage`` measures camera motion (``ANALYSIS_FPS`` small grey frames per second) and keeps a
    frame each time the view overlaps every kept frame of its shot less than ``overlap``; ``auto``
    (default) does the same for a moving camera, and for a fixed one keeps the opening view and a
    frame per thing passing through. In both, a shot that repeats an earlier keyframe (embedding at
    least ``threshold`` similar and the same framing) keeps nothing.
    """
    from dataclasses import replace

    from ..sources import SourceOptions

    check_range("--threshold", threshold, -1.0, 1.0)
    check_choice("--mode", mode, MODES)
    check_range("--overlap", overlap, 0.05, 0.95)
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
    from concurrent.futures import ThreadPoolExecutor

    from ..embedding.encode import NothingToEmbedError
    from ..system import opencv_threads  # not from embedding.loader: torch loads while the motion is measured

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agcurate-motion") if mode != "shots" else None
    analyses: dict = {}

    def start_analyses(found) -> None:  # motion and change need no embedding: measured meanwhile
        budget = AHEAD_FRAMES  # the grey frames of these are held until selection: memory stays bounded
        for path, sampled in _frames_by_video(found).items():
            budget -= ANALYSIS_FPS * float((sampled[0].meta or {}).get("duration_s") or 0.0)
            if budget < 0:
                break  # the other videos are measured when their turn comes
            analyses[path] = pool.submit(analyse_views, sampled, mode=mode, overlap=overlap)

    # OpenCV single-threaded in this process while the analysis thread may use it: its thread pool
    # would not survive the fork of the decode workers (see embedding.loader.fork_safe_opencv)
    cv_threads = opencv_threads(1) if pool is not None else None
    try:
        try:
            emb = embed_input(paths, cfg, progress=progress, on_embedded=on_embedded, source_options=opts,
                              on_listed=start_analyses if pool is not None else None)
        except NothingToEmbedError as exc:
            if exc.skipped:  # unreadable files: the message names them
                raise
            raise NoUsableInputError(exc.message("video")) from None  # no file at all: frames wants videos
        return _select_and_write(emb, mode, overlap, threshold, verify_layout, out, analyses)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            opencv_threads(cv_threads)


def _frames_by_video(items) -> dict:
    """Frame items grouped by video path, each group in frame order."""
    groups: dict = {}
    for it in items:
        if it.kind == "frame":
            groups.setdefault(it.path, []).append(it)
    return {p: sorted(g, key=lambda it: it.frame) for p, g in groups.items()}


def _select_and_write(emb, mode: str, overlap: float, threshold: float, verify_layout: bool, out,
                      analyses: dict) -> FramesResult:
    """Keyframes of every video in ``emb`` and, with ``out``, the outputs. ``analyses``: video path ->
    future of its ``ViewAnalysis`` (started while embedding; measured here for videos without one)."""
    from ..ops.keyframes import select_keyframes

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
        extra: dict = {}
        if mode == "shots":
            table = select_keyframes(emb.vectors[rows], sub, threshold=threshold,
                                     layout=layout_vectors(sub_items) if verify_layout else None)
            table["sharpness"] = sub["sharpness"].to_numpy() if "sharpness" in sub else np.nan
            table["key"] = sub["key"].to_numpy()
            table["reason"] = np.where(table["is_keyframe"], "new shot", "")
            table["overlap"] = np.nan
            table["camera"] = ""
            table["sampled"] = True
        else:
            pending = analyses.get(path)
            table, extra = view_keyframes(sub_items, emb.vectors[rows], mode=mode, overlap=overlap,
                                          threshold=threshold, analysis=pending.result() if pending else None)
        meta = _meta(sub)
        fps_v = float(meta.get("video_fps") or 0.0)
        n_frames = int(meta.get("n_frames") or (int(sub["frame"].max()) + 1))
        duration = float(meta.get("duration_s") or 0.0)  # the container's (right for variable frame rates)
        if duration <= 0:
            duration = n_frames / fps_v if fps_v > 0 else float(sub["time_s"].max())
        videos.append(VideoKeyframes(path=path, table=table, video_fps=fps_v, duration_s=duration, items=extra))
    result = FramesResult(videos=videos, embeddings=emb)
    if out is not None:
        write_outputs(result, Path(out), emb)
    else:
        result.table = frames_table(result, {})
    return result


LAYOUT_SIZE = (16, 9)


def layout_vector(rgb: np.ndarray, size: tuple[int, int] = LAYOUT_SIZE) -> np.ndarray:
    """A tiny grey thumbnail, mean removed and L2-normalised: the framing of a picture (RGB or grey), not
    its meaning."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
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


def analysis_frames(n_frames: int, video_fps: float, sampled: Iterable[int]) -> list[int]:
    """Frames measured for motion and change: about ``ANALYSIS_FPS`` per second, plus every sampled one."""
    step = max(1, int(round(video_fps / ANALYSIS_FPS))) if video_fps > 0 else 1
    return sorted(set(range(0, n_frames, step)) | {int(f) for f in sampled if 0 <= f < n_frames})


def small_grey(rgb: np.ndarray, width: int = ANALYSIS_WIDTH) -> np.ndarray:
    """A grey copy ``width`` pixels wide (area-averaged: little noise, no aliasing)."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    return cv2.resize(gray, (width, max(2, int(round(h * width / max(w, 1))))), interpolation=cv2.INTER_AREA)


def analysed_frames(video, sampled: Iterable[int] = ()) -> tuple[list, list[np.ndarray]]:
    """The items and small grey pictures of the frames measured for motion and change
    (``analysis_frames``) of one video, decoded in one pass. ``video``: a path or one of its frame
    items (the others are made like it); ``sampled``: frames to include besides (items are reused
    when ``sampled`` maps frames to items). Unreadable frames are left out."""
    from dataclasses import replace

    from ..items import Item, file_fingerprint
    from ..sources import read_group
    from ..sources.remote import is_url, local_copy
    from ..sources.video import VideoSource

    if not isinstance(video, Item):
        video = Item(path=str(Path(video).resolve()), kind="frame", frame=0, fingerprint=file_fingerprint(video))
    given = sampled if isinstance(sampled, dict) else {}
    if is_url(video.path):  # one local copy for the whole analysis; the items keep their URL
        with local_copy(video.path) as local:
            here = {f: replace(it, path=str(local)) for f, it in given.items()} if given else sampled
            items, grey = analysed_frames(replace(video, path=str(local)), here)
        return [given.get(it.frame) or replace(it, path=video.path) for it in items], grey
    _, video_fps, _, times = VideoSource().probe_times(video.path)
    wanted = analysis_frames(len(times), video_fps, sampled)
    items = [given.get(f) or replace(video, frame=f, time_s=round(times[f], 6)) for f in wanted]
    grey: dict[int, np.ndarray] = {}
    for dec in read_group(items):
        if dec.rgb is not None:
            grey[dec.item.frame] = small_grey(dec.rgb)
    items = [it for it in items if it.frame in grey]
    return items, [grey[it.frame] for it in items]


@dataclass
class ViewAnalysis:
    """Camera motion and change of one video, before embeddings are known: the analysed frames'
    items, small grey pictures and sharpness, and ``select_views``' table (with ``frame``, ``time_s``)."""

    items: list
    grey: list
    sharpness: np.ndarray
    table: "pd.DataFrame"  # noqa: F821


def analyse_views(sampled_items: list, *, mode: str = "auto", overlap: float = DEFAULT_OVERLAP) -> ViewAnalysis:
    """Decode one video's analysed frames (``analysed_frames``) and select its views by motion and
    change (``ops.motion.select_views``). Needs no embedding, so it can run while the samples are
    being embedded."""
    import cv2

    from ..ops.motion import select_views

    by_frame = {it.frame: it for it in sampled_items}
    items, grey = analysed_frames(sampled_items[0], by_frame)
    sharp = np.array([float(cv2.Laplacian(g, cv2.CV_32F).var()) for g in grey])
    t = np.array([it.time_s for it in items])
    table = select_views(grey, t, sharp, mode=mode, min_overlap=overlap)
    table.insert(0, "time_s", t)
    table.insert(0, "frame", [it.frame for it in items])
    return ViewAnalysis(items=items, grey=grey, sharpness=sharp, table=table)


def view_keyframes(sampled_items: list, vectors: np.ndarray, *, mode: str = "auto",
                   overlap: float = DEFAULT_OVERLAP, threshold: float = DEFAULT_THRESHOLD,
                   analysis: ViewAnalysis | None = None) -> tuple["pd.DataFrame", dict]:  # noqa: F821
    """Keyframes of one video by camera motion and change (``analyse_views``, or ``analysis`` when
    already done), then repeats of an earlier shot dropped with the embeddings of the nearest
    sampled frames and tiny thumbnails.

    Returns one row per analysed frame (``select_keyframes``' columns plus ``reason``, ``overlap``,
    ``camera``, ``sampled``, ``sharpness``, ``key``) and the items of analysed frames that were not
    embedded (so their JPEGs can be written)."""
    import pandas as pd

    from ..ops.keyframes import distance_scores

    if analysis is None:
        analysis = analyse_views(sampled_items, mode=mode, overlap=overlap)
    by_frame = {it.frame: it for it in sampled_items}
    items, frames_, sharp = analysis.items, analysis.grey, analysis.sharpness
    table = analysis.table.copy()
    # the embedding of each analysed frame: that of the nearest sampled frame of its shot (of any shot
    # when its shot has none)
    s_frames = np.array([it.frame for it in sampled_items])
    pos = {f: i for i, f in enumerate(table["frame"])}
    s_seg = np.array([table["segment"].iat[pos[f]] if f in pos else -1 for f in s_frames])
    dist = np.abs(table["frame"].to_numpy()[:, None] - s_frames[None, :]).astype(np.float64)
    dist += np.where(table["segment"].to_numpy()[:, None] == s_seg[None, :], 0.0, 1e12)
    v = np.asarray(vectors, np.float32)[dist.argmin(axis=1)]
    lay = np.stack([layout_vector(g) for g in frames_]) if frames_ else np.zeros((0, 1), np.float32)
    keep = table["is_keyframe"].to_numpy().copy()
    seg = table["segment"].to_numpy()
    shot = seg.copy()
    kept_rows: list[int] = []
    for i in np.flatnonzero(keep):
        if table.at[i, "reason"] == "new shot" and kept_rows:
            earlier = [k for k in kept_rows if seg[k] != seg[i]]
            if earlier:  # as in select_keyframes: most of the shot alike, some frame of it framed alike
                members = np.flatnonzero(seg == seg[i])
                later = [k for k in np.flatnonzero(keep) if k > i and seg[k] == seg[i]]
                if later:  # the frames this keyframe stands for: up to the shot's next keyframe
                    members = members[members < later[0]]
                sims = np.median(v[members] @ v[earlier].T, axis=0)
                ok = (sims >= threshold) & ((lay[members] @ lay[earlier].T).max(axis=0) >= LAYOUT_THRESHOLD)
                if ok.any():
                    keep[i] = False
                    shot[seg == seg[i]] = seg[earlier[int(np.argmax(np.where(ok, sims, -np.inf)))]]
                    continue
        kept_rows.append(int(i))
    table["is_keyframe"] = keep
    table.loc[~keep, "reason"] = ""
    _add_look_changes(table, v, lay, sharp, threshold)
    table["shot"] = shot
    table["is_repeat"] = shot != seg
    table["score"] = distance_scores(v, table["is_keyframe"].to_numpy())
    table["sharpness"] = sharp
    table["sampled"] = [it.frame in by_frame for it in items]
    table["key"] = [it.key for it in items]
    extra = {it.key: it for it in items if it.frame not in by_frame}
    cols = ["frame", "time_s", "segment", "shot", "is_repeat", "is_keyframe", "score", "reason", "overlap",
            "camera", "coverage", "sampled", "sharpness", "key"]
    return pd.DataFrame(table[cols]).reset_index(drop=True), extra


def _add_look_changes(table: "pd.DataFrame", v: np.ndarray, lay: np.ndarray, sharp: np.ndarray,  # noqa: F821
                      threshold: float) -> None:
    """In place: in each ``untracked`` stretch (its motion could not be measured, so it was kept as
    one fixed view), a keyframe where its look changes for at least a second
    (``ops.keyframes.look_changes`` on the embeddings), reason ``new look``, overlap unknown (NaN)."""
    from ..ops.keyframes import look_changes

    cam = table["camera"].to_numpy()
    seg = table["segment"].to_numpy()
    keep = table["is_keyframe"].to_numpy()
    times = table["time_s"].to_numpy(np.float64)
    start = 0
    for i in range(1, len(table) + 1):
        if i < len(table) and cam[i] == cam[start] and seg[i] == seg[start]:
            continue
        if cam[start] == "untracked":
            rows = np.arange(start, i)
            for k in look_changes(v[rows], sharp[rows], keep[rows], times[rows], threshold, lay[rows]):
                table.loc[rows[k], ["is_keyframe", "reason", "overlap"]] = [True, "new look", np.nan]
        start = i


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
                         "sharpness": round(float(r.sharpness), 2), "reason": r.reason,
                         "overlap": round(float(r.overlap), 3) if np.isfinite(r.overlap) else None,
                         "camera": r.camera})
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
    for video in result.videos:
        by_key.update(video.items)
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

