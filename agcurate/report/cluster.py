"""The cluster report: a map of the collection, its clusters, and duplicates / outliers found beside it.

One ``report.html`` with Plotly's JavaScript inlined (opens offline from disk, no CDN, no server) plus
the ``thumbs/`` folder. Item data travel as one JSON block; every name reaches the page as text
(Jinja2 autoescaping, ``tojson``, ``textContent`` in the script), never as markup.

The ``duplicates.csv`` and ``outliers.csv`` beside it are merged only when they belong to the same
collection and encoder (:func:`side_files`); the page lists what it left out and why.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..items import items_from_frame
from .outputs import mismatch, read_manifest

GALLERY_TOP = 24          # images per cluster gallery rendered up front (the rest on request)
NOISE_TOP = 48
DUPLICATE_GROUPS = 40     # duplicate groups shown
OUTLIERS_TOP = 48         # outliers shown
WEBGL_FROM = 5_000        # points from which the scatter uses WebGL (when the browser has it)


def plotly_js() -> str:
    """Plotly's bundled JavaScript, safe to inline inside a ``<script>`` element."""
    import plotly.offline

    return re.sub(r"</(script)", r"<\\/\1", plotly.offline.get_plotlyjs(), flags=re.IGNORECASE)


def read_duplicates(path: str | os.PathLike) -> "pd.DataFrame | None":  # noqa: F821
    """``duplicates.csv`` (group,path,keep,score) as written by ``agcurate dedup``; None when absent."""
    return _read_csv(path, ("group", "path", "keep", "score"))


def read_outliers(path: str | os.PathLike) -> "pd.DataFrame | None":  # noqa: F821
    """``outliers.csv`` (path,score,is_outlier,rank) as written by ``agcurate outliers``; None when absent."""
    return _read_csv(path, ("path", "score", "is_outlier", "rank"))


@dataclass
class SideFiles:
    """The ``dedup`` / ``outliers`` tables a cluster report merges (None: absent or left out), and
    the files it left out as ``(file name, why)``."""

    duplicates: "pd.DataFrame | None" = None  # noqa: F821
    outliers: "pd.DataFrame | None" = None  # noqa: F821
    ignored: list[tuple[str, str]] = field(default_factory=list)


SIDE_FILES = {"duplicates": ("duplicates.csv", read_duplicates), "outliers": ("outliers.csv", read_outliers)}


def side_files(out_dir: str | os.PathLike, paths: Sequence[str], collection: dict | None = None) -> SideFiles:
    """The side files of ``out_dir`` that belong to the report of ``paths`` (its items' paths).

    With a record in ``outputs.json`` and a ``collection`` (``inputs``, ``encoder_id``, ``encoder``)
    a file is merged when both name the same input paths and encoder. Without a record (a folder
    written before outputs were recorded, or a CSV from elsewhere) it is merged only when every path
    it lists is an item of this report: a CSV of another collection would show foreign items.
    """
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    index_of = _path_index([str(p) for p in paths])
    side = SideFiles()
    for attr, (name, read) in SIDE_FILES.items():
        df = read(out_dir / name)
        if df is None:
            continue
        entry = manifest.get(name)
        if entry is not None and collection is not None:
            why = mismatch(entry, collection)
        else:
            listed = list(dict.fromkeys(str(p) for p in df["path"]))
            missing = sum(not _lookup(index_of, p) for p in listed)
            why = None if not missing else (
                ("no record of the collection it was made for, and " if entry is None else "")
                + f"{missing:,} of its {len(listed):,} paths are not in this collection")
        if why is None:
            setattr(side, attr, df)
        else:
            side.ignored.append((name, why))
    return side


def write_cluster_report(out_dir: str | os.PathLike, items, table, *, thumbs: Sequence[str | None] | None = None,
                         duplicates=None, outliers=None, side: SideFiles | None = None,
                         collection: dict | None = None, title: str = "agcurate cluster report",
                         params: dict | None = None, thumb_size: int = 192) -> Path:
    """Write ``out_dir/report.html`` for the clustering ``table`` of ``items`` (an Embeddings.items frame).

    ``thumbs`` (paths relative to ``out_dir``) are made with :func:`agcurate.report.thumbnails` when not
    given. ``duplicates`` / ``outliers`` default to the CSVs of ``dedup`` / ``outliers`` in ``out_dir``
    that belong to this ``collection`` (``side``: as :func:`side_files` found them); the page names the
    files it left out.
    """
    from .html import render_page, thumbnails

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(table)
    paths = items["path"].astype(str).tolist()
    if side is None:
        side = side_files(out_dir, paths, collection)
    if thumbs is None:
        thumbs = thumbnails(items_from_frame(items), out_dir, size=thumb_size)
    if duplicates is None:
        duplicates = side.duplicates
    if outliers is None:
        outliers = side.outliers

    labels = table["cluster"].to_numpy(dtype=np.int64)
    rank = table["rank"].to_numpy(dtype=np.int64)
    prob = table["probability"].to_numpy(dtype=np.float64)
    where = _where_labels(items)
    index_of = _path_index(paths)

    dup_groups, dup_mark = _duplicate_groups(duplicates, index_of)
    top_out, out_mark = _top_outliers(outliers, index_of)

    for m in [m for grp in dup_groups for m in grp["members"]] + top_out:
        m.update(_card(m["i"], paths, thumbs, where) if m["i"] is not None else
                 {"name": Path(m["path"]).name, "thumb": None, "href": "", "where": ""})

    ids = sorted(set(labels.tolist()) - {-1})
    clusters = []
    for c in ids + ([-1] if (labels < 0).any() else []):
        idx = np.flatnonzero(labels == c)
        idx = idx[np.argsort(rank[idx], kind="stable")]
        clusters.append({
            "id": int(c), "name": "noise" if c < 0 else f"cluster {c}", "size": int(len(idx)),
            "share": len(idx) / n if n else 0.0, "mean_prob": float(prob[idx].mean()) if len(idx) else 0.0,
            "members": [int(i) for i in idx],
            "shown": [_card(i, paths, thumbs, where) for i in idx[:NOISE_TOP if c < 0 else GALLERY_TOP]],
        })

    data = {
        "x": np.round(table["map_x"].to_numpy(dtype=np.float64), 3).tolist(),
        "y": np.round(table["map_y"].to_numpy(dtype=np.float64), 3).tolist(),
        "c": labels.tolist(),
        "p": np.round(prob, 3).tolist(),
        "path": paths,
        "where": where,
        "thumb": [t.rsplit("/", 1)[-1][:-4] if t else None for t in thumbs],
        "clusters": [{"id": c["id"], "name": c["name"], "members": c["members"]} for c in clusters],
        "dup": sorted(dup_mark),
        "out": sorted(out_mark),
        "webgl_from": WEBGL_FROM,
        "shown": {str(c["id"]): len(c["shown"]) for c in clusters},
    }
    noise = int((labels < 0).sum())
    stats = {"items": n, "clusters": len(ids), "noise": noise, "noise_share": noise / n if n else 0.0}
    return render_page(out_dir / "report.html", "cluster.html.j2", title=title, data=data, stats=stats,
                       clusters=clusters, dup_groups=dup_groups, outliers=top_out,
                       n_dup_groups=_n_groups(duplicates), n_outliers=_n_outliers(outliers),
                       ignored=side.ignored, params=params or {}, plotly_js=plotly_js())


