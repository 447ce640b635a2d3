"""Inputs named by URL (``s3://``, ``gs://``, ``az://``, ``https://``, ``memory://``...), through fsspec.

A URL is opened with the filesystem fsspec has for its protocol; that package (``s3fs``, ``gcsfs``,
``adlfs``...) must be installed, and takes its credentials and endpoint from its usual settings
(``AWS_PROFILE``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``FSSPEC_S3_ENDPOINT_URL``...). A folder URL is
listed recursively in one call. Photos are recognised from their first bytes alone, fetched for many
files at once, so listing a million photos downloads none of them; a video, a raster or a photo cut
into tiles is copied to a temporary file to be listed, and every file is copied to a temporary file
when it is decoded. The copy is removed as soon as its items are read.

An item's key and ``path`` are its URL; its fingerprint is the object's size and ETag (or
modification time), so a changed object is encoded again.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from ..errors import SourceError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
HEAD_BATCH = 256  # first bytes of this many files are asked for at once


def is_url(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a URL that fsspec opens (``file://`` counts as a local path)."""
    text = str(path)
    return bool(_URL.match(text)) and not text.lower().startswith("file://")


def normalise_input(path: str | os.PathLike) -> str:
    """An input as it is stored and shown: a URL as given (without a trailing ``/``), a local path
    (or ``file://`` URL) made absolute."""
    text = str(path)
    if is_url(text):
        return text.rstrip("/") if not text.endswith("://") else text
    if text.lower().startswith("file://"):
        from urllib.parse import unquote, urlparse

        text = unquote(urlparse(text).path)
    return str(Path(text).expanduser().resolve())


def url_filesystem(url: str):
    """``(filesystem, path inside it)`` for ``url``; ``SourceError`` naming the missing package when
    fsspec has no filesystem installed for its protocol."""
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec comes with the project's dependencies
        raise SourceError(f"{url}: reading URLs needs fsspec (pip install fsspec)") from exc
    protocol = url.split("://", 1)[0].lower()
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise SourceError(f"{url}: reading {protocol}:// URLs needs a package that is not installed ({exc})") from exc
    except ValueError as exc:
        raise SourceError(f"{url}: {exc}") from exc


def fingerprint_of(info: dict) -> str:
    """Change detector of a listed object: its size and ETag, else its modification time."""
    size = info.get("size", info.get("Size", ""))
    tag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("generation")
    if not tag:
        tag = info.get("LastModified") or info.get("mtime") or info.get("updated") or info.get("last_modified") or ""
        if hasattr(tag, "timestamp"):
            tag = int(tag.timestamp() * 1e9)
    return f"{size}-{str(tag).strip(chr(34))}"


def list_url(url: str) -> list[tuple[str, dict]]:
    """The files under ``url`` (itself when it names a file) as ``(url, info)``, sorted, hidden names
    (any path part starting with ``.``) left out. ``SourceError`` when nothing exists there."""
    fs, root = url_filesystem(url)
    try:
        if fs.isfile(root):
            return [(url, fs.info(root))]
        found = fs.find(root, detail=True) if fs.isdir(root) else {}
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot list {url}: {exc}") from exc
    if not found and not fs.exists(root):
        raise SourceError("no such file or directory")
    base = PurePosixPath(root.rstrip("/"))
    out = []
    for name in sorted(found):
        info = found[name]
        if info.get("type", "file") != "file":
            continue
        try:
            rel = PurePosixPath(name).relative_to(base)
        except ValueError:
            rel = PurePosixPath(PurePosixPath(name).name)
        if any(part.startswith(".") for part in rel.parts):
            continue
        out.append((url.rstrip("/") + "/" + rel.as_posix(), info))
    return out


def heads(urls: Sequence[str], n_bytes: int) -> Iterator[bytes | Exception]:
    """The first ``n_bytes`` of each URL (or the exception that fetching it raised), in order, fetched
    ``HEAD_BATCH`` at a time (concurrently on filesystems that can)."""
    for start in range(0, len(urls), HEAD_BATCH):
        batch = list(urls[start:start + HEAD_BATCH])
        fs, _ = url_filesystem(batch[0])
        paths = [url_filesystem(u)[1] for u in batch]
        try:
            got = fs.cat_ranges(paths, [0] * len(paths), [n_bytes] * len(paths), on_error="return")
        except Exception as exc:  # noqa: BLE001 - a filesystem without batched ranges: one at a time
            got = [exc] * len(paths)
        for path, data in zip(paths, got):
            if isinstance(data, Exception):
                try:
                    data = fs.cat_file(path, start=0, end=n_bytes)
                except Exception as exc:  # noqa: BLE001 - reported as the file's reason
                    data = exc
            yield data


def read_bytes(path: str | os.PathLike) -> bytes:
    """The whole content of a local file or a URL."""
    if not is_url(path):
        return Path(path).read_bytes()
    fs, inner = url_filesystem(str(path))
    return fs.cat_file(inner)


@contextmanager
def local_copy(url: str) -> Iterator[Path]:
    """A temporary local copy of the file at ``url`` (keeping its name, for readers that look at the
    suffix), removed when the block ends. ``OSError`` when it cannot be fetched."""
    fs, inner = url_filesystem(url)
    tmp = tempfile.mkdtemp(prefix="agcurate-url-")
    try:
        dest = Path(tmp) / (PurePosixPath(inner).name or "file")
        try:
            fs.get_file(inner, str(dest))
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore and friends raise their own types
            raise OSError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from exc
        yield dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
