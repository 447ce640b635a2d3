"""Walk input paths into items: files recognised by content, links followed once, every refusal reported.

Symbolic links are followed after everything reachable without them (per input path), so a file or
folder keeps the path it has in the tree and a link to it is reported as a second name. A link to a
folder that contains the link (``sub/loop -> ..``) is a loop: reported, never entered. A link whose
target does not exist is reported as broken, with its target.

A URL (``s3://bucket/photos``) is listed through fsspec (``remote.py``); its items keep the URL as path.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from ..errors import SourceError
from ..items import Item
from .base import Source, SourceOptions
from .registry import get_sources
from .remote import is_url, normalise_input
from .sniff import EXTENSION_FORMATS, HEAD_BYTES, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, sniff


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


def discover(paths: Iterable[str | Path], opts: SourceOptions | None = None,
             sources: Sequence[Source] | None = None) -> Discovery:
    """Walk files and folders (recursively, in sorted order) and list their items.

    Files are recognised by content. A file with a media extension that no source can read is
    reported as skipped; any other file (labels, notes, sidecars) is counted as ignored. Each real
    file and folder is read once, however many paths lead to it.
    """
    walker = _Walker(opts or SourceOptions(), list(sources) if sources is not None else get_sources())
    for raw in paths:
        if is_url(raw):
            walker.url(normalise_input(raw))
            continue
        p = Path(raw).expanduser()
        if not p.exists():
            walker.skip(str(raw), link_problem(p) or "no such file or directory")
            continue
        p = p.resolve()
        if p.is_dir():
            walker.walk(p, via_link=False)
        else:
            walker.file(p, explicit=True, via_link=False)
        walker.follow_links()
    return walker.found


def link_problem(path: Path) -> str | None:
    """Why a symbolic link cannot be followed (a loop, or a broken link and its target), else None."""
    if not path.is_symlink():
        return None
    target = os.readlink(path)
    try:
        os.path.realpath(path, strict=True)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"symbolic link loop (-> {target})"
        return f"broken symbolic link -> {target}"
    return None


@dataclass
class _Walker:
    opts: SourceOptions
    sources: list[Source]
    found: Discovery = field(default_factory=Discovery)
    keys: set[str] = field(default_factory=set)        # item keys already listed
    dirs: dict[str, str] = field(default_factory=dict)   # real path -> path it was walked as
    files: dict[str, str] = field(default_factory=dict)
    links: list[Path] = field(default_factory=list)      # met while walking, followed afterwards

    def skip(self, path: str, reason: str) -> None:
        self.found.skipped.append(Skipped(path, reason))

    def walk(self, root: Path, via_link: bool) -> None:
        """A folder: one item when a source reads it whole, else its entries in sorted order."""
        if not self._first(root, self.dirs, "folder", via_link):
            return
        for src in self.sources:
            if src.claims_dir(root):
                self._add_items(root, src)
                return
        try:
            entries = sorted(root.iterdir(), key=lambda e: e.name)
        except OSError as exc:
            self.skip(str(root), f"cannot list folder: {exc.strerror or exc}")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                self.links.append(entry)
            elif entry.is_dir():
                self.walk(entry, via_link)
            elif entry.is_file():
                self.file(entry, explicit=False, via_link=via_link)

    def follow_links(self) -> None:
        """Follow the links met so far (and those met inside them), each real target once."""
        while self.links:
            link = self.links.pop(0)
            problem = link_problem(link)
            if problem:
                self.skip(str(link), problem)
                continue
            real = os.path.realpath(link)
            if os.path.isdir(real):
                if os.path.commonpath([real, os.path.realpath(link.parent)]) == real:
                    self.skip(str(link), f"symbolic link loop (-> {os.readlink(link)}, a folder that contains it)")
                else:
                    self.walk(link, via_link=True)
            elif os.path.isfile(real):
                self.file(link, explicit=False, via_link=True)

    def url(self, url: str) -> None:
        """A URL: its files listed in one call. A photo named as one (``.jpg``, ``.png``...) is listed
        from the listing alone (no request per file; its content is checked when it is decoded);
        another file is recognised from its first bytes, fetched many at a time, and a video, raster
        or photo cut into tiles is listed from a temporary copy, removed once its items are listed."""
        from .remote import fingerprint_of, list_url

        try:
            files = list_url(url)
        except SourceError as exc:
            self.skip(url, str(exc))
            return
        unnamed = []
        for u, info in files:
            if u in self.files:
                continue
            self.files[u] = u
            fp = fingerprint_of(info)
            if info.get("size") == 0:  # some filesystems (HTTP) may not know a size: read then
                self.skip(u, "empty file")
            elif not self._listed(u, EXTENSION_FORMATS.get(PurePosixPath(u).suffix.lower()), fp):
                unnamed.append((u, fp))
        self._sniff_urls(unnamed, explicit=url)

    def _listed(self, url: str, fmt: str | None, fp: str) -> bool:
        """Keep the items a source knows from ``fmt`` alone; False when the file must be read."""
        for src in self.sources:
            listed = src.header_items(url, fmt, fp, self.opts)
            if listed is not None:
                self._keep(listed)
                return True
        return False

    def _sniff_urls(self, files: list[tuple[str, str]], explicit: str) -> None:
        """Files behind URLs (``(url, fingerprint)``) recognised from their first bytes."""
        from .remote import heads, local_copy

        for (u, fp), head in zip(files, heads([u for u, _ in files], HEAD_BYTES)):
            if isinstance(head, Exception):
                self.skip(u, f"cannot read file: {type(head).__name__}: {head}")
                continue
            fmt = sniff(head)
            if self._listed(u, fmt, fp):
                continue
            if not any(fmt in src.formats for src in self.sources):
                self._unusable(u, PurePosixPath(u).suffix.lower(), head, fmt, explicit=u == explicit)
                continue
            try:
                with local_copy(u) as local:
                    self._add_file(local, explicit=u == explicit, shown=(u, fp))
            except OSError as exc:
                self.skip(u, f"cannot read file: {exc.strerror or exc}")

    def file(self, path: Path, explicit: bool, via_link: bool) -> None:
        if self._first(path, self.files, "file", via_link):
            self._add_file(path, explicit)

    def _first(self, path: Path, done: dict[str, str], what: str, via_link: bool) -> bool:
        """True the first time a real path comes up; a second path to it through a link is reported."""
        real = os.path.realpath(path)
        if real in done:
            if via_link and done[real] != str(path):
                self.skip(str(path), f"same {what} as {done[real]} (symbolic link)")
            return False
        done[real] = str(path)
        return True

    def _add_file(self, path: Path, explicit: bool, shown: tuple[str, str] | None = None) -> None:
        """One file, recognised by content. ``shown``: (URL, fingerprint) when ``path`` is a local
        copy of a remote file; its items and reasons then name the URL."""
        name = shown[0] if shown else str(path)
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            self.skip(_printable(path), "file name is not valid UTF-8 (rename the file)")
            return
        try:
            with open(path, "rb") as fh:
                head = fh.read(HEAD_BYTES)
        except OSError as exc:
            self.skip(name, f"cannot read file: {exc.strerror or exc}")
            return
        fmt = sniff(head)
        for src in self.sources:
            if src.claims(path, fmt):
                self._add_items(path, src, shown)
                return
        self._unusable(name, path.suffix.lower(), head, fmt, explicit)

    def _unusable(self, name: str, ext: str, head: bytes, fmt: str | None, explicit: bool) -> None:
        """A file no source reads: skipped with a reason when it looks like media, else ignored."""
        if not head:
            self.skip(name, "empty file")
        elif fmt is not None:
            self.skip(name, f"unsupported format ({fmt})")
        elif explicit or ext in IMAGE_EXTENSIONS or ext in VIDEO_EXTENSIONS:
            self.skip(name, "not a recognised image or video (corrupt or unknown format)")
        else:
            self.found.ignored += 1

    def _add_items(self, path: Path, src: Source, shown: tuple[str, str] | None = None) -> None:
        name = shown[0] if shown else str(path)
        try:
            items = src.items(path, self.opts)
        except SourceError as exc:
            self.skip(name, str(exc))
            return
        except OSError as exc:
            self.skip(name, f"cannot read file: {exc.strerror or exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a decoder library's own error on a damaged file
            self.skip(name, f"cannot read file: {type(exc).__name__}: {exc}")
            return
        if shown:
            items = [replace(it, path=shown[0], fingerprint=shown[1]) for it in items]
        self._keep(items)

    def _keep(self, items: Iterable[Item]) -> None:
        for it in items:
            if it.key not in self.keys:
                self.keys.add(it.key)
                self.found.items.append(it)


def _printable(path: Path) -> str:
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
