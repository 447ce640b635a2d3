"""The approximate kNN path: a faiss index (PCA + IVF + 8-bit codes) proposes shortlists that are
re-ranked exactly, and the store keeps one such index beside its parts that grows with the store."""

from __future__ import annotations

import numpy as np
import pytest

from agcurate.ops import neighbors
from agcurate.ops.neighbors import AnnIndex, attach_index, knn


def clustered(n: int, d: int = 64, centres: int = 40, seed: int = 0) -> np.ndarray:
    """Unit vectors around random centres: neighbours mean something, as in real embeddings."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    v = c[rng.integers(0, centres, n)] + 0.35 * rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def recall(ids: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(ids, truth)]))


def test_approximate_knn_re_ranks_exactly_and_finds_the_true_neighbours():
    v = clustered(4000, d=256)
    es, ei = knn(v, 10, exact=True)
    s, i = knn(v, 10, exact=False)
    assert recall(i, ei) >= 0.95
    assert not (i == np.arange(len(v))[:, None]).any()  # nobody is its own neighbour
    # every similarity returned is the exact inner product, best first
    assert np.allclose(s, np.einsum("nd,nkd->nk", v, v[i]), atol=1e-5)
    assert (np.diff(s, axis=1) <= 1e-6).all()


def test_dense_neighbourhoods_keep_their_true_neighbours():
    """Points on segments between close centres, as in a large collection resampled from few
    sources: the 10 nearest lie within a few hundredths of similarity, and the codes must still rank
    them nearly as the full vectors do."""
    rng = np.random.default_rng(3)
    base = clustered(60, d=256, centres=60, seed=3)
    a = rng.random((6000, 1)).astype(np.float32)
    i, j = rng.integers(0, 60, 6000), rng.integers(1, 4, 6000)
    v = a * base[i] + (1 - a) * base[(i + j) % 60] + 0.01 * rng.standard_normal((6000, 256)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    es, ei = knn(v, 10, exact=True)
    assert np.median(es[:, 0] - es[:, 9]) < 0.03
    index = AnnIndex.train(v[::2], len(v))
    index.add(v)
    _, got = knn(v, 10, exact=False, index=index)
    assert recall(got, ei) >= 0.97


def test_shards_filled_apart_and_merged_search_like_one_index():
    v = clustered(4000, d=192)  # projected to 128 dimensions
    trained = AnnIndex.train(v[::2], len(v))
    whole = trained.empty_copy()
    whole.add(v)
    first, second = trained.empty_copy(), trained.empty_copy()
    first.add(v[:2500])
    second.add(v[2500:])
    assert len(trained) == 0 and len(first) == 2500
    first.merge(second)
    assert len(first) == 4000 and len(second) == 0
    assert np.array_equal(first.shortlist(v[:200], 40), whole.shortlist(v[:200], 40))
    _, got = knn(v, 10, queries=v[:200], exact=False, index=first)
    _, want = knn(v, 10, queries=v[:200], exact=True)
    assert recall(got, want) >= 0.95
    other = AnnIndex.train(v[1::2], len(v))  # trained apart: another PCA and other cells
    other.add(v[:10])
    with pytest.raises(ValueError, match="trained apart"):
        first.merge(other)
    assert len(first) == 4000 and len(other) == 10


def test_a_given_index_is_used_and_a_bound_one_only_proposes_its_rows():
    v = clustered(3000)
    index = AnnIndex.train(v[::3], len(v))
    index.add(v)
    q = v[:50]
    _, want = knn(v, 5, queries=q, exact=True)
    _, got = knn(v, 5, queries=q, exact=False, index=index)
    assert recall(got, want) >= 0.95
    # bound to the even rows of v, as positions 0..1499 of a half-size collection
    rows = np.full(len(v), -1)
    rows[::2] = np.arange(1500)
    half = v[::2]
    s, i = knn(half, 5, queries=q, exact=False, index=index.bind(rows))
    _, want_half = knn(half, 5, queries=q, exact=True)
    assert i.max() < 1500 and recall(i, want_half) >= 0.95
    assert np.allclose(s, np.einsum("nd,nkd->nk", q, half[i]), atol=1e-5)


def test_an_attached_index_serves_knn_on_that_array_only(monkeypatch):
    v = clustered(1000)
    index = AnnIndex.train(v, len(v))
    index.add(v)
    attach_index(v, index)
    calls = []
    real = AnnIndex.shortlist
    monkeypatch.setattr(AnnIndex, "shortlist", lambda self, *a: calls.append(self) or real(self, *a))
    monkeypatch.setattr(neighbors, "EXACT_LIMIT", 100)
    knn(v, 5)
    assert calls == [index]
    knn(v.copy(), 5)  # a copy gets an index of its own
    assert len(calls) == 2 and calls[1] is not index


def test_index_round_trips_through_bytes():
    v = clustered(2000)
    index = AnnIndex.train(v, len(v))
    index.add(v)
    back = AnnIndex.from_bytes(index.to_bytes(), index.trained_for)
    assert len(back) == 2000 and back.trained_for == 2000
    assert np.array_equal(back.shortlist(v[:20], 30), index.shortlist(v[:20], 30))


class _Store:
    def __init__(self, path):
        self.dir = path


def test_store_index_is_built_once_grows_with_new_and_re_encoded_items_and_survives_damage(tmp_path, monkeypatch):
    from agcurate.embedding import ann_index

    monkeypatch.setattr(neighbors, "EXACT_LIMIT", 500)
    v = clustered(2000)
    keys = [f"k{i}" for i in range(2000)]
    seqs = np.arange(2000)
    assert ann_index.neighbor_index(tmp_path, keys[:400], seqs[:400], v[:400], AnnIndex) is None  # exact suits
    assert not ann_index.index_path(tmp_path).exists()

    first = ann_index.neighbor_index(tmp_path, keys[:1500], seqs[:1500], v[:1500], AnnIndex)
    assert len(first) == 1500 and ann_index.index_path(tmp_path).exists()
    adds = []
    real_add = AnnIndex.add
    monkeypatch.setattr(AnnIndex, "add", lambda self, x: adds.append(len(x)) or real_add(self, x))
    # the store grew by 500 and item k3 was re-encoded (a newer row): only those 501 are added
    seqs2 = seqs.copy()
    seqs2[3] = 10_000
    v2 = v.copy()
    v2[3] = v[1999]
    grown = ann_index.neighbor_index(tmp_path, keys, seqs2, v2, AnnIndex)
    assert adds == [501] and len(grown) == 2001
    assert (grown.rows >= 0).sum() == 2000 and grown.rows[3] == -1  # k3's old entry is dead
    s, i = knn(v2, 5, exact=False, index=grown)
    _, want = knn(v2, 5, exact=True)
    assert recall(i, want) >= 0.95
    # a collection of a subset of the store sees only its own rows
    sub = ann_index.neighbor_index(tmp_path, keys[1000:], seqs2[1000:], v2[1000:], AnnIndex)
    assert adds == [501] and sub.rows.max() == 999 and (sub.rows >= 0).sum() == 1000
    # ... unless it is a small part of it (under 1/8): its probed cells would hold too few of its rows
    monkeypatch.setattr(neighbors, "EXACT_LIMIT", 100)
    assert ann_index.neighbor_index(tmp_path, keys[:200], seqs2[:200], v2[:200], AnnIndex) is None
    monkeypatch.setattr(neighbors, "EXACT_LIMIT", 500)
    # a damaged file is rebuilt, not fatal
    ann_index.index_path(tmp_path).write_bytes(b"not an index")
    again = ann_index.neighbor_index(tmp_path, keys, seqs2, v2, AnnIndex)
    assert len(again) == 2000
    # so is one of an older format (format 1 held 4-bit codes), even when it is otherwise readable
    with np.load(ann_index.index_path(tmp_path)) as z:
        old = dict(z)
    np.savez(ann_index.index_path(tmp_path), **{**old, "format": ann_index.FORMAT - 1})
    adds.clear()
    assert len(ann_index.neighbor_index(tmp_path, keys, seqs2, v2, AnnIndex)) == 2000 and adds == [2000]


def test_dedup_workflow_uses_the_store_index_and_finds_what_exact_search_finds(tmp_path, monkeypatch, examples_dir,
                                                                             examples_store):
    import shutil

    import agcurate

    shutil.copytree(examples_store, tmp_path / "s")  # already embedded: only dedup runs here
    exact = agcurate.dedup([examples_dir], store=tmp_path / "s", progress=False)
    monkeypatch.setattr(neighbors, "EXACT_LIMIT", 8)
    approx = agcurate.dedup([examples_dir], store=tmp_path / "s", progress=False)
    assert list((tmp_path / "s" / "models").glob("*/ann.npz"))
    assert exact.table.equals(approx.table)
