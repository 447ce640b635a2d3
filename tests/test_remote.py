"""Inputs and stores named by URL, through fsspec: ``memory://`` (in-process) and ``s3://`` on a local
S3 server (moto), so the real s3fs client, listing, ranged reads and PUTs are exercised offline."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

import agcurate
from agcurate.sources import discover, read_group
from agcurate.sources.remote import fingerprint_of, is_url, normalise_input


@pytest.fixture
def memfs():
    """A clean fsspec in-memory filesystem (shared by the whole process, so emptied after use)."""
    import fsspec

    fs = fsspec.filesystem("memory")
    yield fs
    for path in list(fs.store):
        fs.store.pop(path, None)
    fs.pseudo_dirs[:] = [""]


@pytest.fixture(autouse=True)
def _local_cache(tmp_path, monkeypatch):
    """What a URL store keeps locally (ONNX graph, ANN index) goes to the test's folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def put_examples(fs, root: str, files) -> list[str]:
    names = []
    for f in files:
        fs.pipe(f"{root}/{Path(f).name}", Path(f).read_bytes())
        names.append(Path(f).name)
    return names


def test_urls_are_told_from_paths():
    assert is_url("s3://bucket/photos") and is_url("gs://b/x.jpg") and is_url("memory://x")
    assert not is_url("/data/photos") and not is_url("photos") and not is_url("file:///data/x.jpg")
    assert normalise_input("s3://bucket/photos/") == "s3://bucket/photos"
    assert normalise_input("file:///tmp/a%20b.jpg") == "/tmp/a b.jpg"
    assert fingerprint_of({"size": 12, "ETag": '"abc"'}) == "12-abc"
    assert fingerprint_of({"size": 12, "mtime": 5.5}) == "12-5.5"


def test_a_url_folder_is_listed_like_a_local_one(memfs, examples_dir):
    """Photos listed from the listing alone (or their first bytes when unnamed); hidden names skipped, other files ignored, a missing
    URL and an unknown protocol reported with a reason; keys are the URLs."""
    files = sorted(examples_dir.glob("*.jpg"))[:4]
    names = put_examples(memfs, "/photos", files)
    memfs.pipe("/photos/notes.txt", b"field notes")
    memfs.pipe("/photos/sub/.hidden.jpg", Path(files[0]).read_bytes())
    memfs.pipe("/photos/sub/empty.jpg", b"")
    memfs.pipe("/photos/sub/IMG0001", Path(files[0]).read_bytes())  # no suffix: recognised by content
    found = discover(["memory://photos/", "memory://nowhere", "nosuchproto://x/y"])
    assert [it.key for it in found.items] == [f"memory://photos/{n}" for n in names] + ["memory://photos/sub/IMG0001"]
    assert all(it.kind == "image" and it.fingerprint.startswith(str(Path(f).stat().st_size))
               for it, f in zip(found.items, files + files[:1]))
    reasons = {s.path: s.reason for s in found.skipped}
    assert reasons["memory://photos/sub/empty.jpg"] == "empty file"
    assert reasons["memory://nowhere"] == "no such file or directory"
    assert "nosuchproto" in reasons["nosuchproto://x/y"]
    assert found.ignored == 1  # notes.txt


def test_url_items_decode_to_the_pixels_of_the_local_file(memfs, examples_dir):
    f = sorted(examples_dir.glob("*.jpg"))[0]
    put_examples(memfs, "/one", [f])
    url_item = discover(["memory://one"]).items[0]
    local_item = discover([str(f)]).items[0]
    got = next(read_group([url_item]))
    want = next(read_group([local_item]))
    assert got.item == url_item and got.error is None
    assert np.array_equal(got.rgb, want.rgb) and got.content_hash == want.content_hash
    memfs.rm("/one", recursive=True)  # gone since it was listed: an error for the item, no exception
    gone = next(read_group([url_item]))
    assert gone.rgb is None and gone.item == url_item and "cannot read file" in gone.error


def test_embedding_a_url_collection_into_a_url_store(memfs, examples_dir, tmp_path):
    """Same vectors as the local files; the store lives in the URL; a second run encodes nothing."""
    files = sorted(examples_dir.glob("*.jpg"))[:5]
    names = put_examples(memfs, "/coll", files)
    memfs.pipe("/coll/broken.jpg", b"\xff\xd8\xff\xe0 not a jpeg")
    remote = agcurate.embed(["memory://coll"], store="memory://stores/a", workers=0, progress=False)
    local = agcurate.embed([str(f) for f in files], store=tmp_path / "local", workers=0, progress=False)
    assert list(remote.items["path"]) == [f"memory://coll/{n}" for n in names]
    cos = np.sum(remote.vectors * local.vectors, axis=1)
    assert cos.min() >= 0.9999
    assert [s.path for s in remote.skipped] == ["memory://coll/broken.jpg"]
    assert str(remote.store_dir).startswith("memory://stores/a/models/")
    parts = memfs.glob("/stores/a/models/*/parts/part-*.parquet")
    assert parts and memfs.exists("/stores/a/last.json") and memfs.exists("/stores/a/models/" +
                                                                           Path(parts[0]).parent.parent.name + "/skipped.csv")
    again = agcurate.embed(None, store="memory://stores/a", workers=0, progress=False)  # PATH from last.json
    assert again.stats.encoded == 0 and again.stats.cached == len(files)
    assert np.array_equal(again.vectors, remote.vectors)
    memfs.pipe(f"/coll/{names[0]}", Path(files[1]).read_bytes())  # the object changed: encoded again
    changed = agcurate.embed(["memory://coll"], store="memory://stores/a", workers=0, progress=False)
    assert changed.stats.encoded == 1
    assert float(changed.vectors[0] @ local.vectors[1]) >= 0.9999


