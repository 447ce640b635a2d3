"""Sources turn paths into items and items into pixels; they know nothing about models."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import SourceError
from ..items import Item
from .base import Decoded, Source, SourceOptions
from .discovery import Discovery, Skipped, discover
from .registry import get_sources
from .remote import is_url
from .sniff import HEAD_BYTES, sniff

__all__ = [
    "Decoded", "Discovery", "Skipped", "Source", "SourceOptions", "discover", "get_sources",
    "read_group", "load_rgb",
]


def source_for(item: Item, sources: Sequence[Source]) -> Source:
    """The source that reads ``item`` (by item kind, then by the file's format)."""
    p = Path(item.path)
    if p.is_dir():
        for src in sources:
            if src.claims_dir(p):
                return src
    else:
        with open(p, "rb") as fh:
            fmt = sniff(fh.read(HEAD_BYTES))
        for src in sources:
            if src.claims(p, fmt):
                return src
    raise SourceError(f"no source can read {item.path}")


def read_group(items: Sequence[Item], opts: SourceOptions | None = None,
               sources: Sequence[Source] | None = None) -> Iterator[Decoded]:
    """Decode items that share one file, one ``Decoded`` per item, never raising for a bad file: a file
    that vanished, changed format or makes a decoder library fail yields errors for what is left."""
    if not items:
        return
    opts = opts or SourceOptions()
    sources = list(sources) if sources is not None else get_sources()
    if is_url(items[0].path):
        yield from _read_remote_group(items, opts, sources)
        return
    try:
        src = source_for(items[0], sources)
    except (SourceError, OSError) as exc:
        msg = str(exc) if isinstance(exc, SourceError) else f"cannot read file: {exc.strerror or exc}"
        for it in items:
            yield Decoded(it, error=msg)
        return
    answered: set[str] = set()
    try:
        for dec in src.read(items, opts):
            answered.add(dec.item.key)
            yield dec
    except Exception as exc:  # noqa: BLE001 - a decoder library's own error on a damaged file
        msg = f"cannot decode: {type(exc).__name__}: {exc}"
        for it in items:
            if it.key not in answered:
                yield Decoded(it, error=msg)


def _read_remote_group(items: Sequence[Item], opts: SourceOptions, sources: Sequence[Source]) -> Iterator[Decoded]:
    """``read_group`` for items of a file named by URL: decoded from a temporary local copy (removed
    afterwards), each answer carrying the item as it was given (its URL)."""
    from dataclasses import replace

    from .remote import local_copy

    answered: set[str] = set()
    try:
        with local_copy(items[0].path) as local:
            copies = [replace(it, path=str(local)) for it in items]
            given = {c.key: it for c, it in zip(copies, items)}
            for dec in read_group(copies, opts, sources):
                dec.item = given.get(dec.item.key, dec.item)
                answered.add(dec.item.key)
                yield dec
    except (OSError, SourceError) as exc:  # the file could not be fetched
        msg = str(exc) if isinstance(exc, SourceError) else f"cannot read file: {exc.strerror or exc}"
        for it in items:
            if it.key not in answered:
                yield Decoded(it, error=msg)


def load_rgb(item: Item, opts: SourceOptions | None = None) -> "np.ndarray":  # noqa: F821
    """Pixels of one item as RGB uint8 (for thumbnails, verification and reports)."""
    decoded = next(iter(read_group([item], opts)))
    if decoded.rgb is None:
        raise SourceError(f"{item.path}: {decoded.error}")
    return decoded.rgb
