"""``agcurate.dedup``: exact and near-duplicate groups of a collection, and moving the copies away."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..embedding.config import EmbedConfig
from ..ops.dedup import DEFAULT_THRESHOLD, KEEP_POLICIES
from .common import check_local_move, check_choice, check_range, embed_input, output_record, record_outputs

CSV_COLUMNS = ["group", "path", "keep", "score", "reason", "frame", "window", "width", "height", "bytes"]
COSINE_THRESHOLD = 0.95  # the default --threshold with --no-verify (embedding cosine alone)


@dataclass
class DedupResult:
    """``table`` holds the ``duplicates.csv`` rows; ``result`` the per-item op table (``score``,
    ``is_duplicate``, ``group``, ``keep``, ``reason``), row for row with ``items``."""

    table: "pd.DataFrame"  # noqa: F821
    result: "pd.DataFrame"  # noqa: F821
    items: "pd.DataFrame"  # noqa: F821
    summary: dict
    embeddings: object
    threshold: float
    keep: str
    csv: Path | None = None
    html: Path | None = None
    moves: object = None  # fileops.MoveReport when files were moved
    move_candidates: list[str] = field(default_factory=list)


def file_sizes(items) -> list[int]:
    """Bytes of each whole-file item (0 for tiles, frames and vanished files); an object behind a URL
    has its size in its fingerprint (``size-etag``), so nothing is fetched."""
    from ..sources.remote import is_url

    sizes = []
    for r in items.itertuples(index=False):
        whole = int(r.frame) < 0 and int(r.x) < 0
        try:
            if not whole:
                sizes.append(0)
            elif is_url(r.path):
                sizes.append(int(str(r.fingerprint).split("-", 1)[0] or 0))
            else:
                sizes.append(os.stat(r.path).st_size)
        except (OSError, ValueError):
            sizes.append(0)
    return sizes


def pixel_loader(items) -> Callable[[int], "np.ndarray"]:  # noqa: F821
    """``load(i)``: RGB pixels of row ``i`` through the sources (tiles and frames load their own
    window / frame); what the pixel verification of ``ops.dedup`` needs from files."""
    from ..items import items_from_frame
    from ..sources import load_rgb

    cache: dict[int, object] = {}

    def load(i: int):
        if i not in cache:
            cache[i] = items_from_frame(items.iloc[[i]])[0]
        return load_rgb(cache[i])

    return load


def item_views(load: Callable[[int], "np.ndarray"], n: int, *,  # noqa: F821
               progress: bool | None = None) -> tuple["np.ndarray", list["np.ndarray"]]:  # noqa: F821
    """(thumbnails, previews) of rows ``0..n-1`` from one read of each item: (n, THUMB, THUMB) grey
    thumbnails for the turn/mirror candidates and small grey previews for the quick pre-check of
    ``ops.dedup`` (an unreadable item gets flat ones, which propose and pass nothing)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from ..ops.dedup import THUMB, preview, thumbnail
    from ..progress import progress_bar
    from ..system import cpu_threads

    def one(i: int):
        try:
            rgb = load(i)
            return thumbnail(rgb), preview(rgb)
        except Exception:  # noqa: BLE001 - verification reports unreadable items; here they just drop out
            return np.zeros((THUMB, THUMB), np.float32), np.full((THUMB, THUMB), -128, np.int8)

    thumbs = np.zeros((n, THUMB, THUMB), np.float32)
    previews = []
    with ThreadPoolExecutor(max(1, min(4, cpu_threads()))) as pool, \
            progress_bar(n, "thumbnails", enabled=progress, unit="items") as bar:
        for i, (t, p) in enumerate(pool.map(one, range(n))):
            thumbs[i] = t
            previews.append(p)
            bar.advance(1)
    return thumbs, previews


def item_thumbnails(load: Callable[[int], "np.ndarray"], n: int, *,  # noqa: F821
                    progress: bool | None = None) -> "np.ndarray":  # noqa: F821
    """(n, THUMB, THUMB) grey thumbnails of rows ``0..n-1`` (see ``item_views``)."""
    return item_views(load, n, progress=progress)[0]


