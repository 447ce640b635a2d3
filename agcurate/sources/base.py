"""The contract every source follows: turn a path into items, and items back into RGB pixels."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..items import Item

BAND_ROLES = ("red", "green", "blue", "nir", "swir")
_S2_BAND = re.compile(r"[bB](0?[1-9]|1[0-2]|8[aA])")


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

    def __post_init__(self) -> None:
        """Cheap checks of every field (``UsageError`` naming the flag), before any file is read."""
        at_least("--tile", self.tile, 8)
        at_least("--stride", self.stride, 1)
        if self.stride is not None and self.tile is None:
            raise UsageError("--stride needs --tile")
        if self.fps is not None and not self.fps >= 0:
            raise UsageError(f"--fps must be 0 (every frame) or more, not {self.fps}")
        parse_bands(self.bands)
        parse_stretch(self.stretch)


def at_least(flag: str, value, low) -> None:
    """``UsageError`` when ``value`` is given and below ``low`` (NaN included)."""
    if value is not None and not value >= low:
        raise UsageError(f"{flag} must be at least {low}, not {value}")


def parse_bands(text: str | None) -> list[str] | None:
    """``"B04,B03,B02"`` or ``"3,2,1"`` -> the tokens, checked: 1 or 3 bands (a grey or colour picture),
    or ``all`` / 4 or more (a band encoder sees each band), each a 1-based number, a Sentinel-2 band
    name (B01..B12, B8A) or a role (red, green, blue, nir, swir)."""
    if text is None:
        return None
    if str(text).strip().lower() == "all":
        return ["all"]
    tokens = [t.strip() for t in str(text).split(",")]
    accepted = "1-based numbers (3,2,1), Sentinel-2 names (B04,B03,B02) or roles (red,green,blue,nir,swir)"
    if not all(tokens) or len(tokens) == 2:
        raise UsageError(f"--bands {text!r}: give 1 or 3 bands, comma separated, as {accepted} "
                         "(or all, or 4 or more bands, for an encoder that sees every band)")
    for t in tokens:
        if t.isdigit():
            if int(t) < 1:
                raise UsageError(f"--bands {text!r}: band numbers start at 1")
        elif not _S2_BAND.fullmatch(t) and t.lower() not in BAND_ROLES:
            raise UsageError(f"--bands {text!r}: unknown band {t!r}; use {accepted}")
    return tokens


def parse_stretch(text: str | None) -> tuple[float, float] | None:
    """``"LO,HI"`` (or ``LO-HI``, ``LO:HI``) -> (lo, hi) with lo < hi; None for the default."""
    if not text:
        return None
    parts = re.split(r"[,:]|(?<=\d)-", str(text).strip())
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise UsageError(f"--stretch wants LO,HI (e.g. 0,3000), got {text!r}") from None
    if not hi > lo:
        raise UsageError(f"--stretch: HI must exceed LO (got {text!r})")
    return lo, hi


BELIEVED_PIXELS = 1 << 26  # a header claiming up to 67 Mpx is believed whatever the file's size
MAX_PIXELS_PER_BYTE = 10_000  # beyond that, a file must hold a byte per this many pixels (deflate: ~3 px/byte)


def implausible_size(width: int, height: int, file_size: int) -> str | None:
    """Why a header's size cannot be true for a file this small (a damaged header or a decompression
    bomb), or None. Checked before decoding, so nothing the size of the claim is ever allocated."""
    pixels = int(width) * int(height)
    if pixels > BELIEVED_PIXELS and pixels > MAX_PIXELS_PER_BYTE * max(int(file_size), 1):
        return (f"image too large for its file: the header claims {width}x{height} pixels in "
                f"{file_size:,} bytes (damaged header or decompression bomb)")
    return None


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
    bands: np.ndarray | None = None  # (H, W, C) uint8 of the selected bands, for a band encoder (--bands all)


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

    def header_items(self, path: str, fmt: str | None, fingerprint: str, opts: SourceOptions) -> list[Item] | None:
        """The items of a file known from its format alone, without reading it (a photo: one item),
        or None when the file must be read to list them (a video's frames, a raster's tiles)."""
        return None

    def read(self, items: Sequence[Item], opts: SourceOptions) -> Iterator[Decoded]:
        """Decode items that all belong to one group (one file); yield one ``Decoded`` per item."""
        raise NotImplementedError
