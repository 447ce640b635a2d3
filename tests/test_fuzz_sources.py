"""Fuzzing the decoders: truncated, bit-flipped and header-mangled files through every source.

Whatever the damage, discovery and decoding never raise, never hang (hypothesis' deadline on each
example, a bounded number of examples) and never allocate what a header merely claims: a bad file is
reported once (skipped at discovery, or one error per item), and a good file beside it decodes as
before. Examples are derandomised, so CI sees the same files every run.
"""

from __future__ import annotations

import io
import struct
import tempfile
import zlib
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agcurate.errors import SourceError
from agcurate.sources import SourceOptions, discover, load_rgb, read_group
from videokit import pan, photo, write_video

FUZZ = settings(max_examples=50, deadline=timedelta(seconds=20), database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
OPTS = [SourceOptions(fps=2), SourceOptions(fps=2, tile=16)]  # whole items, and tiles (other code paths)
HEADER = 128


def _pil_bytes(arr: np.ndarray, fmt: str, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _picture(w: int = 48, h: int = 32) -> np.ndarray:
    import cv2

    return cv2.resize(photo("coffee"), (w, h), interpolation=cv2.INTER_AREA)


def _tiff16() -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, _picture().astype(np.uint16) * 257, photometric="rgb", compression="zlib")
    return buf.getvalue()


def _geotiff() -> bytes:
    import rasterio
    from affine import Affine

    data = np.random.default_rng(0).integers(200, 3000, (4, 32, 40)).astype(np.uint16)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "g.tif"
        with rasterio.open(p, "w", driver="GTiff", width=40, height=32, count=4, dtype="uint16",
                           crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 5000000)) as ds:
            ds.write(data)
        return p.read_bytes()


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(1).integers(0, 3000, (4, 24, 24)).astype(np.uint16))
    return buf.getvalue()


def _video(suffix: str, fourcc: str) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        return write_video(Path(d) / f"v{suffix}", pan(photo("rocket"), 6, size=(64, 48)), fourcc=fourcc).read_bytes()


SEEDS = {  # name: (file suffix, maker of a valid file)
    "jpeg": (".jpg", lambda: _pil_bytes(_picture(), "JPEG", quality=90)),
    "png": (".png", lambda: _pil_bytes(_picture(), "PNG")),
    "tiff8": (".tif", lambda: _pil_bytes(_picture(), "TIFF", compression="tiff_deflate")),
    "tiff16": (".tif", _tiff16),
    "geotiff": (".tif", _geotiff),
    "npy": (".npy", _npy),
    "avi": (".avi", lambda: _video(".avi", "MJPG")),
    "mp4": (".mp4", lambda: _video(".mp4", "mp4v")),
}
_CACHE: dict[str, bytes] = {}


def seed(name: str) -> bytes:
    if name not in _CACHE:
        _CACHE[name] = SEEDS[name][1]()
    return _CACHE[name]


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """The file cut short, with bits flipped anywhere, or with bytes of its header overwritten."""
    kind = draw(st.sampled_from(["truncate", "bitflip", "header"]))
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    out = bytearray(data)
    if kind == "bitflip":
        for pos, bit in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 7)),
                                      min_size=1, max_size=8)):
            out[pos] ^= 1 << bit
    else:  # the first 128 bytes hold every format's header (JPEG markers, IHDR, TIFF IFD, NPY dict, RIFF)
        for pos, value in draw(st.lists(st.tuples(st.integers(0, min(len(data), HEADER) - 1), st.integers(0, 255)),
                                        min_size=1, max_size=4)):
            out[pos] = value
    return bytes(out)


