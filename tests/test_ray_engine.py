"""``--engine ray``: Ray Data decodes in tasks and encodes in an actor pool, and the store it writes
is the local engine's (same keys, same vectors); a killed run resumes without duplicate rows.
The parts that need no Ray (planning, decoding a group, the actor's call) are tested without it."""

from __future__ import annotations

import numpy as np
import pytest

import agcurate
from agcurate.embedding.config import EmbedConfig
from agcurate.errors import UsageError


# -- without Ray -------------------------------------------------------------------------------------

def test_engine_and_address_are_checked_up_front():
    assert EmbedConfig(engine=" Ray ").engine == "ray"
    with pytest.raises(UsageError, match="--engine 'spark'"):
        EmbedConfig(engine="spark")
    with pytest.raises(UsageError, match="--address"):
        EmbedConfig(address="ray://head:10001")


def test_cli_rejects_an_unknown_engine_before_reading_anything(tmp_path):
    from typer.testing import CliRunner

    from agcurate.cli import app

    res = CliRunner().invoke(app, ["embed", str(tmp_path / "nowhere"), "--engine", "spark"])
    assert res.exit_code == 2 and "--engine" in res.output


def test_actor_plan_gives_gpus_their_own_actors_and_leaves_cpus_for_decoding():
    from agcurate.embedding.ray_engine import actor_plan

    assert actor_plan({"CPU": 2}, EmbedConfig()) == {"actors": 1, "num_gpus": 0, "num_cpus": 1, "device": "cpu",
                                                     "threads": 1}
    assert actor_plan({"CPU": 64}, EmbedConfig())["actors"] == 8  # 32 CPUs encode, 4 threads each
    assert actor_plan({"CPU": 64, "GPU": 4}, EmbedConfig())["actors"] == 4
    assert actor_plan({"CPU": 64, "GPU": 4}, EmbedConfig(device="cpu"))["num_gpus"] == 0
    with pytest.raises(UsageError, match="no GPU"):
        actor_plan({"CPU": 8}, EmbedConfig(device="cuda"))


def test_decode_task_and_encoder_actor_turn_groups_into_rows_and_vectors(examples_dir, tmp_path):
    """What runs inside Ray, called directly: groups of pickled items in, JSON rows + vectors out;
    an unreadable file comes back as a row with its error, not as an exception."""
    import json
    import pickle

    from agcurate.embedding.ray_engine import EncoderActor, decode_groups, group_items
    from agcurate.encoders import get_encoder
    from agcurate.sources import SourceOptions, discover

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    files = sorted(examples_dir.glob("*.jpg"))[:3]
    found = discover([str(f) for f in files] + [str(bad)], SourceOptions())
    items = list(found.items)
    groups = group_items(items)
    assert sum(len(g) for g in groups) == len(items)
    enc = get_encoder("lite0")
    batch = {"items": np.array([pickle.dumps(g) for g in groups], object)}
    out = decode_groups(batch, SourceOptions(), enc.input_size, enc.bands, enc.channels)
    assert out["pixels"].shape == (len(items), 3, 224, 224)
    rows = [json.loads(r) for r in out["row"]]
    assert {r["key"] for r in rows} == {it.key for it in items}
    actor = EncoderActor(enc, "cpu", "auto", 1, str(tmp_path / "onnx"))
    res = actor(out)
    ok = res["error"] == ""
    assert np.allclose(np.linalg.norm(res["vector"][ok], axis=1), 1, atol=1e-3)
    broken = np.array([r["path"].endswith("broken.jpg") for r in rows])
    assert broken.sum() == 1 and list(~ok) == list(broken)  # its error travels as a row, not an exception
    assert (res["vector"][broken] == 0).all()


def test_ray_missing_is_a_usage_error_naming_the_extra(monkeypatch):
    import builtins

    from agcurate.embedding import ray_engine

    real = builtins.__import__

    def no_ray(name, *a, **kw):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(UsageError, match=r"agcurate\[ray\]"):
        ray_engine.import_ray()


# -- on a local Ray --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    import os

    ray = pytest.importorskip("ray", reason="ray not installed (pip install 'agcurate[ray]')")
    pytest.importorskip("ray.data", reason="Ray Data not installed (pip install 'agcurate[ray]')")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def eurosat_200(shared_data):
    """200 real Sentinel-2 patches: the first 20 of each of the 10 EuroSAT classes."""
    root = shared_data("eurosat-rgb/images")
    files = [f for d in sorted(p for p in root.iterdir() if p.is_dir()) for f in sorted(d.glob("*.jpg"))[:20]]
    assert len(files) == 200
    return [str(f) for f in files]


def _all_rows(store_dir) -> list[str]:
    import pyarrow.parquet as pq

    return [k for p in sorted((store_dir / "parts").glob("*.parquet"))
            for k in pq.read_table(p, columns=["key"]).column("key").to_pylist()]


@pytest.mark.slow
def test_ray_engine_stores_what_the_local_engine_stores(local_ray, eurosat_200, tmp_path):
    local = agcurate.embed(eurosat_200, store=tmp_path / "local", progress=False, remember=False)
    on_ray = agcurate.embed(eurosat_200, store=tmp_path / "ray", engine="ray", progress=False, remember=False)
    assert on_ray.stats.encoded == 200 and sorted(on_ray.keys) == sorted(local.keys)
    pos = {k: i for i, k in enumerate(local.keys)}
    cos = np.sum(on_ray.vectors * local.vectors[[pos[k] for k in on_ray.keys]], axis=1)
    assert cos.min() >= 0.9999
    assert on_ray.store_dir.name == local.store_dir.name  # the same encoder folder of the same layout


@pytest.mark.slow
def test_an_interrupted_ray_run_resumes_without_duplicate_rows(local_ray, eurosat_200, tmp_path, monkeypatch):
    from agcurate.embedding import store
    from agcurate.embedding.store import EmbeddingStore

    monkeypatch.setattr(store, "CHUNK_ITEMS", 50)
    real_append = EmbeddingStore.append
    calls = []

    def dies_on_second_chunk(self, rows, vectors, seq=None):
        calls.append(len(rows))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the driver is stopped half-way
        return real_append(self, rows, vectors, seq)

    monkeypatch.setattr(EmbeddingStore, "append", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        agcurate.embed(eurosat_200, store=tmp_path / "s", engine="ray", progress=False, remember=False)
    monkeypatch.setattr(EmbeddingStore, "append", real_append)
    kept = calls[0]
    again = agcurate.embed(eurosat_200, store=tmp_path / "s", engine="ray", progress=False, remember=False)
    assert again.stats.encoded == 200 - kept and again.stats.cached == kept
    assert len(again) == 200
    rows = _all_rows(again.store_dir)
    assert len(rows) == len(set(rows)) == 200  # no item stored twice
