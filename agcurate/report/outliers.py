"""The outliers gallery page: thumbnails from most to least outlying, the issue in words, a filter by issue."""

from __future__ import annotations

import os
from pathlib import Path

from ..items import Item, display_path
from ..sources.tiling import NODATA_REASON
from .html import file_href, render_page, thumbnails

GALLERY_LIMIT = 300  # thumbnails in the page; the CSV always lists every item


def issue_text(row, words: dict[str, str]) -> str:
    """What is wrong with an item, in words: its flagged issues, else its most likely quality issue.

    ``words`` maps each issue (``<issue>_score`` columns, 0-1) to its name in words
    (``ops.quality.ISSUE_WORDS``)."""
    if row.get("reason"):
        return "no data (tile not scored)"
    if row.get("issues"):
        return str(row["issues"])
    probs = [(float(row[c]), i) for i in words if (c := f"{i}_score") in row and row[c] == row[c]]
    best = max(probs, default=None)
    if best is None or best[0] < 0.05:
        return "nothing flagged"
    return f"nothing flagged (most like {words[best[1]]}, {best[0]:.0%})"


def issue_list(row, words: dict[str, str]) -> list[str]:
    """The issue words of a row, for the page's filter (no data for skipped no-data tiles)."""
    if row.get("reason"):
        return [words.get("nodata", "no data")]
    return [w for w in str(row.get("issues") or "").split(", ") if w]


def write_outliers_report(scored, items_by_key: dict[str, Item], out: str | os.PathLike, *,
                          method: str, rule: str, model: str, mode: str, skipped=(),
                          base: str | None = None, limit: int = GALLERY_LIMIT,
                          issue_words: dict[str, str] | None = None) -> Path:
    """Render ``outliers.html`` beside its thumbnails; ``scored`` is ``score_outliers`` output,
    ``issue_words`` names each issue in words, in the order the page's filter lists them."""
    words = issue_words or {}
    out = Path(out)
    head = scored.head(limit)
    thumb_items = [items_by_key.get(k) for k in head["key"]]
    present = [it for it in thumb_items if it is not None]
    thumbs = dict(zip((it.key for it in present), thumbnails(present, out.parent)))
    rows = []
    for r in head.to_dict("records"):
        score = r["score"]
        rows.append({
            "rank": r["rank"], "is_outlier": bool(r["is_outlier"]), "window": r.get("window") or "",
            "score_text": "n/a" if score != score else f"{score:.2f}",
            "name": display_path(r["path"], base), "href": file_href(r["path"]),
            "thumb": thumbs.get(r["key"]), "reason": r.get("reason") or "",
            "issue": issue_text(r, words), "issues": issue_list(r, words),
        })
    counts: dict[str, int] = {}
    for r in rows:
        for w in r["issues"] or ["none"]:
            counts[w] = counts.get(w, 0) + 1
    order = [*words.values(), *sorted(set(counts) - set(words.values()) - {"none"}), "none"]
    filters = [{"issue": w, "count": counts[w]} for w in order if w in counts]
    other = [s for s in skipped if not s.reason.startswith(NODATA_REASON)]  # no-data tiles are rows
    heuristic = "basis" in scored.columns and bool((scored["basis"] == "rgb heuristic").any())
    return render_page(out, "outliers.html.j2", rows=rows, n_items=len(scored), shown=len(head),
                       n_outliers=int(scored["is_outlier"].sum()), method=method, rule=rule, model=model,
                       mode=mode, filters=filters, heuristic=heuristic,
                       skipped=[{"path": display_path(s.path, base), "reason": s.reason} for s in other])
