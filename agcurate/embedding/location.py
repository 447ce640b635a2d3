"""Where the store lives: a local (or shared, mounted) folder, or a URL on an object store.

A local folder is a ``pathlib.Path``: files are written under a temporary name and renamed
(``os.replace``), and concurrent writers coordinate through file locks (``claims.py``). A URL
(``s3://bucket/agcurate``, ``gs://...``) is a ``upath.UPath`` over fsspec: an object store has no
rename and no locks, but one PUT is atomic, so objects are written under their final name; writers
to one URL store do not coordinate (two runs at once may encode an item twice, which costs time,
not correctness: reads keep the newest row per key). What only one machine uses (the exported ONNX
graph, the ANN index, band statistics) stays in a local folder named after the URL
(``local_cache``).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from ..sources.remote import is_url


def store_path(root: str | os.PathLike) -> Path:
    """``root`` as a path object: a ``UPath`` for a URL (needs ``universal_pathlib`` and the URL's
    fsspec filesystem, e.g. ``s3fs``), else the absolute local ``Path``."""
    text = str(root)
    if is_url(text):
        from upath import UPath

        return UPath(text.rstrip("/"))
    return Path(text).expanduser().resolve()


def is_remote(path: str | os.PathLike) -> bool:
    """Whether ``path`` (a store folder or file) lies behind a URL."""
    return is_url(str(path))


def user_cache() -> Path:
    """This user's agcurate cache folder: ``$XDG_CACHE_HOME/agcurate``, else ``~/.cache/agcurate``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "agcurate"


def local_cache(root: Path) -> Path:
    """A local folder for what one machine keeps about the store at ``root``: ``root`` itself when it
    is local, else ``<user cache>/agcurate/remote/<name>-<hash of the URL>``."""
    if not is_remote(root):
        return Path(root)
    text = str(root)
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in text.split("://", 1)[-1])[-40:]
    return user_cache() / "remote" / f"{name}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def tmp_beside(path: Path) -> Path:
    """A temporary name beside ``path`` that no other process or thread uses at the same time."""
    return path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def write_atomic(dest: Path, write: Callable[[Path], None]) -> None:
    """``write(target)`` so that readers see all of ``dest`` or none of it: locally through a
    temporary name and a rename, on an object store straight to ``dest`` (one PUT is atomic)."""
    if is_remote(dest):
        write(dest)
        return
    tmp = tmp_beside(dest)
    try:
        write(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(dest: Path, text: str) -> None:
    write_atomic(dest, lambda target: target.write_text(text, encoding="utf-8"))


def arrow_target(path: Path) -> tuple[str, object]:
    """``(where, filesystem)`` for pyarrow's readers and writers (an fsspec filesystem for a URL)."""
    if is_remote(path):
        return path.path, path.fs
    return str(path), None
