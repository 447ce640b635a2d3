"""Still images through Pillow (OpenCV as fall-back): any mode converted properly to RGB uint8."""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import SourceError
from ..items import Item, file_fingerprint
from .base import Decoded, Source, SourceOptions, all_failed, implausible_size
from .sniff import IMAGE_FORMATS
from .tiling import nodata_reason, tile_windows

MAX_PIXELS = 1_000_000_000  # refuse (and report) images above a gigapixel, by their header
ALPHA_BACKGROUND = 255  # transparent pixels are shown over white, as a viewer shows them


def to_rgb_uint8(arr: np.ndarray) -> np.ndarray:
    """Convert an array of any integer/float depth and 1-4 (or more) channels to RGB uint8.

    Depth is scaled by its full range (uint16 / 257, floats in [0, 1] x 255), never cast. One channel
    is replicated, two channels are grey + alpha, four are RGBA; alpha is composited over white. More
    channels than four keep the first three (multi-band rasters have their own source).
    """
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise SourceError(f"unsupported array shape {a.shape}")
    a = _scale_depth(a)
    c = a.shape[2]
    if c == 1:
        return np.repeat(a, 3, axis=2)
    if c == 2:
        return _composite(np.repeat(a[:, :, :1], 3, axis=2), a[:, :, 1])
    if c == 4:
        return _composite(a[:, :, :3], a[:, :, 3])
    return np.ascontiguousarray(a[:, :, :3])


def _scale_depth(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype in (np.uint16, np.int16):
        return (np.clip(a, 0, 65535).astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    f = a.astype(np.float32)
    f = np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)
    hi = float(f.max()) if f.size else 0.0
    if np.issubdtype(a.dtype, np.floating) and hi <= 1.0:
        scale = 255.0
    elif hi <= 255:
        scale = 1.0
    elif hi <= 65535:
        scale = 1 / 257.0
    else:  # 32-bit data beyond 16-bit range: the one case scaled by its own maximum
        scale = 255.0 / hi
    return (np.clip(f * scale, 0, 255) + 0.5).astype(np.uint8)


def _composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    al = alpha.astype(np.float32)[:, :, None] / 255.0
    out = rgb.astype(np.float32) * al + ALPHA_BACKGROUND * (1.0 - al)
    return (out + 0.5).astype(np.uint8)


def decode_image(data: bytes, min_side: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode encoded image bytes to RGB uint8; return it and the original (width, height).

    With ``min_side`` a JPEG is decoded at a reduced DCT scale that stays at least that large,
    which makes large photos several times cheaper to read. EXIF orientation is applied.
    """
    from PIL import ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = open_image(io.BytesIO(data), len(data))
            size = img.size
            if min_side and img.format == "JPEG" and img.mode in ("RGB", "L", "CMYK"):
                scale = min(img.width, img.height) / float(min_side)
                if scale >= 2:
                    img.draft(img.mode, (img.width / scale, img.height / scale))
            img.load()
            img = ImageOps.exif_transpose(img)
            return _pil_to_rgb(img), size
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types; fall back to OpenCV
        arr = _decode_with_opencv(data)
        if arr is None:
            raise SourceError(f"cannot decode image: {exc}") from exc
        return to_rgb_uint8(arr), (arr.shape[1], arr.shape[0])


def open_image(fp, file_size: int):
    """Open an image with Pillow, which reads only its header; ``SourceError`` when the header claims
    more than ``MAX_PIXELS`` pixels, or more than a file of ``file_size`` bytes can hold, so a
    decompression bomb or a damaged header is refused before anything is allocated."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own guard at our limit (its default refuses 179 Mpx photos)
    try:
        img = Image.open(fp)
    except Image.DecompressionBombError as exc:
        raise SourceError(f"image too large: {exc}") from exc
    problem = implausible_size(img.width, img.height, file_size)
    if img.width * img.height > MAX_PIXELS:
        problem = f"image too large ({img.width}x{img.height} pixels, more than {MAX_PIXELS:,})"
    if problem:
        img.close()
        raise SourceError(problem)
    return img


def _pil_to_rgb(img) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return to_rgb_uint8(np.asarray(img))
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    elif mode not in ("RGBA", "L", "1"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    if img.mode == "1":
        img = img.convert("L")
    return to_rgb_uint8(np.asarray(img))


def _decode_with_opencv(data: bytes) -> np.ndarray | None:
    import cv2

    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    except cv2.error:  # OpenCV refuses some damaged or oversized files by raising
        return None
    if arr is None:
        return None
    if arr.ndim == 3 and arr.shape[2] >= 3:  # OpenCV gives BGR(A)
        arr = arr.copy()
        arr[:, :, [0, 2]] = arr[:, :, [2, 0]]
    return arr


class ImageSource(Source):
    """Single still images: JPEG, PNG, TIFF, WebP, BMP, GIF (first frame), JPEG 2000, PNM."""

    name = "image"
    formats = frozenset(IMAGE_FORMATS)

    def __init__(self, min_side: int | None = None):
        self.min_side = min_side

    def items(self, path: Path, opts: SourceOptions) -> list[Item]:
        fp = file_fingerprint(path)
        if not opts.tile:
            return [Item(path=str(path), kind="image", fingerprint=fp)]
        width, height = image_size(path)
        return [Item(path=str(path), kind="tile", window=win, fingerprint=fp)
                for win in tile_windows(width, height, opts.tile, opts.stride)]

    def header_items(self, path: str, fmt: str | None, fingerprint: str, opts: SourceOptions) -> list[Item] | None:
        """One item per photo; a photo cut into tiles (``--tile``) or a TIFF (maybe a raster) is read."""
        if opts.tile or fmt not in self.formats or fmt == "tiff":
            return None
        return [Item(path=path, kind="image", fingerprint=fingerprint)]

    def read(self, items: Sequence[Item], opts: SourceOptions) -> Iterator[Decoded]:
        if any(it.window is not None for it in items):
            yield from self._read_tiles(items)
            return
        for item in items:
            try:
                data = Path(item.path).read_bytes()
                rgb, size = decode_image(data, self.min_side)
            except SourceError as exc:
                yield Decoded(item, error=str(exc))
                continue
            except OSError as exc:
                yield Decoded(item, error=f"cannot read file: {exc.strerror or exc}")
                continue
            yield Decoded(item, rgb=rgb, size=size,
                          content_hash=hashlib.blake2b(data, digest_size=16).hexdigest())

    def _read_tiles(self, items: Sequence[Item]) -> Iterator[Decoded]:
        """Decode the photo once at full size and cut every tile's window out of it."""
        try:
            rgb, _ = decode_image(Path(items[0].path).read_bytes(), None)
        except (SourceError, OSError) as exc:
            yield from all_failed(items, exc)
            return
        for it in items:
            x, y, w, h = it.window if it.window is not None else (0, 0, rgb.shape[1], rgb.shape[0])
            tile = np.ascontiguousarray(rgb[y:y + h, x:x + w])
            if tile.shape[:2] != (h, w):
                yield Decoded(it, error=f"window {it.window_str} lies outside the image")
                continue
            nodata = ~tile.any(axis=2)
            reason = nodata_reason(nodata)
            if reason:
                yield Decoded(it, error=reason, nodata=nodata)
                continue
            yield Decoded(it, rgb=tile, nodata=nodata, size=(w, h))


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image as shown, i.e. after its EXIF orientation, from the header only."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_image(path, Path(path).stat().st_size) as img:
                w, h = img.size
                orientation = img.getexif().get(0x0112, 1)
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types
        raise SourceError(f"cannot read image header: {exc}") from exc
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
