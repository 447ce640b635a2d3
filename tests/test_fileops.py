"""Moving files with a manifest and undoing it: clashes, read-only files and interrupted runs lose nothing."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from agcurate.workflows import fileops
from agcurate.workflows.fileops import MoveError, move_files, plan_moves, read_manifest, undo


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), manifests left out."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith("agcurate-moves-")}


@pytest.fixture
def files(tmp_path) -> tuple[Path, list[Path]]:
    src = tmp_path / "photos"
    made = []
    for rel in ("a.jpg", "sub/b.jpg", "sub/deeper/c.png", "d.jpg"):
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"content of {rel}".encode() * 50)
        made.append(p)
    return src, made


def test_move_keeps_relative_paths_and_undo_restores_everything(tmp_path, files):
    src, made = files
    before = _tree(src)
    dest = tmp_path / "dups"
    rep = move_files(made[1:3], dest, [src])
    assert len(rep.done) == 2 and not rep.failed
    assert (dest / "sub/b.jpg").read_bytes() == before["sub/b.jpg"]
    assert (dest / "sub/deeper/c.png").read_bytes() == before["sub/deeper/c.png"]
    assert not made[1].exists() and not made[2].exists() and made[0].exists()
    data = json.loads(rep.manifest.read_text())
    assert [m["status"] for m in data["moves"]] == ["moved", "moved"]
    assert rep.bytes == len(before["sub/b.jpg"]) + len(before["sub/deeper/c.png"])

    back = undo(rep.manifest)
    assert len(back.done) == 2 and not back.failed
    assert _tree(src) == before
    assert not (dest / "sub").exists()  # folders the move created are gone again
    again = undo(rep.manifest)  # undoing twice changes nothing
    assert not again.done and len(again.skipped) == 2 and _tree(src) == before


def test_manifest_is_written_before_the_first_move(tmp_path, files, monkeypatch):
    src, made = files
    seen = []
    real = fileops._move_one

    def spy(a, b):
        manifests = list((tmp_path / "dups").glob("agcurate-moves-*.json"))
        assert len(manifests) == 1
        seen.append(len(read_manifest(manifests[0])["moves"]))
        real(a, b)

    monkeypatch.setattr(fileops, "_move_one", spy)
    move_files(made, tmp_path / "dups", [src])
    assert seen == [4, 4, 4, 4]


def test_name_clash_gets_a_new_name_and_overwrites_nothing(tmp_path, files):
    src, made = files
    dest = tmp_path / "dups"
    (dest / "sub").mkdir(parents=True)
    (dest / "sub/b.jpg").write_bytes(b"someone else's file")
    other_root = tmp_path / "other"
    (other_root / "sub").mkdir(parents=True)
    twin = other_root / "sub/b.jpg"  # same relative path from a second input root
    twin.write_bytes(b"twin")
    before = _tree(src)
    rep = move_files([made[1], twin], dest, [src, other_root])
    assert (dest / "sub/b.jpg").read_bytes() == b"someone else's file"
    assert (dest / "sub/b~1.jpg").read_bytes() == before["sub/b.jpg"]
    assert (dest / "sub/b~2.jpg").read_bytes() == b"twin"
    assert len(rep.done) == 2
    undo(rep.manifest)
    assert _tree(src) == before and twin.read_bytes() == b"twin"
    assert (dest / "sub/b.jpg").read_bytes() == b"someone else's file"


def test_plan_uses_the_deepest_root_and_file_arguments(tmp_path, files):
    src, made = files
    moves = plan_moves([made[2], made[0]], tmp_path / "d", [src, src / "sub", made[0]])
    assert Path(moves[0].dst) == (tmp_path / "d" / "deeper/c.png").resolve()
    assert Path(moves[1].dst) == (tmp_path / "d" / "a.jpg").resolve()


def test_a_file_that_cannot_be_moved_stays_and_the_rest_go_on(tmp_path, files, monkeypatch):
    """A read-only folder: the source cannot be unlinked (simulated, since root ignores modes)."""
    src, made = files
    before = _tree(src)
    real_unlink = os.unlink

    def unlink(p, *a, **kw):
        if Path(p) == made[1]:
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real_unlink(p, *a, **kw)

    monkeypatch.setattr(os, "unlink", unlink)
    rep = move_files(made, tmp_path / "dups", [src])
    assert [Path(m.src) for m in rep.failed] == [made[1]]
    assert "Permission denied" in rep.failed[0].status
    assert made[1].read_bytes() == before["sub/b.jpg"]      # still in place ...
    assert not (tmp_path / "dups/sub/b.jpg").exists()       # ... and not duplicated
    assert len(rep.done) == 3
    monkeypatch.setattr(os, "unlink", real_unlink)
    undo(rep.manifest)
    assert _tree(src) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file modes")
def test_read_only_folder_for_real(tmp_path, files):
    src, made = files
    (src / "sub").chmod(0o555)
    try:
        rep = move_files([made[1], made[0]], tmp_path / "dups", [src])
        assert [Path(m.src) for m in rep.failed] == [made[1]] and made[1].exists()
    finally:
        (src / "sub").chmod(0o755)


def test_read_only_file_moves_with_its_mode(tmp_path, files):
    src, made = files
    made[0].chmod(0o444)
    rep = move_files([made[0]], tmp_path / "dups", [src])
    moved = tmp_path / "dups/a.jpg"
    assert rep.done and oct(moved.stat().st_mode & 0o777) == "0o444"
    undo(rep.manifest)
    assert oct(made[0].stat().st_mode & 0o777) == "0o444"


def test_interrupted_run_then_undo_loses_nothing(tmp_path, files, monkeypatch):
    src, made = files
    before = _tree(src)
    real = fileops._move_one
    calls = []

    def crash_after_two(a, b):
        if len(calls) == 2:
            raise SystemExit("killed")  # like a kill between two files
        calls.append(a)
        real(a, b)

    monkeypatch.setattr(fileops, "_move_one", crash_after_two)
    with pytest.raises(SystemExit):
        move_files(made, tmp_path / "dups", [src])
    manifest = next((tmp_path / "dups").glob("agcurate-moves-*.json"))
    assert sum(not p.exists() for p in made) == 2
    monkeypatch.setattr(fileops, "_move_one", real)
    rep = undo(manifest)
    assert len(rep.done) == 2 and len(rep.skipped) == 2 and not rep.failed
    assert _tree(src) == before


def test_cross_device_copy_killed_half_way(tmp_path, files, monkeypatch):
    """Across file systems a move is copy + rename + delete; a kill after the copy leaves two
    equal files (undo removes the copy) or a partial file (undo removes it)."""
    src, made = files
    before = _tree(src)

    def no_link(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    real_unlink = os.unlink

    def die_before_delete(p, *a, **kw):
        if Path(p) == made[0]:
            raise SystemExit("killed after the copy")
        return real_unlink(p, *a, **kw)

    monkeypatch.setattr(os, "unlink", die_before_delete)
    with pytest.raises(SystemExit):
        move_files(made[:2], tmp_path / "dups", [src])
    monkeypatch.setattr(os, "unlink", real_unlink)
    manifest = next((tmp_path / "dups").glob("agcurate-moves-*.json"))
    assert (tmp_path / "dups/a.jpg").exists() and made[0].exists()   # both copies exist
    partial = tmp_path / "dups/sub/.b.jpg.agcurate-partial"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half a file")
    rep = undo(manifest)
    assert not rep.failed
    assert _tree(src) == before
    assert not (tmp_path / "dups/a.jpg").exists() and not partial.exists()


def test_undo_never_overwrites_a_new_file_at_the_original_place(tmp_path, files):
    src, made = files
    rep = move_files([made[0]], tmp_path / "dups", [src])
    made[0].write_bytes(b"a new file the user put there")
    back = undo(rep.manifest)
    assert len(back.failed) == 1 and "differs" in back.failed[0].status
    assert made[0].read_bytes() == b"a new file the user put there"
    assert (tmp_path / "dups/a.jpg").exists()


def test_bad_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(MoveError, match="no such manifest"):
        undo(tmp_path / "nope.json")
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(MoveError, match="not an agcurate move manifest"):
        undo(bad)