def test_moving_files_behind_a_url_is_refused(tmp_path):
    from agcurate.workflows.fileops import MoveError, move_files

    with pytest.raises(MoveError, match="local disks only"):
        move_files(["s3://bucket/a.jpg"], tmp_path / "dups", ["s3://bucket"])


# -- s3:// against a local S3 server --------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3_endpoint():
    pytest.importorskip("s3fs", reason="s3:// needs s3fs (pip install 'agcurate[test]')")
    server_mod = pytest.importorskip("moto.server", reason="the local S3 server needs moto[server]")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        yield s3fs.S3FileSystem()
        s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


@pytest.mark.slow
def test_cli_embeds_s3_photos_videos_and_rasters_into_an_s3_store_and_dedups_from_it(
        s3_endpoint, examples_dir, tmp_path):
    """The user's commands, in-process: ``embed s3://... --store s3://...``, then ``dedup`` with no PATH
    reads the collection back from the S3 store and finds the examples' copies; pandas reads the
    store's parts from S3 without agcurate."""
    from typer.testing import CliRunner

    from agcurate.cli import app

    fs = s3_endpoint
    fs.mkdir("field")
    for f in sorted(examples_dir.iterdir()):
        fs.put_file(str(f), f"field/photos/{f.name}")
    video = examples_dir.parent / "videos" / "intel-shots.mp4"
    fs.put_file(str(video), "field/photos/clips/intel-shots.mp4")
    runner = CliRunner()
    res = runner.invoke(app, ["embed", "s3://field/photos", "--store", "s3://field/agcurate", "--fps", "0.5"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["dedup", "--store", "s3://field/agcurate", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    import pandas as pd

    dups = pd.read_csv(tmp_path / "out" / "duplicates.csv")
    groups = dups.groupby("group")["path"].apply(lambda s: {p.rsplit("/", 1)[-1] for p in s})
    assert any({"SOAP_061.png", "SOAP_061_reencoded.jpg"} <= g for g in groups)
    assert all(p.startswith("s3://field/photos/") for p in dups["path"])
    photos = dups[~dups["path"].str.endswith(".mp4")]
    assert len(photos) >= 5 and (photos["bytes"] > 0).all()  # sizes from the listing, not the local disk
    parts = fs.glob("field/agcurate/models/*/parts/*.parquet")
    table = pd.concat(pd.read_parquet(f"s3://{p}", columns=["path", "kind", "vector"]) for p in parts)
    assert (table["kind"] == "frame").sum() >= 2 and (table["kind"] == "image").sum() >= 10
    assert len(table["vector"].iloc[0]) == 1280


def test_tables_show_url_items_relative_to_the_shared_url_folder():
    from agcurate.cli.common import common_folder
    from agcurate.items import display_path

    base = common_folder(["s3://b/field/2024", "s3://b/field/2025/a.jpg"])
    assert base == "s3://b/field"
    assert display_path("s3://b/field/2024/x/a.jpg", base) == "2024/x/a.jpg"
    assert common_folder(["s3://b/x", "gs://b/x"]) is None


def test_search_takes_a_url_query_against_a_url_collection(memfs, examples_dir, tmp_path):
    files = sorted(examples_dir.glob("SOAP_061*")) + sorted(examples_dir.glob("Forest_*.jpg"))[:3]
    put_examples(memfs, "/q", files)
    res = agcurate.search(["memory://q/SOAP_061.png"], ["memory://q"], k=2, store=tmp_path / "st", workers=0,
                          progress=False)
    best = res.table.sort_values("rank")["path"].tolist()
    assert all(p.startswith("memory://q/SOAP_061_") for p in best)  # the query itself is not a match


@pytest.mark.slow
def test_frames_of_a_video_behind_a_url_are_those_of_the_local_file(memfs, examples_dir, tmp_path):
    video = examples_dir.parent / "videos" / "intel-shots.mp4"
    memfs.pipe("/videos/intel-shots.mp4", video.read_bytes())
    remote = agcurate.frames(["memory://videos"], store=tmp_path / "st", out=tmp_path / "remote", workers=0,
                             progress=False)
    local = agcurate.frames([str(video)], store=tmp_path / "st", out=tmp_path / "local", workers=0,
                            progress=False)
    cols = ["frame", "reason", "camera"]
    assert remote.table[cols].values.tolist() == local.table[cols].values.tolist()
    assert set(remote.table["video"]) == {"memory://videos/intel-shots.mp4"}
    assert all(Path(p).is_file() for p in remote.table["path"])  # the JPEGs are written locally


def test_dedup_refuses_to_move_url_files_before_reading_anything(tmp_path):
    from typer.testing import CliRunner

    from agcurate.cli import app

    res = CliRunner().invoke(app, ["dedup", "s3://no-such-bucket/photos", "--move-to", str(tmp_path / "dups")])
    assert res.exit_code == 2 and "local disks only" in res.output