def dedup(paths: Iterable[str | os.PathLike] | None = None, *, threshold: float | None = None,
          keep: str = "largest", verify: bool = True, rotations: bool = False, turns: bool = True,
          out: str | os.PathLike | None = None, move_to: str | os.PathLike | None = None,
          config: EmbedConfig | None = None, progress: bool | None = None,
          on_embedded: Callable | None = None, **options) -> DedupResult:
    """Find exact and near-duplicate groups under ``paths`` (None: the last embedded collection).

    ``threshold``: aligned-pixel similarity that makes a pair duplicates (default 0.85; with
    ``verify=False`` the embedding cosine, default 0.95). ``keep``: largest, sharpest or first.
    ``turns`` (default) also proposes turned and mirrored copies from grey thumbnails (one cheap
    decode per item); ``rotations`` also searches with 90/180-degree turned embeddings (two more
    embedding passes: finds turned copies that are also cropped). With ``out`` the
    ``duplicates.csv`` and ``dedup.html`` are written there; with ``move_to`` every removable whole
    file is moved under that folder (manifest first; ``agcurate undo`` puts them back).
    ``options`` are ``EmbedConfig`` fields (``model``, ``store``, ``workers``...).
    """
    from ..ops.dedup import duplicates_table, find_duplicates, summary

    check_choice("--keep", keep, KEEP_POLICIES)
    check_range("--threshold", threshold, -1.0, 1.0)
    check_local_move(move_to, paths)
    cfg = EmbedConfig.make(config, **options)
    if threshold is None:
        threshold = DEFAULT_THRESHOLD if verify else COSINE_THRESHOLD
    emb = embed_input(paths, cfg, progress=progress, on_embedded=on_embedded, neighbor_index=True)
    turned = None
    if rotations and verify and len(emb) > 1:
        from ..embedding.rotations import turned_vectors

        turned = turned_vectors(emb, config=cfg, progress=progress)
    items = emb.items.copy()
    items["bytes"] = file_sizes(items)
    load = pixel_loader(items)
    thumbs = previews = None
    if turns and verify and len(items) > 1:
        thumbs, previews = item_views(load, len(items), progress=progress)
    res = find_duplicates(emb.vectors, items, threshold=threshold, keep=keep, verify=verify, turned=turned,
                          load=load, progress=progress, thumbs=thumbs, previews=previews)
    table = duplicates_table(items, res)
    result = DedupResult(table=table[CSV_COLUMNS], result=res, items=items,
                         summary=summary(res, items["bytes"].tolist()), embeddings=emb,
                         threshold=threshold, keep=keep)
    if out is not None:
        write_outputs(result, Path(out))
    if move_to is not None:
        result.move_candidates = removable_files(result.table)
        if result.move_candidates:
            from .fileops import move_files

            note = {"command": "dedup"}
            if out is not None:
                note["out"] = str(Path(out).resolve())
            result.moves = move_files(result.move_candidates, Path(move_to), emb.inputs, note=note)
    return result


def write_outputs(result: DedupResult, out: Path) -> None:
    """``duplicates.csv`` and ``dedup.html`` under ``out``, recorded in ``out/outputs.json``."""
    from ..report import write_csv
    from ..report.dedup import write_dedup_page

    result.csv = write_csv(result.table, out / "duplicates.csv")
    result.html = write_dedup_page(out / "dedup.html", result.table, result.items, result.summary,
                                   threshold=result.threshold, keep=result.keep)
    record_outputs(out, [result.csv, result.html], output_record("dedup", result.embeddings))


def removable_files(table) -> list[str]:
    """Whole files that are not kept; a file whose tiles or frames are also kept stays."""
    whole = (table["frame"] < 0) & (table["window"] == "")
    kept_paths = set(table.loc[table["keep"], "path"])
    return [p for p in dict.fromkeys(table.loc[whole & ~table["keep"], "path"]) if p not in kept_paths]
