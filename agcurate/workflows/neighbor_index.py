"""Wiring of the store's persistent ANN index into the ops: the one place that knows both layers."""

from __future__ import annotations


def attach_store_index(emb) -> None:
    """Attach the store's ANN index, brought up to date, to ``emb.vectors`` when the collection is
    large enough for approximate search, so ``ops.neighbors.knn`` on those vectors (dedup candidates,
    search, outliers) uses it instead of building one. Small collections are left to exact search."""
    from ..embedding.ann_index import neighbor_index
    from ..embedding.location import local_cache
    from ..ops.neighbors import AnnIndex, attach_index

    if emb.store_dir is None or not AnnIndex.wanted(len(emb)) or "seq" not in emb.items:
        return
    index = neighbor_index(local_cache(emb.store_dir), emb.keys, emb.items["seq"].to_numpy(), emb.vectors, AnnIndex)
    if index is not None:
        attach_index(emb.vectors, index)
