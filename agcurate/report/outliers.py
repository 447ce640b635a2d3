"""The outliers gallery page: thumbnails from most to least outlying, with scores and components."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from ..items import Item, display_path
from ..sources.tiling import NODATA_REASON
from .html import file_href, render_page, thumbnails

GALLERY_LIMIT = 300  # thumbnails in the page; the CSV always lists every item


def _components(row, names: Sequence[str], top: int = 3) -> str:
    vals = sorted(((float(row[c]), c[:-2]) for c in names if not math.isnan(float(row[c]))), reverse=True)
    return ", ".join(f"{name} {v:.1f}" for v, name in vals[:top] if v > 0) or "nothing unusual"


def write_outliers_report(scored, items_by_key: dict[str, Item], out: str | os.PathLike, *,
                          method: str, rule: str, model: str, mode: str, skipped=(),
                          base: str | None = None, limit: int = GALLERY_LIMIT) -> Path:
    """Render ``outliers.html`` beside its thumbnails; ``scored`` is ``score_outliers`` output."""
    out = Path(out)
    comp_cols = [c for c in scored.columns if c.endswith("_z")]
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
            "components": _components(r, comp_cols),
        })
    other = [s for s in skipped if not s.reason.startswith(NODATA_REASON)]  # no-data tiles are rows
    return render_page(out, "outliers.html.j2", rows=rows, n_items=len(scored), shown=len(head),
                       n_outliers=int(scored["is_outlier"].sum()), method=method, rule=rule, model=model,
                       mode=mode, skipped=[{"path": display_path(s.path, base), "reason": s.reason}
                                           for s in other])
