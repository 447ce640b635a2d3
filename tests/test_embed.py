"""`embed` end to end: bad input is reported and skipped, the store is incremental and resumable."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import agcurate
from agcurate.cli import app
from agcurate.errors import NoUsableInputError
from tests.conftest import ROOT, make_image

runner = CliRunner()


def _copy_examples(src: Path, dst: Path, n: int | None = None) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*"))[:n]:
        shutil.copy2(f, dst / f.name)
    return dst


def test_bad_files_are_skipped_named_and_the_run_goes_on(tmp_path, store, examples_dir):
    d = _copy_examples(examples_dir, tmp_path / "data", 4)
    good = (examples_dir / "Forest_1.jpg").read_bytes()
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(300))
    (d / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (d / "empty.png").write_bytes(b"")
    (d / "garbage.png").write_bytes(b"hello, this is text")
    (d / "readme.md").write_text("# notes")
    emb = agcurate.embed([d], store=store, workers=0)
    assert len(emb) == 4
    reasons = {Path(s.path).name: s.reason for s in emb.skipped}
    assert set(reasons) == {"corrupt.jpg", "truncated.jpg", "empty.png", "garbage.png"}
    assert "empty" in reasons["empty.png"]
    assert emb.stats.skipped == 4 and emb.stats.ignored == 1
    with open(emb.store_dir / "skipped.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {Path(r["path"]).name for r in rows} == set(reasons)
    assert all(r["reason"] for r in rows)


def test_no_usable_input_exits_2_with_one_line(tmp_path, store):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(app, ["embed", str(empty), "--store", str(store)])
    assert res.exit_code == 2
    assert "no image found" in res.output and "Traceback" not in res.output
    (empty / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    res = runner.invoke(app, ["embed", str(empty), "--store", str(store)])
    assert res.exit_code == 2 and "could not be read" in res.output
    with pytest.raises(NoUsableInputError):
        agcurate.embed([tmp_path / "missing"], store=store)


def test_incremental_changed_added_deleted(tmp_path, store, examples_dir):
    d = _copy_examples(examples_dir, tmp_path / "data", 6)
    first = agcurate.embed([d], store=store, workers=0)
    assert (first.stats.encoded, first.stats.cached) == (6, 0)
    again = agcurate.embed([d], store=store, workers=0)
    assert (again.stats.encoded, again.stats.cached) == (0, 6)
    assert np.array_equal(again.vectors, first.vectors) and again.keys == first.keys

    changed = d / "AnnualCrop_2.jpg"
    make_image(changed, size=(64, 64), color=(250, 250, 250), seed=3)  # new content, new mtime
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    make_image(d / "added.png", seed=4)
    (d / "AnnualCrop_1.jpg").unlink()
    third = agcurate.embed([d], store=store, workers=0)
    assert third.stats.encoded == 2 and third.stats.cached == 4
    names = [Path(p).name for p in third.paths]
    assert "AnnualCrop_1.jpg" not in names and "added.png" in names and len(names) == 6
    i_old, i_new = first.keys.index(str(changed)), third.keys.index(str(changed))
    assert float(first.vectors[i_old] @ third.vectors[i_new]) < 0.99
    assert len(set(third.keys)) == len(third.keys)


def test_paths_default_to_last_collection(tmp_path, store, examples_dir):
    d = _copy_examples(examples_dir, tmp_path / "data", 3)
    agcurate.embed([d], store=store, workers=0)
    again = agcurate.embed(None, store=store)
    assert again.stats.cached == 3 and again.stats.encoded == 0
    assert again.inputs == [str(d.resolve())]


def test_compaction_keeps_newest_rows(tmp_path, store, examples_dir):
    from agcurate.encoders import get_encoder
    from agcurate.embedding.store import EmbeddingStore

    d = _copy_examples(examples_dir, tmp_path / "data", 2)
    agcurate.embed([d], store=store, workers=0)
    f = d / "AnnualCrop_1.jpg"
    make_image(f, seed=9)
    agcurate.embed([d], store=store, workers=0)
    enc = get_encoder("lite0")
    st = EmbeddingStore(store, enc.id, enc.slug, enc.dim)
    before = st.load()
    dropped = st.compact(force=True)
    after = st.load()
    assert dropped == 1 and len(st.parts()) == 1
    assert list(after.items["key"]) == list(before.items["key"])
    assert np.array_equal(after.vectors, before.vectors)


def test_cli_embed_summary_and_cache(tmp_path, store, examples_dir):
    d = _copy_examples(examples_dir, tmp_path / "data", 3)
    res = runner.invoke(app, ["embed", str(d), "--store", str(store), "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "newly encoded" in res.output and "3" in res.output
    res = runner.invoke(app, ["embed", str(d), "--store", str(store)])
    assert res.exit_code == 0 and "nothing new to encode" in res.output


@pytest.mark.slow
def test_sigkill_mid_run_loses_at_most_one_chunk(tmp_path, store, examples_dir):
    """Start a real embed process, SIGKILL it after its first chunk lands, run again."""
    d = tmp_path / "many"
    d.mkdir()
    srcs = sorted(examples_dir.glob("*.jpg"))
    for i in range(160):  # distinct files (content differs by a planted pixel)
        from PIL import Image

        img = np.asarray(Image.open(srcs[i % len(srcs)]).convert("RGB").resize((64, 64))).copy()
        img[0, 0] = (i, 255 - i, i // 2)
        Image.fromarray(img).save(d / f"img_{i:03d}.png")
    env = dict(os.environ, AGCURATE_CHUNK_ITEMS="16", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "agcurate", "embed", str(d), "--store", str(store), "--workers", "1",
           "--batch-size", "8", "--image-size", "96"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        parts = list((store / "models").glob("*/parts/part-*.parquet")) if (store / "models").exists() else []
        if len(parts) >= 2:
            break
        assert proc.poll() is None, "embed finished before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from agcurate.encoders import get_encoder
    from agcurate.embedding.store import EmbeddingStore

    enc = get_encoder("lite0", image_size=96)
    st = EmbeddingStore(store, enc.id, enc.slug, enc.dim)
    kept = len(st.index())
    assert 16 <= kept < 160
    res = agcurate.embed([d], store=store, image_size=96, workers=0)
    assert res.stats.cached == kept and res.stats.encoded == 160 - kept
    assert len(res) == 160 and len(set(res.keys)) == 160
    assert len(st.load().items) == 160  # no duplicate rows in the store either


@pytest.mark.parametrize("model", ["lite0", "lite0-ml"])
def test_onnx_and_torch_backends_give_the_same_vectors(tmp_path, examples_dir, model):
    d = _copy_examples(examples_dir, tmp_path / "data", 5)
    a = agcurate.embed([d], model, store=tmp_path / "s1", workers=0, backend="torch")
    b = agcurate.embed([d], model, store=tmp_path / "s2", workers=0, backend="onnx")
    assert a.keys == b.keys
    cos = np.sum(a.vectors * b.vectors, axis=1)
    assert cos.min() > 0.999
    with pytest.raises(agcurate.AgcurateError, match="backend"):
        agcurate.embed([d], store=tmp_path / "s3", backend="tensorrt")


def test_undecodable_file_name_is_reported_not_fatal(tmp_path, store, examples_dir):
    d = _copy_examples(examples_dir, tmp_path / "data", 2)
    bad = os.path.join(os.fsencode(d), b"bad\xff name.jpg")
    with open(bad, "wb") as fh:
        fh.write((examples_dir / "Forest_1.jpg").read_bytes())
    (d / "ok \u00e9t\u00e9 (1) #2.jpg").write_bytes((examples_dir / "Forest_2.jpg").read_bytes())
    emb = agcurate.embed([d], store=store, workers=0)
    assert len(emb) == 3
    assert len(emb.skipped) == 1 and "UTF-8" in emb.skipped[0].reason
    assert "bad\\xff name.jpg" in (emb.store_dir / "skipped.csv").read_text(encoding="utf-8")


def test_store_reads_parts_of_the_older_list_format_beside_new_ones(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agcurate.embedding.store import EmbeddingStore

    st = EmbeddingStore(tmp_path, "enc", "enc", 4)
    rng = np.random.default_rng(0)
    new = rng.normal(size=(2, 4)).astype(np.float16)
    st.append([{"key": "b", "path": "b", "fingerprint": "1"}, {"key": "c", "path": "c", "fingerprint": "1"}], new)
    part = st.parts()[0]
    old = pq.read_table(part).slice(0, 1)
    old_vec = np.array([[1, 0, 0, 0]], np.float16)
    old = old.set_column(old.column_names.index("vector"), "vector",
                         pa.FixedSizeListArray.from_arrays(pa.array(old_vec.reshape(-1)), 4))
    old = old.set_column(old.column_names.index("key"), "key", pa.array(["a"]))
    old = old.set_column(old.column_names.index("seq"), "seq", pa.array([1], pa.int64()))
    pq.write_table(old, st.parts_dir / "part-0-old.parquet")
    got = st.load(["a", "b", "c"])
    assert list(got.items["key"]) == ["a", "b", "c"]
    want = np.concatenate([old_vec, new]).astype(np.float32)
    want /= np.linalg.norm(want, axis=1, keepdims=True)  # read back as unit vectors
    assert np.allclose(got.vectors, want, atol=1e-6)


def test_default_workers_scale_with_cores_on_cuda_only(monkeypatch):
    """CPU keeps at most 4 decode workers (the model needs the cores); CUDA, where decoding is the
    bottleneck, takes up to GPU_WORKERS and leaves one core to the main process."""
    from agcurate.embedding.encode import GPU_WORKERS, default_workers

    monkeypatch.setenv("AGCURATE_THREADS", "16")
    assert default_workers(10) == 0 and default_workers(10, cuda=True) == 0
    assert default_workers(1000) == 4
    assert default_workers(1000, cuda=True) == GPU_WORKERS == 8
    monkeypatch.setenv("AGCURATE_THREADS", "2")
    assert default_workers(1000) == 2
    assert default_workers(1000, cuda=True) == 1
    monkeypatch.setenv("AGCURATE_THREADS", "1")
    assert default_workers(1000, cuda=True) == 1



def test_onnx_backend_on_cuda_is_refused_not_silently_swapped(monkeypatch):
    """ONNX Runtime is the CPU path; asking for it on CUDA must say so instead of running torch."""
    import agcurate.encoders.runners as rt
    from agcurate.encoders import get_encoder

    monkeypatch.setattr(rt, "resolve_device", lambda device="auto": "cuda")
    with pytest.raises(agcurate.AgcurateError, match="CPU only"):
        rt.make_runner(get_encoder("lite0"), "cuda", "onnx")
