"""A persistent approximate nearest-neighbour index beside an encoder's store parts.

``models/<encoder-slug>/ann.npz`` holds a faiss index (``ops.neighbors.AnnIndex``: PCA, IVF cells, 8-bit
codes of the PCA vectors, ~140 bytes per vector) with, per index id, the 8-byte digest of the item key and
the ``seq`` of the row it was built from. It is trained once on a random sample of the first
collection larger than ``neighbors.EXACT_LIMIT`` and then grows: each load adds the items the index
lacks (new keys, or keys re-encoded since), so a store that grows by a chunk pays for that chunk
only. It is trained again when the store has grown ``RETRAIN_GROWTH`` times past the size it was
trained for (its cells would get long and slow); a collection that is less than 1/``RETRAIN_GROWTH``
of the index is searched with an index of its own (the stored one would probe cells holding too few
of its rows). The file is replaced atomically under its own lock (``ann.npz.lock``); a damaged or
foreign file is rebuilt. The index only proposes candidates: ``knn`` re-ranks them with the stored
vectors, so a stale entry costs recall, never a wrong similarity.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ..system import exclusive_lock
from .claims import key_digests

FILE_NAME = "ann.npz"
RETRAIN_GROWTH = 8
FORMAT = 2  # 1: 4-bit fast-scan PQ codes (rebuilt on read: too lossy at 1M)


def index_path(store_dir: Path) -> Path:
    return Path(store_dir) / FILE_NAME


def neighbor_index(store_dir: Path, keys, seqs, vectors: np.ndarray, kind, seed: int = 0):
    """The index beside ``store_dir`` brought up to date with these rows and bound to them (index
    ids -> row positions), or None when ``kind.wanted(n)`` says exact search suits this many rows.

    ``keys``, ``seqs`` and ``vectors`` are the rows a command loaded; ``kind`` is the index class
    (``ops.neighbors.AnnIndex``, passed in by the workflows layer: the store knows no ops).
    """
    n = len(vectors)
    if not kind.wanted(n):
        return None
    digests = key_digests(list(keys))
    seqs = np.asarray(seqs, np.int64)
    path = index_path(store_dir)
    Path(store_dir).mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path.with_name(FILE_NAME + ".lock")):  # its own lock: writers need not wait
        index, have_d, have_s = _read(path, vectors.shape[1], kind)
        total = len(np.union1d(have_d, digests)) if index is not None else n
        if index is None or total > RETRAIN_GROWTH * index.trained_for:
            rng = np.random.default_rng(seed)
            size = min(n, kind.training_size(max(n, total)))
            index = kind.train(vectors[np.sort(rng.choice(n, size, replace=False))], max(n, total), seed)
            have_d, have_s = np.zeros(0, np.uint64), np.zeros(0, np.int64)
        # a row is indexed when the index holds its key at the same seq (same vector)
        fresh = _member(np.stack([digests, seqs.view(np.uint64)], 1), np.stack([have_d, have_s.view(np.uint64)], 1))
        todo = np.flatnonzero(~fresh)
        if len(todo):
            index.add(vectors[todo])
            have_d = np.concatenate([have_d, digests[todo]])
            have_s = np.concatenate([have_s, seqs[todo]])
            _write(path, index, have_d, have_s)
    # ids -> rows; of several ids per key (re-encoded), the newest (last added) is the live one
    order = np.argsort(digests, kind="stable")
    at = np.minimum(np.searchsorted(digests[order], have_d), len(order) - 1)
    pos = order[at]
    live = (digests[pos] == have_d) & (seqs[pos] == have_s)
    if live.sum() * RETRAIN_GROWTH < len(live):
        return None  # a small part of a large store: its probed cells would hold too few of these rows
    return index.bind(np.where(live, pos, -1))


def _member(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row of ``a`` (pairs of uint64), whether it is a row of ``b``."""
    if len(b) == 0:
        return np.zeros(len(a), bool)
    va = np.ascontiguousarray(a).view([("d", "<u8"), ("s", "<u8")]).ravel()
    vb = np.ascontiguousarray(b).view([("d", "<u8"), ("s", "<u8")]).ravel()
    return np.isin(va, vb)


def _read(path: Path, dim: int, kind):
    """(index, digests, seqs) from ``path``; (None, empty, empty) when absent, damaged or for other vectors."""
    empty = (None, np.zeros(0, np.uint64), np.zeros(0, np.int64))
    if not path.exists():
        return empty
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"]) != FORMAT or int(z["dim"]) != dim:
                return empty
            index = kind.from_bytes(z["index"], int(z["trained_for"]))
            digests, seqs = z["digests"].astype(np.uint64), z["seqs"].astype(np.int64)
    except (OSError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile):
        return empty  # rebuilt: the index is a cache of the parts
    if len(index) != len(digests) or index.dim != dim:
        return empty
    return index, digests, seqs


def _write(path: Path, index, digests: np.ndarray, seqs: np.ndarray) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, format=FORMAT, dim=index.dim, trained_for=index.trained_for, index=index.to_bytes(),
             digests=digests, seqs=seqs)
    os.replace(tmp, path)
