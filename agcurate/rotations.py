"""Rotation-aware embeddings: a collection embedded again with its input turned 90 and 180 degrees.

A global embedding of a photo turned by 90 degrees can be far from the original's (a horizontal
leaf becomes a vertical one), so dedup searches with the turned vectors as extra queries. Turning
by 90 covers 270 too: the pair is searched from both sides. The turned vectors are cached in the
store like any other embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TURNS = (1, 2)  # quarter turns searched besides the original orientation


def turned_vectors(emb, turns: Sequence[int] = TURNS, *, device: str = "auto", batch_size: int | None = None,
                   workers: int | None = None, store=None, progress: bool | None = None,
                   backend: str = "auto") -> dict[int, np.ndarray]:
    """For each quarter turn, the vectors of ``emb``'s items embedded turned (rows as in ``emb``).

    Items the turned pass could not read get their unturned vector, so they add no false candidate.
    The turned passes run on torch whatever ``backend`` says (the turn does not export to ONNX).
    """
    from .embedding import embed
    from .encoders.rotated import rotated_encoder

    out: dict[int, np.ndarray] = {}
    if store is None and emb.store_dir is not None:
        store = emb.store_dir.parents[1]
    for k in turns:
        enc = rotated_encoder(emb.encoder, k)
        got = embed(emb.inputs, encoder=enc, device=device, batch_size=batch_size, workers=workers,
                    store=store, remember=False, progress=progress, backend="torch",
                    source_options=emb.source_options)
        row = {key: i for i, key in enumerate(got.keys)}
        vec = emb.vectors.copy()
        for i, key in enumerate(emb.keys):
            j = row.get(key)
            if j is not None:
                vec[i] = got.vectors[j]
        out[k] = vec
    return out
