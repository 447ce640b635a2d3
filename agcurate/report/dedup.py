"""``dedup.html``: every copy beside its kept file with the kind of change and the score (a table
that sorts by score, group or kind), then the groups side by side, the kept file outlined."""

from __future__ import annotations

import os
from pathlib import Path

from ..items import window_text
from .html import file_href, human_bytes, render_page, table_thumbnails, where_text


def write_dedup_page(out: str | os.PathLike, table, items, summary: dict, *, threshold: float,
                     keep: str) -> Path:
    """``dedup.html``: a sortable table of copy/kept pairs (reason, score), then one section per
    group, its files side by side, the kept one outlined.

    ``table`` is ``duplicates_table``'s frame, ``items`` the items table it was made from.
    """
    out = Path(out)
    rows = items.set_index("key", drop=False) if "key" in items else items
    keys = _keys_for(table, items)
    thumbs = table_thumbnails(rows.loc[keys].reset_index(drop=True), out.parent) if keys else []
    groups: dict[int, dict] = {}
    for r, thumb in zip(table.itertuples(index=False), thumbs):
        g = groups.setdefault(int(r.group), {"id": int(r.group), "members": []})
        g["members"].append({
            "name": Path(r.path).name, "href": file_href(r.path), "thumb": thumb, "keep": bool(r.keep),
            "score": float(r.score), "reason": r.reason, "where": where_text(int(r.frame), str(r.window or "")),
            "dims": f"{int(r.width)}x{int(r.height)}", "size": human_bytes(r.bytes) if int(r.bytes) > 0 else "",
        })
    pairs = []
    for g in groups.values():
        kept = next((m for m in g["members"] if m["keep"]), None)
        for m in g["members"]:
            if kept is not None and not m["keep"]:
                pairs.append({"group": g["id"], "kept": kept, "member": m})
    return render_page(out, "dedup.html.j2", groups=list(groups.values()), pairs=pairs, summary=summary,
                       freed=human_bytes(summary.get("bytes", 0)), threshold=threshold, keep=keep)


def _keys_for(table, items) -> list[str]:
    """The item key of each table row (path + frame + window identify it)."""
    index = {}
    for r in items.itertuples(index=False):
        index[(r.path, int(r.frame), window_text(r.x, r.y, r.w, r.h))] = r.key
    return [index[(r.path, int(r.frame), str(r.window or ""))] for r in table.itertuples(index=False)]
