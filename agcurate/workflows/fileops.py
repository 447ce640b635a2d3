"""Moving user files safely: a manifest first, moves that never overwrite, and an exact undo.

``move_files`` writes the whole plan (source -> target) to a JSON manifest before touching
anything, then moves file by file (an atomic rename on one file system; copy, fsync, rename and
only then delete across file systems). ``undo`` reads the manifest and puts back whatever is at a
target, judging by what is on disk, so it also repairs a run that was killed half-way. Nothing is
ever overwritten: a taken name gets a ``~N`` suffix, a clash on the way back is reported and left.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AgcurateError

MANIFEST_VERSION = 1


class MoveError(AgcurateError):
    """Files could not be moved (or put back) as asked; the message says which and why."""


@dataclass
class Move:
    """One planned move and what became of it (``moved``, ``failed: reason`` or ``planned``)."""

    src: str
    dst: str
    size: int = 0
    status: str = "planned"


@dataclass
class MoveReport:
    """What ``move_files`` / ``undo`` did."""

    manifest: Path
    done: list[Move] = field(default_factory=list)
    failed: list[Move] = field(default_factory=list)
    skipped: list[Move] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(m.size for m in self.done)


def relative_to_roots(path: str | os.PathLike, roots: Sequence[str | os.PathLike]) -> Path:
    """``path`` relative to the deepest input root holding it (its name alone when none does)."""
    p = Path(path).resolve()
    best: Path | None = None
    for r in roots:
        r = Path(r).resolve()
        base = r if r.is_dir() else r.parent
        try:
            rel = p.relative_to(base)
        except ValueError:
            continue
        if best is None or len(rel.parts) < len(best.parts):
            best = rel
    return best if best is not None else Path(p.name)


def _free_name(target: Path, taken: set[str]) -> Path:
    """``target`` itself, or ``stem~N.ext`` when that name exists on disk or is already planned."""
    cand, n = target, 0
    while cand.exists() or cand.is_symlink() or str(cand) in taken:
        n += 1
        cand = target.with_name(f"{target.stem}~{n}{target.suffix}")
    return cand


def plan_moves(paths: Sequence[str | os.PathLike], dest: str | os.PathLike,
               roots: Sequence[str | os.PathLike]) -> list[Move]:
    """Targets under ``dest`` keeping each file's path relative to its input root; no name reused."""
    dest = Path(dest).resolve()
    taken: set[str] = set()
    moves = []
    for p in dict.fromkeys(str(Path(x).resolve()) for x in paths):
        target = _free_name(dest / relative_to_roots(p, roots), taken)
        taken.add(str(target))
        try:
            size = os.stat(p).st_size
        except OSError:
            size = 0
        moves.append(Move(p, str(target), size))
    return moves