# --- helpers --------------------------------------------------------------------------------------

def _read_csv(path, columns) -> "pd.DataFrame | None":  # noqa: F821
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path, keep_default_na=False)
    except Exception:  # noqa: BLE001 - a broken side file must not break the report
        return None
    if not set(columns) <= set(df.columns):
        return None
    return df


def _truthy(v) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "y", "t")
    try:
        return bool(v) and not (isinstance(v, float) and np.isnan(v))
    except Exception:  # noqa: BLE001
        return False


def _path_index(paths: list[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        out.setdefault(p, []).append(i)
    return out


def _lookup(index_of: dict[str, list[int]], path: str) -> list[int]:
    """Items of ``path`` (as written, or resolved when the CSV holds relative paths)."""
    hit = index_of.get(path)
    if hit is None and path:
        try:
            hit = index_of.get(str(Path(path).expanduser().resolve()))
        except OSError:
            hit = None
    return hit or []


def _where_labels(items) -> list[str]:
    """``frame N`` / ``window x,y,w,h`` for frames and tiles, empty for whole images."""
    n = len(items)
    col = {k: (items[k].to_numpy() if k in items else np.full(n, -1)) for k in ("frame", "x", "y", "w", "h")}
    out = []
    for f, x, y, w, h in zip(col["frame"], col["x"], col["y"], col["w"], col["h"]):
        if int(f) >= 0:
            out.append(f"frame {int(f)}")
        elif int(w) > 0:
            out.append(f"window {int(x)},{int(y)},{int(w)},{int(h)}")
        else:
            out.append("")
    return out


def _card(i: int, paths, thumbs, where, **extra) -> dict:
    from .html import file_href

    try:
        href = file_href(paths[i])
    except (OSError, ValueError):
        href = ""
    return {"i": int(i), "path": paths[i], "name": Path(paths[i]).name, "thumb": thumbs[i] if thumbs else None,
            "href": href, "where": where[i], **extra}


def _n_groups(dups) -> int:
    return 0 if dups is None else int(dups["group"].nunique())


def _n_outliers(outs) -> int:
    return 0 if outs is None else int(sum(_truthy(v) for v in outs["is_outlier"]))


def _duplicate_groups(dups, index_of) -> tuple[list[dict], set[int]]:
    """The largest duplicate groups (members with thumbnails where the item is in the collection)."""
    if dups is None or dups.empty:
        return [], set()
    marked: set[int] = set()
    groups = []
    for g, part in dups.groupby("group", sort=False):
        members = []
        for r in part.itertuples(index=False):
            hits = _lookup(index_of, str(r.path))
            marked.update(hits)
            members.append({"path": str(r.path), "keep": _truthy(r.keep), "score": _float(r.score),
                            "i": hits[0] if hits else None})
        members.sort(key=lambda m: (not m["keep"], m["path"]))
        groups.append({"group": str(g), "members": members})
    groups.sort(key=lambda grp: (-len(grp["members"]), grp["group"]))
    return groups[:DUPLICATE_GROUPS], marked


def _top_outliers(outs, index_of) -> tuple[list[dict], set[int]]:
    """Items flagged as outliers, best ranked first."""
    if outs is None or outs.empty:
        return [], set()
    flagged = outs[[_truthy(v) for v in outs["is_outlier"]]].copy()
    flagged["rank_f"] = [_float(v) for v in flagged["rank"]]
    flagged = flagged.sort_values(["rank_f", "path"], kind="stable")
    marked: set[int] = set()
    top = []
    for r in flagged.itertuples(index=False):
        hits = _lookup(index_of, str(r.path))
        marked.update(hits)
        if len(top) < OUTLIERS_TOP:
            top.append({"path": str(r.path), "score": _float(r.score), "rank": r.rank_f,
                        "i": hits[0] if hits else None})
    return top, marked


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")
