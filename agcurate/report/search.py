"""``search.html``: each query beside its ranked matches."""

from __future__ import annotations

import os
from pathlib import Path

from .html import file_href, render_page, table_thumbnails, where_text


def write_search_page(out: str | os.PathLike, matches, query_items, items, *, k: int) -> Path:
    """``search.html``: each query beside its ranked matches with their scores."""
    out = Path(out)
    q_thumbs = table_thumbnails(query_items, out.parent)
    by_key = items.set_index("key", drop=False)
    m_keys = matches["key"].tolist()
    m_thumbs = table_thumbnails(by_key.loc[m_keys].reset_index(drop=True), out.parent) if m_keys else []
    queries = []
    for qi, (q, thumb) in enumerate(zip(query_items.itertuples(index=False), q_thumbs)):
        queries.append({"name": Path(q.path).name, "href": file_href(q.path), "thumb": thumb, "matches": []})
    for r, thumb in zip(matches.itertuples(index=False), m_thumbs):
        queries[int(r.query_index)]["matches"].append({
            "rank": int(r.rank), "score": float(r.score), "name": Path(r.path).name, "href": file_href(r.path),
            "thumb": thumb, "where": where_text(int(r.frame), str(r.window or "")),
        })
    return render_page(out, "search.html.j2", queries=queries, k=k, n_items=len(items))
