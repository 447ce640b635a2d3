"""Shared HTML machinery: an autoescaping Jinja2 environment, thumbnails and atomic writes.

Every page extends ``base.html.j2``; file names and paths are data and are always escaped.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from ..items import Item, items_from_frame


def _env():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("agcurate", "report/templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["pct"] = lambda v: f"{100 * float(v):.1f}%"
    env.filters["num"] = lambda v, nd=3: f"{float(v):.{nd}f}"
    env.filters["count"] = count
    return env


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 run``, ``2 runs``, ``1,500 queries``: a number with its noun in the right form (English
    rules for regular nouns; pass ``plural`` for the others)."""
    if n == 1:
        return f"1 {noun}"
    if plural is None:
        if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
            plural = noun[:-1] + "ies"
        elif noun.endswith(("s", "x", "z", "ch", "sh")):
            plural = noun + "es"
        else:
            plural = noun + "s"
    return f"{n:,} {plural}"


def render_page(out: str | os.PathLike, template: str, **context) -> Path:
    """Render ``template`` to ``out`` (written atomically); returns the path."""
    from .. import __version__

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    html = _env().get_template(template).render(version=__version__, **context)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    return out


def file_href(path: str | os.PathLike) -> str:
    """A ``file://`` URL for a local file (percent-encoded, so odd names stay links); a URL as it is."""
    from ..sources.remote import is_url

    return str(path) if is_url(path) else Path(path).resolve().as_uri()


def thumbnails(items: Sequence[Item], out_dir: str | os.PathLike, size: int = 192,
               quality: int = 80) -> list[str | None]:
    """Write a JPEG thumbnail per item under ``out_dir/thumbs`` (reused when present).

    Returns each thumbnail's path relative to ``out_dir`` (None where the item cannot be read).
    Tiles and frames are thumbnailed from their own window / frame.
    """
    from PIL import Image

    from ..sources import load_rgb

    out_dir = Path(out_dir)
    tdir = out_dir / "thumbs"
    tdir.mkdir(parents=True, exist_ok=True)
    rel: list[str | None] = []
    for item in items:
        name = hashlib.sha1(f"{item.key}|{item.fingerprint}|{size}".encode()).hexdigest()[:20] + ".jpg"
        target = tdir / name
        if not target.exists():
            try:
                img = Image.fromarray(load_rgb(item))
            except Exception:  # noqa: BLE001 - a missing thumbnail must not break a report
                rel.append(None)
                continue
            img.thumbnail((size, size))
            tmp = target.with_name(name + ".tmp")
            img.save(tmp, format="JPEG", quality=quality)
            os.replace(tmp, target)
        rel.append(f"thumbs/{name}")
    return rel


def human_bytes(n: int | float) -> str:
    """``1.4 MB``-style size for summaries and pages."""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


def write_csv(df, out: str | os.PathLike) -> Path:
    """Write a DataFrame as CSV atomically (a reader never sees half a file)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, out)
    return out


def format_time(seconds: float) -> str:
    """``mm:ss.ss`` (``h:mm:ss.ss`` past an hour) for captions."""
    seconds = max(0.0, float(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{s:05.2f}" if h else f"{int(m):02d}:{s:05.2f}"


def where_text(frame: int, window: str) -> str:
    """``frame N`` for a video frame, ``tile x,y,w,h`` for a tile, empty for a whole image."""
    if frame >= 0:
        return f"frame {frame}"
    return f"tile {window}" if window else ""


def table_thumbnails(items, out_dir: Path) -> list[str | None]:
    """``thumbnails`` of the rows of an items table."""
    return thumbnails(items_from_frame(items), out_dir)
