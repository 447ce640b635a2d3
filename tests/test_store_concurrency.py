"""Several writers on one store: each item is encoded and stored once, readers never see duplicates,
and a writer that dies does not block the others."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import agcurate
from tests.conftest import ROOT, make_image

N_IMAGES = 48
SIZE = 64  # encoder input size: small and fast, its own encoder folder in the store


@pytest.fixture
def images(tmp_path) -> Path:
    d = tmp_path / "imgs"
    for i in range(N_IMAGES):
        make_image(d / f"img_{i:02d}.png", size=(40, 32), color=(40 + 4 * i, 200 - 3 * i, 90), seed=i)
    return d


def _env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), AGCURATE_NO_PROGRESS="1", **extra)


def _store(root: Path):
    from agcurate.embedding.store import EmbeddingStore
    from agcurate.encoders import get_encoder

    enc = get_encoder("lite0", image_size=SIZE)
    return EmbeddingStore(root, enc.id, enc.slug, enc.dim)


def _stored_rows(root: Path) -> list[str]:
    """Every key of every row in every part (duplicates included)."""
    import pyarrow.parquet as pq

    return [k for p in _store(root).parts() for k in pq.read_table(p, columns=["key"]).column("key").to_pylist()]


# Both processes import everything, then wait for one "go" file, so they ask the store what it lacks
# at the same moment: without coordination both would encode all of it.
BARRIER = """
import sys, time
from pathlib import Path
import torch, timm, agcurate.cli, agcurate.embedding.encode, agcurate.embedding.loader, agcurate.encoders.lite0
go = Path(sys.argv[1])
Path(sys.argv[2]).touch()
while not go.exists():
    time.sleep(0.005)
from agcurate.cli import app
app(sys.argv[3:], prog_name="agcurate")
"""


@pytest.mark.slow  # two processes that import torch: 20-45 s on a busy 2-core machine
def test_two_embed_processes_on_one_store_store_each_item_once(tmp_path, images, store):
    go = tmp_path / "go"
    cmd = ["embed", str(images), "--store", str(store), "--workers", "0", "--image-size", str(SIZE),
           "--backend", "torch", "--batch-size", "8"]
    env = _env(AGCURATE_CHUNK_ITEMS="8")  # several parts per writer
    procs = [subprocess.Popen([sys.executable, "-c", BARRIER, str(go), str(tmp_path / f"ready{i}"), *cmd],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.time() < deadline, "the processes did not start"
        time.sleep(0.02)
    go.touch()
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
    encoded = [int(re.search(r"newly encoded\s*[│|]?\s*([\d,]+)", out).group(1)) for out, _ in outs]
    assert sum(encoded) == N_IMAGES                 # never both: each item was encoded by one process
    keys = _stored_rows(store)
    assert len(keys) == N_IMAGES and len(set(keys)) == N_IMAGES   # one row per item in the store
    emb = agcurate.embed([images], store=store, workers=0, image_size=SIZE, backend="torch")
    assert emb.stats.encoded == 0 and len(emb) == N_IMAGES
    assert not list((_store(store).dir / "claims").iterdir())   # no claim left behind


HOLDER = """
import sys, time
from agcurate.embedding.store import EmbeddingStore
from agcurate.encoders import get_encoder
from agcurate.sources import SourceOptions, discover
enc = get_encoder("lite0", image_size=int(sys.argv[3]))
st = EmbeddingStore(sys.argv[1], enc.id, enc.slug, enc.dim)
found = discover([sys.argv[2]], SourceOptions())
claim = st.claim({it.key: it.fingerprint for it in found.items})
print("claimed", len(claim.mine), flush=True)
time.sleep(600)
"""


def test_a_writer_killed_while_others_wait_does_not_block_them(tmp_path, images, store, capsys):
    """A process claims every item and is SIGKILLed while an ``embed`` waits for it: the OS drops its
    lock, and the waiting ``embed`` encodes the items itself."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store), str(images), str(SIZE)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = holder.stdout.readline()
        assert line.split() == ["claimed", str(N_IMAGES)], line + holder.stderr.read()
        result = {}
        worker = threading.Thread(target=lambda: result.update(
            emb=agcurate.embed([images], store=store, workers=0, image_size=SIZE, backend="torch")))
        worker.start()
        err, deadline = "", time.time() + 60
        while "waiting for another agcurate process" not in err:
            assert worker.is_alive(), "embed did not wait for the claimed items"
            assert time.time() < deadline, "no waiting message"
            time.sleep(0.05)
            err += capsys.readouterr().err
        assert f"pid {holder.pid}" in err and f"{N_IMAGES} of these items" in err
        assert worker.is_alive()                    # still waiting: the holder lives
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    worker.join(120)
    assert not worker.is_alive()
    emb = result["emb"]
    assert emb.stats.encoded == N_IMAGES and len(emb) == N_IMAGES
    assert sorted(_stored_rows(store)) == sorted(emb.keys)
    st = _store(store)
    assert not list((st.dir / "claims").iterdir())   # the dead holder's claim was cleared


