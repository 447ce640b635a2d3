"""Rotation-aware embeddings: a collection embedded again with its input turned 90 and 180 degrees.

A global embedding of a photo turned by 90 degrees can be far from the original's (a horizontal
leaf becomes a vertical one), so dedup searches with the turned vectors as extra queries. Turning
by 90 covers 270 too: the pair is searched from both sides. The turned vectors are cached in the
store like any other embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

TURNS = (1, 2)  # quarter turns searched besides the original orientation


def turned_vectors(emb, turns: Sequence[int] = TURNS, *, config=None,
                   progress: bool | None = None) -> dict[int, np.ndarray]:
    """For each quarter turn, the vectors of ``emb``'s items embedded turned (rows as in ``emb``).

    ``config`` (default: the ``EmbedConfig`` that made ``emb``) says where the store is and how the
    model runs. Items the turned pass could not read get their unturned vector, so they add no
    false candidate. The turned passes run on torch whatever the backend (the turn does not export
    to ONNX).
    """
    from ..encoders.rotated import rotated_encoder
    from . import embed
    from .config import EmbedConfig

    cfg = replace(config or emb.config or EmbedConfig(), backend="torch")
    out: dict[int, np.ndarray] = {}
    for k in turns:
        got = embed(emb.inputs, config=cfg, encoder=rotated_encoder(emb.encoder, k), remember=False,
                    progress=progress, source_options=emb.source_options)
        row = {key: i for i, key in enumerate(got.keys)}
        vec = emb.vectors.copy()
        for i, key in enumerate(emb.keys):
            j = row.get(key)
            if j is not None:
                vec[i] = got.vectors[j]
        out[k] = vec
    return out
