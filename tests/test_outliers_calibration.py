"""Collection-relative novelty (fence scale), the F1 threshold fit and blur judged at thumbnail size."""

from __future__ import annotations

import numpy as np
import pytest

from agcurate.embedding.signals import BLUR_SIDE, quality_signals
from agcurate.ops.novelty import fence_z
from agcurate.ops.outliers import score_outliers
from agcurate.ops.quality import pr_cut, fit_test


def test_fence_z_is_the_tukey_scale_of_the_collection():
    x = np.arange(1, 101, dtype=float)  # Q1 = 25.75, Q3 = 75.25, IQR = 49.5
    z = fence_z(x)
    assert z[np.argmin(np.abs(x - 75.25))] == pytest.approx((75 - 75.25) / 49.5)
    assert fence_z(np.array([75.25 + 3 * 49.5]), x)[0] == pytest.approx(3.0)  # Tukey's outer fence
    # scale-free: the same collection in other units scores the same
    np.testing.assert_allclose(fence_z(x * 40 + 7), z)
    assert fence_z(np.array([np.nan]), x)[0] == 0.0
    assert fence_z(np.ones(5))[0] == 0.0  # IQR 0: floored, no division by zero


def test_novelty_score_transfers_between_collections_of_different_spread():
    """Two collections whose typical neighbour distances differ several-fold: a planted group lands on
    the same side of one threshold in both (a MAD z-score gave 5-15 in one and ~40 in the other)."""
    rng = np.random.default_rng(0)
    for spread in (0.15, 0.6):
        centre = rng.normal(size=32)
        centre /= np.linalg.norm(centre)
        v = centre + spread * rng.normal(size=(150, 32)) / np.sqrt(32)
        other = -centre + spread * rng.normal(size=(8, 32)) / np.sqrt(32)
        vecs = np.vstack([v, other]).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        items = _items(len(vecs))
        res = score_outliers(vecs, items, method="auto").set_index("path")
        planted = [f"/data/img_{i:03d}.png" for i in range(150, 158)]
        assert res.loc[planted, "is_novel"].all()
        assert res["is_novel"].sum() <= 8 + 150 * 0.05


def _items(n):
    import pandas as pd

    df = pd.DataFrame({"path": [f"/data/img_{i:03d}.png" for i in range(n)], "x": -1, "y": -1, "w": -1, "h": -1})
    df["key"] = df["path"]
    return df


def test_pr_cut_known_answers():
    x = np.array([0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0])
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    assert pr_cut(x, y) == pytest.approx(6.5)  # separated: the middle of the gap
    x = np.array([0.0, 1.0, 2.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    assert pr_cut(x, y) == pytest.approx(3.5)  # at 5: precision 4/5, recall 1; at 7: 1 and 3/4
    t, s = fit_test(x, y, "high", objective="pr")
    assert t == pytest.approx(3.5) and s > 0
    t_low, _ = fit_test(-x, y, "low", objective="pr")
    assert t_low == pytest.approx(-3.5)


def test_blur_is_judged_at_thumbnail_size():
    """An image enlarged 2x is soft at native size but not blurred at thumbnail size; a Gaussian blur of
    8 px at 256 px (3% of the side, as in the benchmark) still is, beyond the default threshold."""
    from agcurate.embedding.signals import blur_metric
    from agcurate.ops.quality import CALIBRATION

    import cv2

    rng = np.random.default_rng(1)
    base = cv2.resize((rng.random((64, 64, 3)) * 255).astype(np.uint8), (BLUR_SIDE, BLUR_SIDE),
                      interpolation=cv2.INTER_NEAREST)
    photo = cv2.GaussianBlur(base, (0, 0), 1.0)
    upscaled = cv2.resize(photo, (2 * BLUR_SIDE, 2 * BLUR_SIDE), interpolation=cv2.INTER_LINEAR)
    blurred = cv2.GaussianBlur(upscaled, (0, 0), 8.0)
    b_up, b_blur = quality_signals(upscaled)["blur"], quality_signals(blurred)["blur"]
    native = blur_metric(cv2.cvtColor(upscaled, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255)
    t = CALIBRATION["blur"][0]
    assert b_up < 0.3 < native  # softer at native size than at thumbnail size
    assert b_up < t < b_blur


def test_store_load_without_reordering_equals_the_reordered_read(tmp_path):
    """Reading every row in stored order skips the copy; the vectors are the same, unit length, ours."""
    from agcurate.embedding.store import EmbeddingStore

    rng = np.random.default_rng(0)
    st = EmbeddingStore(tmp_path, "m", "m", 16)
    vecs = rng.normal(size=(30, 16)).astype(np.float32)
    keys = [f"k{i:02d}" for i in range(30)]
    for part in (slice(0, 10), slice(10, 30)):  # two parts: a concatenated, owned array
        st.append([{"key": k, "path": k, "kind": "image", "fingerprint": "f"} for k in keys[part]], vecs[part])
    whole = st.load()
    again = st.load(keys[::-1])
    assert whole.items["key"].tolist() == keys
    assert np.allclose(whole.vectors, again.vectors[::-1])
    assert np.allclose(np.linalg.norm(whole.vectors, axis=1), 1.0, atol=1e-6)
    assert np.allclose(whole.vectors, vecs / np.linalg.norm(vecs, axis=1, keepdims=True), atol=2e-3)
    whole.vectors[0, 0] = 0.0  # writable: ours, not a view of Arrow's buffers


def test_idle_threads_uses_one_faiss_thread_on_a_busy_machine_and_restores(monkeypatch):
    import os

    import faiss

    from agcurate.ops.novelty import idle_threads

    before = faiss.omp_get_max_threads()
    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    from threadpoolctl import threadpool_info

    with idle_threads():
        assert faiss.omp_get_max_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    assert faiss.omp_get_max_threads() == before
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    with idle_threads():
        assert faiss.omp_get_max_threads() == before  # idle: every thread it had (never more)


def test_group_component_finds_a_tight_planted_group_that_knn_distances_call_dense():
    """12 near-identical items apart from a loose bulk of 150: their nearest neighbours are each other, so
    kNN distances read them as the densest items; the widening of the neighbourhood from 5% to 30% of
    the collection finds them. Duplicates inside the bulk are no group."""
    from agcurate.ops.novelty import group_component, knn_distances, neighbourhoods

    rng = np.random.default_rng(0)
    dim = 32
    centre = np.eye(dim)[0]
    bulk = centre + 0.5 * rng.normal(size=(150, dim)) / np.sqrt(dim)
    bulk[140:146] = bulk[139]  # six exact copies of one bulk item
    away = centre + np.eye(dim)[1]
    group = away + 0.1 * rng.normal(size=(12, dim)) / np.sqrt(dim)
    vecs = np.vstack([bulk, group]).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ks = neighbourhoods(len(vecs))
    dist, _ = knn_distances(vecs, ks)
    planted = np.arange(150, 162)
    assert dist[ks[0]][planted].max() < np.median(dist[ks[0]])  # dense by plain kNN distance
    z = group_component(dist, None, ks[0], ks[-1])
    top = np.argsort(-z)[:12]
    assert set(top) == set(planted)
    assert z[139:146].max() <= 0.0  # copies inside the bulk
    res = score_outliers(vecs, _items(len(vecs)), method="auto").set_index("path")
    assert res.loc[[f"/data/img_{i:03d}.png" for i in planted], "is_novel"].all()
    assert not res.loc[[f"/data/img_{i:03d}.png" for i in range(139, 146)], "is_novel"].any()