def test_a_dead_writers_claim_left_on_disk_is_ignored(tmp_path, images, store):
    """A claim file whose owner is gone (its lock is free) does not make anyone wait."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store), str(images), str(SIZE)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert holder.stdout.readline().startswith("claimed")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert list((_store(store).dir / "claims").glob("*.json"))
    emb = agcurate.embed([images], store=store, workers=0, image_size=SIZE, backend="torch")
    assert emb.stats.encoded == N_IMAGES and len(_stored_rows(store)) == N_IMAGES
    assert not list((_store(store).dir / "claims").iterdir())   # the dead claim's files were removed


def _part(st, keys: list[str], value: float, fingerprint: str = "f"):
    vecs = np.zeros((len(keys), st.dim), np.float32)
    vecs[:, 0] = value
    vecs[:, 1] = 1.0
    return st.append([{"key": k, "path": k, "kind": "image", "fingerprint": fingerprint} for k in keys], vecs)


def test_reads_keep_the_newest_row_per_key_and_compaction_keeps_row_order(tmp_path):
    from agcurate.embedding.store import EmbeddingStore

    st = EmbeddingStore(tmp_path / "s", "enc", "enc", 4)
    _part(st, ["a", "b", "c"], 0.0, "old")
    _part(st, ["b", "c"], 1.0, "new")         # a second writer stored b and c again, later
    _part(st, ["c"], 2.0, "newest")
    loaded = st.load()
    assert sorted(loaded.items["key"]) == ["a", "b", "c"]
    newest = dict(zip(loaded.items["key"], loaded.items["fingerprint"]))
    assert newest == {"a": "old", "b": "new", "c": "newest"} == st.index()
    assert list(st.load(["c", "a", "b", "c"]).items["key"]) == ["c", "a", "b"]   # asked twice, given once
    seqs = dict(zip(loaded.items["key"], loaded.items["seq"]))
    assert st.compact(force=True) == 3 and len(st.parts()) == 1
    after = st.load()
    assert dict(zip(after.items["key"], after.items["seq"])) == seqs   # rows keep their age
    late = _part(st, ["a"], 3.0, "late")        # written after the compaction: still the newest
    assert st.index()["a"] == "late" and late in st.parts()


def test_a_read_during_another_process_compaction_sees_every_row(tmp_path, monkeypatch):
    """The parts listed before a compaction are gone when read: the read lists the parts again."""
    from agcurate.embedding.store import EmbeddingStore

    st = EmbeddingStore(tmp_path / "s", "enc", "enc", 4)
    _part(st, ["a"], 0.0)
    _part(st, ["b"], 1.0)
    listed = st.parts()
    other = EmbeddingStore(tmp_path / "s", "enc", "enc", 4)
    assert other.compact(force=True) == 0 and not any(p.exists() for p in listed)
    real = EmbeddingStore.parts
    calls = []

    def stale_first(self):
        calls.append(1)
        return listed if len(calls) == 1 else real(self)

    monkeypatch.setattr(EmbeddingStore, "parts", stale_first)
    assert sorted(st.load().items["key"]) == ["a", "b"]
