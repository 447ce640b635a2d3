"""The list of sources, most specific first (discovery and decoding ask them in this order)."""

from __future__ import annotations

from .base import Source
from .images import ImageSource
from .raster import RasterSource
from .video import VideoSource


def get_sources(min_side: int | None = None) -> list[Source]:
    """All sources, most specific first. Optional sources register only when their library imports."""
    return [RasterSource(), ImageSource(min_side=min_side), VideoSource()]
