"""The dedup and search pages: tables from the operations turned into template context."""

from __future__ import annotations

import os
from pathlib import Path

from ..items import window_text
from .html import file_href, human_bytes, render_page, thumbnails


def _where(frame: int, window: str) -> str:
    if frame >= 0:
        return f"frame {frame}"
    return f"tile {window}" if window else ""


def _thumbs(frame, out_dir: Path) -> list[str | None]:
    from ..embedding import items_from_frame

    return thumbnails(items_from_frame(frame), out_dir)


def write_dedup_page(out: str | os.PathLike, table, items, summary: dict, *, threshold: float,
                     keep: str) -> Path:
    """``dedup.html``: one section per group, its files side by side, the kept one outlined.

    ``table`` is ``duplicates_table``'s frame, ``items`` the items table it was made from.
    """
    out = Path(out)
    rows = items.set_index("key", drop=False) if "key" in items else items
    keys = _keys_for(table, items)
    thumbs = _thumbs(rows.loc[keys].reset_index(drop=True), out.parent) if keys else []
    groups: dict[int, dict] = {}
    for r, thumb in zip(table.itertuples(index=False), thumbs):
        g = groups.setdefault(int(r.group), {"id": int(r.group), "members": []})
        g["members"].append({
            "name": Path(r.path).name, "href": file_href(r.path), "thumb": thumb, "keep": bool(r.keep),
            "score": float(r.score), "reason": r.reason, "where": _where(int(r.frame), str(r.window or "")),
            "dims": f"{int(r.width)}x{int(r.height)}", "size": human_bytes(r.bytes) if int(r.bytes) > 0 else "",
        })
    return render_page(out, "dedup.html.j2", groups=list(groups.values()), summary=summary,
                       freed=human_bytes(summary.get("bytes", 0)), threshold=threshold, keep=keep)


def _keys_for(table, items) -> list[str]:
    """The item key of each table row (path + frame + window identify it)."""
    index = {}
    for r in items.itertuples(index=False):
        index[(r.path, int(r.frame), window_text(r.x, r.y, r.w, r.h))] = r.key
    return [index[(r.path, int(r.frame), str(r.window or ""))] for r in table.itertuples(index=False)]


def write_search_page(out: str | os.PathLike, matches, query_items, items, *, k: int) -> Path:
    """``search.html``: each query beside its ranked matches with their scores."""
    out = Path(out)
    q_thumbs = _thumbs(query_items, out.parent)
    by_key = items.set_index("key", drop=False)
    m_keys = matches["key"].tolist()
    m_thumbs = _thumbs(by_key.loc[m_keys].reset_index(drop=True), out.parent) if m_keys else []
    queries = []
    for qi, (q, thumb) in enumerate(zip(query_items.itertuples(index=False), q_thumbs)):
        queries.append({"name": Path(q.path).name, "href": file_href(q.path), "thumb": thumb, "matches": []})
    for r, thumb in zip(matches.itertuples(index=False), m_thumbs):
        queries[int(r.query_index)]["matches"].append({
            "rank": int(r.rank), "score": float(r.score), "name": Path(r.path).name, "href": file_href(r.path),
            "thumb": thumb, "where": _where(int(r.frame), str(r.window or "")),
        })
    return render_page(out, "search.html.j2", queries=queries, k=k, n_items=len(items))
