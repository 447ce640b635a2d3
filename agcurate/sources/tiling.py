"""Grid tiling of large images and rasters: windows (x, y, w, h) that cover the whole picture."""

from __future__ import annotations

import numpy as np

NODATA_SKIP_SHARE = 0.5  # a tile with at least this share of no-data pixels is reported, not embedded
NODATA_REASON = "no-data tile"  # start of the skip reason, so commands can list such tiles apart


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:  # one more tile flush with the far edge: full coverage, equal sizes
        starts.append(length - tile)
    return starts


def tile_windows(width: int, height: int, tile: int, stride: int | None = None) -> list[tuple[int, int, int, int]]:
    """Windows of ``tile`` x ``tile`` pixels every ``stride`` pixels (default: ``tile``), row by row.

    The last row/column is moved flush with the image edge (overlapping its neighbour) so every
    pixel is covered and every tile has the same size; an image smaller than a tile is one window.
    """
    if tile <= 0:
        raise ValueError("tile size must be positive")
    stride = stride or tile
    if stride <= 0:
        raise ValueError("stride must be positive")
    return [(x, y, min(tile, width), min(tile, height))
            for y in _starts(height, tile, stride) for x in _starts(width, tile, stride)]


def nodata_reason(mask: np.ndarray, limit: float = NODATA_SKIP_SHARE) -> str | None:
    """The skip reason for a window whose no-data mask covers at least ``limit`` of it, else None."""
    share = float(mask.mean()) if mask.size else 1.0
    if share >= limit:
        return f"{NODATA_REASON}: {share:.0%} of pixels hold no data"
    return None
