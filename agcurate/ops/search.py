"""Content-based retrieval: the k items most similar to each query vector (shared faiss kNN)."""

from __future__ import annotations

import numpy as np


def search(query_vectors: np.ndarray, vectors: np.ndarray, items: "pd.DataFrame", k: int = 10,  # noqa: F821
           query_keys: list[str] | None = None) -> "pd.DataFrame":  # noqa: F821
    """One row per (query, match): ``query_index``, ``rank`` (1 = best), ``index`` into ``items``,
    ``score`` (cosine similarity), ``is_match`` and the match's ``key``/``path``/``frame``/``window``.

    A query that is itself in the collection (same key) is not returned as its own match.
    """
    import pandas as pd

    from ..items import window_text
    from .neighbors import knn

    cols = ["query_index", "rank", "index", "score", "is_match", "key", "path", "frame", "window"]
    if len(query_vectors) == 0 or len(vectors) == 0 or k <= 0:
        return pd.DataFrame(columns=cols)
    keys = items["key"].tolist()
    extra = 1 if query_keys else 0
    sims, ids = knn(vectors, min(len(vectors), k + extra), queries=query_vectors)
    rows = []
    for q in range(len(query_vectors)):
        rank = 0
        for s, j in zip(sims[q], ids[q]):
            if j < 0 or rank >= k:
                break
            if query_keys and keys[j] == query_keys[q]:
                continue
            rank += 1
            r = items.iloc[int(j)]
            rows.append((q, rank, int(j), round(float(s), 4), True, r["key"], r["path"], int(r["frame"]),
                         window_text(r["x"], r["y"], r["w"], r["h"])))
    return pd.DataFrame(rows, columns=cols)
