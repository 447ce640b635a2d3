"""Sources turn paths into items and items into pixels; they know nothing about models."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SourceError
from ..items import Item
from .base import Decoded, Source, SourceOptions
from .images import ImageSource
from .raster import RasterSource
from .video import VideoSource
from .sniff import HEAD_BYTES, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, sniff

__all__ = [
    "Decoded", "Discovery", "Skipped", "Source", "SourceOptions", "discover", "get_sources",
    "read_group", "load_rgb",
]


@dataclass(frozen=True)
class Skipped:
    """A file (or item) that could not be used, and why."""

    path: str
    reason: str
    key: str = ""  # the item's key when one item of a file failed (a frame, a tile)


@dataclass
class Discovery:
    """What a set of input paths holds: usable items, files skipped with a reason, others ignored."""

    items: list[Item] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: int = 0


def get_sources(min_side: int | None = None) -> list[Source]:
    """All sources, most specific first. Optional sources register only when their library imports."""
    return [RasterSource(), ImageSource(min_side=min_side), VideoSource()]


def discover(paths: Iterable[str | Path], opts: SourceOptions | None = None,
             sources: Sequence[Source] | None = None) -> Discovery:
    """Walk files and folders (recursively, in sorted order) and list their items.

    Files are recognised by content. A file with a media extension that no source can read is
    reported as skipped; any other file (labels, notes, sidecars) is counted as ignored.
    """
    opts = opts or SourceOptions()
    sources = list(sources) if sources is not None else get_sources()
    found = Discovery()
    seen: set[str] = set()
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            found.skipped.append(Skipped(str(raw), "no such file or directory"))
            continue
        p = p.resolve()
        if p.is_dir():
            _walk(p, opts, sources, found, seen)
        else:
            _add_file(p, opts, sources, found, seen, explicit=True)
    return found


def _walk(root: Path, opts, sources, found: Discovery, seen: set[str]) -> None:
    for src in sources:
        if src.claims_dir(root):
            _add_items(root, src, opts, found, seen)
            return
    try:
        entries = sorted(root.iterdir(), key=lambda e: e.name)
    except OSError as exc:
        found.skipped.append(Skipped(str(root), f"cannot list folder: {exc.strerror or exc}"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            _walk(entry, opts, sources, found, seen)
        elif entry.is_file():
            _add_file(entry, opts, sources, found, seen, explicit=False)


def _add_file(path: Path, opts, sources, found: Discovery, seen: set[str], explicit: bool) -> None:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        found.skipped.append(Skipped(_printable(path), "file name is not valid UTF-8 (rename the file)"))
        return
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        found.skipped.append(Skipped(str(path), f"cannot read file: {exc.strerror or exc}"))
        return
    fmt = sniff(head)
    for src in sources:
        if src.claims(path, fmt):
            _add_items(path, src, opts, found, seen)
            return
    ext = path.suffix.lower()
    if not head:
        found.skipped.append(Skipped(str(path), "empty file"))
    elif fmt is not None:
        found.skipped.append(Skipped(str(path), f"unsupported format ({fmt})"))
    elif explicit or ext in IMAGE_EXTENSIONS or ext in VIDEO_EXTENSIONS:
        found.skipped.append(Skipped(str(path), "not a recognised image or video (corrupt or unknown format)"))
    else:
        found.ignored += 1


def _printable(path: Path) -> str:
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _add_items(path: Path, src: Source, opts, found: Discovery, seen: set[str]) -> None:
    try:
        items = src.items(path, opts)
    except SourceError as exc:
        found.skipped.append(Skipped(str(path), str(exc)))
        return
    except OSError as exc:
        found.skipped.append(Skipped(str(path), f"cannot read file: {exc.strerror or exc}"))
        return
    for it in items:
        if it.key not in seen:
            seen.add(it.key)
            found.items.append(it)


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
    """Decode items that share one file; a file that vanished or changed format yields errors."""
    opts = opts or SourceOptions()
    sources = list(sources) if sources is not None else get_sources()
    try:
        src = source_for(items[0], sources)
    except (SourceError, OSError) as exc:
        msg = str(exc) if isinstance(exc, SourceError) else f"cannot read file: {exc.strerror or exc}"
        for it in items:
            yield Decoded(it, error=msg)
        return
    yield from src.read(items, opts)


def load_rgb(item: Item, opts: SourceOptions | None = None) -> "np.ndarray":  # noqa: F821
    """Pixels of one item as RGB uint8 (for thumbnails, verification and reports)."""
    decoded = next(iter(read_group([item], opts)))
    if decoded.rgb is None:
        raise SourceError(f"{item.path}: {decoded.error}")
    return decoded.rgb
