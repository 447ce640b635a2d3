"""Embedding: encode items through an encoder into the cached Parquet store, and read them back.

``encode`` holds ``embed`` and the encoding loop, ``loader`` the decode workers, ``store`` the
Parquet store, ``signals`` the cheap per-item pixel signals and ``rotations`` the turned passes.
"""

from __future__ import annotations

from .config import EmbedConfig
from .encode import Embeddings, EmbedStats, embed

__all__ = ["EmbedConfig", "EmbedStats", "Embeddings", "embed"]
