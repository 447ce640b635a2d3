"""The store's Parquet parts are plain Arrow: vectors are a ``fixed_size_list<float32>`` that pandas,
pyarrow and DuckDB read without agcurate, and parts written by older versions (raw float16 bytes)
are still read, beside new ones, and upgraded by compaction."""

from __future__ import annotations

import glob

import numpy as np
import pytest

from agcurate.embedding.store import EmbeddingStore


def _rows(keys):
    return [{"key": k, "path": f"/data/{k}.jpg", "fingerprint": "1"} for k in keys]


def _unit(n, d, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_parts_hold_a_fixed_size_float32_list(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    st = EmbeddingStore(tmp_path, "enc", "enc", 8)
    v = _unit(3, 8)
    st.append(_rows("abc"), v)
    field = pq.read_schema(st.parts()[0]).field("vector")
    assert field.type == pa.list_(pa.float32(), 8)
    stored = pq.read_table(st.parts()[0]).column("vector").combine_chunks().flatten().to_numpy().reshape(3, 8)
    assert np.array_equal(stored, v.astype(np.float16).astype(np.float32))  # float16 precision, float32 type


def test_pandas_reads_paths_and_vectors_of_a_real_store_without_agcurate(examples_store, examples_embeddings):
    """The README snippet: newest row per key, vectors as one numpy array, equal to what agcurate loads."""
    import pandas as pd

    # other tests add other encoders' folders (and other files) to this session-wide store: read this encoder's
    slug = examples_embeddings.encoder.slug
    parts = glob.glob(str(examples_store / "models" / slug / "parts" / "*.parquet"))
    assert parts
    df = pd.concat(pd.read_parquet(p, columns=["key", "path", "seq", "vector"]) for p in parts)
    df = df.sort_values("seq").drop_duplicates("key", keep="last").set_index("key")
    df = df.loc[list(examples_embeddings.keys)]  # files other tests put into the examples store are not ours
    X = np.stack(df["vector"].to_numpy())
    assert X.dtype == np.float32 and X.shape == (len(examples_embeddings), 1280)
    want = examples_embeddings.vectors
    got = X[[df.index.get_loc(k) for k in examples_embeddings.keys]]
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    assert np.allclose(got, want, atol=1e-6)
    assert list(df.loc[examples_embeddings.keys, "path"]) == examples_embeddings.paths


def test_duckdb_reads_vectors_straight_from_the_parts(tmp_path):
    duckdb = pytest.importorskip("duckdb", reason="duckdb not installed (optional: pip install duckdb)")
    st = EmbeddingStore(tmp_path, "enc", "enc", 4)
    v = _unit(3, 4)
    st.append(_rows("abc"), v)
    st.append(_rows("b"), _unit(1, 4, seed=5))  # a newer row for b
    pattern = str(tmp_path / "models" / "*" / "parts" / "*.parquet")
    rows = duckdb.sql(f"SELECT key, path, vector FROM '{pattern}' "
                      "QUALIFY row_number() OVER (PARTITION BY key ORDER BY seq DESC) = 1 ORDER BY key").fetchall()
    assert [r[0] for r in rows] == ["a", "b", "c"]
    got = np.array([r[2] for r in rows], np.float32)
    want = np.stack([v[0], _unit(1, 4, seed=5)[0], v[2]]).astype(np.float16).astype(np.float32)
    assert np.array_equal(got, want)


def test_old_raw_float16_parts_are_read_beside_new_ones_and_upgraded_by_compaction(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    st = EmbeddingStore(tmp_path, "enc", "enc", 4)
    new = _unit(2, 4, seed=1)
    st.append(_rows("bc"), new)
    # a part as versions up to 0.1 wrote it: vectors as raw little-endian float16 bytes
    old_vec = np.array([[0.6, 0.8, 0, 0], [0, 0, 1, 0]], np.float16)
    old = pq.read_table(st.parts()[0]).slice(0, 2)
    raw = pa.FixedSizeBinaryArray.from_buffers(pa.binary(8), 2, [None, pa.py_buffer(old_vec.tobytes())])
    old = old.set_column(old.column_names.index("vector"), "vector", raw)
    old = old.set_column(old.column_names.index("key"), "key", pa.array(["a", "c"]))
    old = old.set_column(old.column_names.index("seq"), "seq", pa.array([1, 2], pa.int64()))  # older
    pq.write_table(old, st.parts_dir / "part-0-old.parquet")

    want = np.concatenate([old_vec[:1].astype(np.float32), new.astype(np.float16).astype(np.float32)])
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    got = st.load(["a", "b", "c"])  # c: the new row wins over the old one
    assert list(got.items["key"]) == ["a", "b", "c"]
    assert np.allclose(got.vectors, want, atol=1e-6)

    assert st.compact(force=True) == 1  # the stale old row of c
    (part,) = st.parts()
    assert pq.read_schema(part).field("vector").type == pa.list_(pa.float32(), 4)
    assert np.allclose(st.load(["a", "b", "c"]).vectors, want, atol=1e-6)