def check_folder(folder: Path, bad: Path, opts: SourceOptions = OPTS[0]) -> None:
    """Discovery and decoding of ``folder`` (one good PNG, one damaged file) keep every promise."""
    reference = _picture()
    found = discover([folder], opts)
    per_path = Counter(s.path for s in found.skipped)
    assert all(n == 1 for n in per_path.values()), found.skipped
    good = [it for it in found.items if it.path.endswith("good.png")]
    good_decoded = list(read_group(good, opts))
    assert good and len(good_decoded) == len(good)
    for dec in good_decoded:
        x, y, w, h = dec.item.window or (0, 0, reference.shape[1], reference.shape[0])
        np.testing.assert_array_equal(dec.rgb, reference[y:y + h, x:x + w])
    bad_items = [it for it in found.items if it.path == str(bad)]
    if str(bad) in per_path:
        assert not bad_items, "a skipped file has no items"
    decoded = list(read_group(bad_items, opts)) if bad_items else []
    assert sorted(d.item.key for d in decoded) == sorted(it.key for it in bad_items)  # one answer per item
    for d in decoded:
        if d.rgb is None:
            assert d.error
        else:
            assert d.rgb.dtype == np.uint8 and d.rgb.ndim == 3 and d.rgb.shape[2] == 3 and d.rgb.size
    if bad_items:
        try:
            load_rgb(bad_items[0], opts)
        except SourceError:
            pass  # the one exception a caller has to expect


@pytest.mark.parametrize("name", sorted(SEEDS))
@given(data=st.data())
@FUZZ
def test_damaged_files_are_reported_never_raised(name, data):
    suffix, _ = SEEDS[name]
    blob = data.draw(damaged(seed(name)), label="file")
    opts = data.draw(st.sampled_from(OPTS), label="options")
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "good.png").write_bytes(_pil_bytes(_picture(), "PNG"))
        bad = folder / f"bad{suffix}"
        bad.write_bytes(blob)
        check_folder(folder, bad, opts)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def _tiff_claiming(width: int, height: int, dtype, bands: int, photometric: str) -> bytes:
    """A valid small TIFF whose width, height and rows per strip are then rewritten to claim a huge size."""
    import tifffile

    buf = io.BytesIO()
    shape = (16, 16, bands) if photometric == "rgb" else (bands, 16, 16)
    kw = {} if photometric == "rgb" else {"planarconfig": "separate"}
    tifffile.imwrite(buf, np.zeros(shape, dtype), photometric=photometric, compression="zlib", **kw)
    out = bytearray(buf.getvalue())
    page = tifffile.TiffFile(io.BytesIO(bytes(out))).pages[0]
    for tag, value in (("ImageWidth", width), ("ImageLength", height), ("RowsPerStrip", height)):
        t = page.tags[tag]
        assert t.dtype == 4 and t.count == 1  # one LONG stored in the entry itself
        out[t.valueoffset:t.valueoffset + 4] = struct.pack("<I", value)
    return bytes(out)


BOMBS = {
    "png": (".png", lambda: _png_header_only(100_000, 100_000)),
    "tiff8": (".tif", lambda: _tiff_claiming(100_000, 100_000, np.uint8, 3, "rgb")),
    "tiff16": (".tif", lambda: _tiff_claiming(100_000, 100_000, np.uint16, 3, "rgb")),
    "tiff16x4": (".tif", lambda: _tiff_claiming(100_000, 100_000, np.uint16, 4, "minisblack")),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_headers_claiming_huge_images_are_refused_before_decoding(tmp_path, name):
    """100,000 x 100,000 pixels (30 GB as RGB) in a file of a few hundred bytes: refused by its size."""
    suffix, make = BOMBS[name]
    bomb = tmp_path / f"bomb{suffix}"
    bomb.write_bytes(make())
    (tmp_path / "good.png").write_bytes(_pil_bytes(_picture(), "PNG"))
    found = discover([tmp_path])
    reasons = [s.reason for s in found.skipped if s.path == str(bomb)]
    items = [it for it in found.items if it.path == str(bomb)]
    reasons += [d.error for d in read_group(items)] if items else []
    assert len(reasons) == 1 and "too large" in reasons[0], reasons
    check_folder(tmp_path, bomb)


def test_npy_header_claiming_a_huge_array_is_refused(tmp_path):
    header = np.lib.format.header_data_from_array_1_0(np.zeros(0, np.uint16))
    header["shape"] = (3, 100_000, 100_000)  # 56 GiB claimed, 64 bytes present
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    bomb = tmp_path / "bomb.npy"
    bomb.write_bytes(buf.getvalue() + b"\x00" * 64)
    (tmp_path / "good.png").write_bytes(_pil_bytes(_picture(), "PNG"))
    found = discover([tmp_path])
    assert [s.path for s in found.skipped] == [str(bomb)]
    check_folder(tmp_path, bomb)
