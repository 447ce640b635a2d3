"""The contract every source follows: turn a path into items, and items back into RGB pixels."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..items import Item


@dataclass(frozen=True)
class SourceOptions:
    """Options that change which items a path yields or what their pixels look like.

    ``tile``/``stride`` cut large images into a grid of windows, ``bands`` picks raster bands and
    ``fps`` sets how densely videos are sampled; ``skip_static`` drops a video sample that looks
    the same as the previous one and is not sharper. ``stretch`` ("LO,HI") is the clip range that
    scales raster values to 8 bits. Every source reads the fields it understands.
    """

    tile: int | None = None
    stride: int | None = None
    bands: str | None = None
    fps: float | None = None
    stretch: str | None = None
    skip_static: bool = False


@dataclass
class Decoded:
    """One decoded item: RGB uint8 pixels (H, W, 3) for the encoder, or the reason it failed.

    ``signals`` carries source-specific per-item numbers (e.g. spectral indices of multi-band input),
    ``nodata`` an optional boolean mask of pixels that hold no data.
    """

    item: Item
    rgb: np.ndarray | None = None
    error: str | None = None
    signals: dict[str, float] = field(default_factory=dict)
    nodata: np.ndarray | None = None
    content_hash: str = ""
    size: tuple[int, int] | None = None  # original (width, height) when decoded at reduced scale


def read_error(exc: Exception) -> str:
    """The message for a decode failure: an ``OSError``'s reason, else the exception's own text."""
    if isinstance(exc, OSError):
        return f"cannot read file: {exc.strerror or exc}"
    return str(exc)


def all_failed(items: Sequence[Item], exc: Exception) -> Iterator[Decoded]:
    """One failed ``Decoded`` per item, when a whole file (group) cannot be opened."""
    for it in items:
        yield Decoded(it, error=read_error(exc))


class Source:
    """Base class of sources; subclasses are registered in ``agcurate.sources.SOURCES``."""

    name = "base"
    formats: frozenset[str] = frozenset()

    def claims(self, path: Path, fmt: str | None) -> bool:
        """Whether this source reads a file of the sniffed format ``fmt``."""
        return fmt in self.formats

    def claims_dir(self, path: Path) -> bool:
        """Whether this source reads a whole folder as one item (e.g. one band per file)."""
        return False

    def items(self, path: Path, opts: SourceOptions) -> list[Item]:
        """The items inside ``path``; raise ``SourceError`` when the file cannot be used at all."""
        raise NotImplementedError

    def read(self, items: Sequence[Item], opts: SourceOptions) -> Iterator[Decoded]:
        """Decode items that all belong to one group (one file); yield one ``Decoded`` per item."""
        raise NotImplementedError