def _write_manifest(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def new_manifest_path(dest: str | os.PathLike) -> Path:
    """A manifest name in ``dest`` that no earlier run used."""
    dest = Path(dest)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return _free_name(dest / f"agcurate-moves-{stamp}.json", set())


def _same_file_content(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
    except OSError:
        return False

    def digest(p: Path) -> str:
        h = hashlib.blake2b(digest_size=16)
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    return digest(a) == digest(b)


def _move_one(src: Path, dst: Path) -> None:
    """Move without ever overwriting: rename on one file system, else copy + fsync + rename + delete."""
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(f"{dst} exists")
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        if hasattr(os, "link") and src.stat().st_dev == dst.parent.stat().st_dev:
            os.link(src, dst)  # fails if dst appeared meanwhile: never overwrites
            try:
                os.unlink(src)
            except OSError:
                os.unlink(dst)
                raise
            return
    except OSError as exc:
        if getattr(exc, "errno", None) not in (18, 1, 38, 95):  # EXDEV, EPERM, ENOSYS, EOPNOTSUPP
            raise
    tmp = dst.with_name(f".{dst.name}.agcurate-partial")
    shutil.copy2(src, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    if dst.exists():
        tmp.unlink()
        raise FileExistsError(f"{dst} exists")
    os.replace(tmp, dst)
    try:
        os.unlink(src)
    except OSError:
        os.unlink(dst)  # the original stays where it was
        raise


def move_files(paths: Sequence[str | os.PathLike], dest: str | os.PathLike,
               roots: Sequence[str | os.PathLike], manifest: str | os.PathLike | None = None,
               note: dict | None = None) -> MoveReport:
    """Move ``paths`` under ``dest`` (relative paths kept), writing the manifest before any move.

    A file that cannot be moved (read-only folder, vanished) is reported and left in place; the
    rest go on. Raises ``MoveError`` only when the destination or the manifest cannot be written.
    """
    from ..sources.remote import is_url

    remote = [str(p) for p in paths if is_url(p)]
    if remote or is_url(dest):
        raise MoveError(f"files are moved on local disks only, not {(remote or [str(dest)])[0]}: "
                        "move object-store files with the store's own tools (the CSV lists them)")
    dest = Path(dest).resolve()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MoveError(f"cannot create {dest}: {exc.strerror or exc}") from exc
    mpath = Path(manifest) if manifest else new_manifest_path(dest)
    moves = plan_moves(paths, dest, roots)
    data = {"agcurate_manifest": MANIFEST_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "dest": str(dest), "roots": [str(Path(r).resolve()) for r in roots], "note": note or {},
            "moves": [m.__dict__ for m in moves]}
    try:
        _write_manifest(mpath, data)
    except OSError as exc:
        raise MoveError(f"cannot write manifest {mpath}: {exc.strerror or exc}; nothing was moved") from exc
    report = MoveReport(mpath)
    for m in moves:
        try:
            _move_one(Path(m.src), Path(m.dst))
            m.status = "moved"
            report.done.append(m)
        except OSError as exc:
            m.status = f"failed: {exc.strerror or exc}"
            report.failed.append(m)
    data["moves"] = [m.__dict__ for m in moves]
    data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write_manifest(mpath, data)
    return report


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest's content; ``MoveError`` when it is missing or not an agcurate manifest."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MoveError(f"no such manifest: {path}") from exc
    except (OSError, ValueError) as exc:
        raise MoveError(f"cannot read manifest {path}: {exc}") from exc
    if not isinstance(data, dict) or "moves" not in data or "agcurate_manifest" not in data:
        raise MoveError(f"{path} is not an agcurate move manifest")
    return data


def undo(manifest: str | os.PathLike) -> MoveReport:
    """Put every file listed in ``manifest`` back where it was, judging by what is on disk.

    Target present, source free: moved back. Both present with equal bytes (a copy left by an
    interrupted cross-device move): the copy is removed. Both present and different: left alone
    and reported. Neither (or only the source): nothing to do. Half-written copies are removed.
    """
    mpath = Path(manifest)
    data = read_manifest(mpath)
    report = MoveReport(mpath)
    for raw in data["moves"]:
        m = Move(raw["src"], raw["dst"], int(raw.get("size", 0)))
        src, dst = Path(m.src), Path(m.dst)
        partial = dst.with_name(f".{dst.name}.agcurate-partial")
        if partial.exists():
            partial.unlink()
        if not dst.exists():
            m.status = "not moved" if src.exists() else "missing"
            report.skipped.append(m)
            continue
        if src.exists() or src.is_symlink():
            if _same_file_content(src, dst):
                dst.unlink()
                m.status = "copy removed"
                report.done.append(m)
            else:
                m.status = f"failed: {src} exists and differs; left at {dst}"
                report.failed.append(m)
            continue
        try:
            _move_one(dst, src)
            m.status = "restored"
            report.done.append(m)
        except OSError as exc:
            m.status = f"failed: {exc.strerror or exc}"
            report.failed.append(m)
    data["undone"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        _write_manifest(mpath, data)
    except OSError:
        pass  # the files are back; a read-only manifest folder must not turn that into an error
    _prune_empty_dirs(Path(data.get("dest", "")), [Path(m["dst"]).parent for m in data["moves"]])
    return report


def _prune_empty_dirs(dest: Path, dirs: Sequence[Path]) -> None:
    """Remove folders under ``dest`` that the moves created and that are empty again."""
    if not str(dest):
        return
    for d in sorted(set(dirs), key=lambda p: len(p.parts), reverse=True):
        while d != dest and dest in d.parents:
            try:
                d.rmdir()
            except OSError:
                break
            d = d.parent
