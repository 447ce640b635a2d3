"""The shared kNN: exact and approximate paths agree on what matters (near neighbours found,
self excluded, missing neighbours marked), and pairs_above lists each pair once."""

from __future__ import annotations

import numpy as np

from agcurate.ops import neighbors
from agcurate.ops.neighbors import knn, pairs_above


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _planted(n=3000, d=64, seed=0):
    rng = np.random.default_rng(seed)
    v = _unit(rng.standard_normal((n, d)))
    src = np.arange(0, 100)
    dst = np.arange(n - 100, n)
    v[dst] = _unit(v[src] + 0.3 * _unit(rng.standard_normal((100, d))))
    return v, src, dst


def test_exact_and_approximate_find_planted_neighbours(monkeypatch):
    v, src, dst = _planted()
    monkeypatch.setattr(neighbors, "APPROX_DIMS", 32)
    for exact in (True, False):
        sims, ids = knn(v, 5, exact=exact)
        assert ids.shape == (len(v), 5) and (ids != np.arange(len(v))[:, None]).all()  # never itself
        assert np.mean(ids[dst, 0] == src) >= (1.0 if exact else 0.95)
        assert (np.diff(sims, axis=1) <= 1e-6).all()  # best first
        found = ids[dst, 0] == src
        assert np.allclose(sims[dst[found], 0], np.sum(v[dst[found]] * v[src[found]], axis=1), atol=1e-5)


def test_queries_and_missing_neighbours():
    v = _unit(np.random.default_rng(1).standard_normal((3, 8)))
    sims, ids = knn(v, 5, queries=v[:1])
    assert ids[0, 0] == 0 and np.isclose(sims[0, 0], 1.0)
    assert (ids[0, 3:] == -1).all() and np.isneginf(sims[0, 3:]).all()
    sims, ids = knn(v, 5)
    assert (ids[:, 2:] == -1).all()


def test_pairs_above_lists_each_pair_once():
    v = _unit(np.array([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99]], np.float32))
    pairs = pairs_above(v, 0.9, k=3)
    assert [(a, b) for a, b, _ in pairs] == [(0, 1), (2, 3)]
    assert all(s >= 0.9 for _, _, s in pairs)
