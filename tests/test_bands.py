"""Band encoders (``--bands all``): the inflated stem, per-band normalisation, every raster layout,
determinism, ``pretrain --bands`` and the check that a band encoder refuses other bands; and the
13-band path end to end through the CLI on BigEarthNet band folders and multi-band GeoTIFFs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import agcurate
from agcurate.cli import app
from agcurate.encoders.bands import (band_encoder, effective_normalisation, inflate_stem,
                                     resize_bands, variant_bands)
from agcurate.errors import UsageError
from agcurate.sources import SourceOptions

warnings.filterwarnings("ignore", message="Dataset has no geotransform")
SNOWY = "S2B_MSIL2A_20180204T94161_57_38"  # in BigEarthNet's seasonal-snow list
FAST = dict(workers=0, backend="torch", image_size=64, progress=False)


def _patches(shared_data) -> list[Path]:
    root = shared_data("bigearthnet-s2-example")
    return sorted(p for p in root.iterdir() if p.is_dir())


def _stack(folder: Path) -> tuple[list[str], np.ndarray, dict]:
    """A band folder's 12 bands at 120 x 120 (coarse bands resampled as the source does)."""
    import rasterio

    from agcurate.sources.raster import open_stack

    st = open_stack(folder)
    with rasterio.open(st.files[st.names.index("B02")]) as ds:
        profile = {"crs": ds.crs, "transform": ds.transform}
    return list(st.names), st.read(range(len(st.names)), None).astype(np.uint16), profile


def _write_tif(path: Path, names, data: np.ndarray, profile: dict) -> None:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=len(names),
                       dtype="uint16", **profile) as ds:
        ds.write(data)
        for i, n in enumerate(names, start=1):
            ds.set_band_description(i, n)


@pytest.fixture(scope="module")
def band_sets(shared_data, tmp_path_factory):
    """From the 6 real BigEarthNet patches: each patch's 4 quadrants (60 x 60) as band folders and as
    12-band GeoTIFFs (``<patch>/q<k>``: the parent folder is the patch), one 12-band mosaic GeoTIFF
    of the 6 patches (to tile), and each patch as a (12, 120, 120) ``.npy``."""
    from rasterio.transform import from_origin

    root = tmp_path_factory.mktemp("bands")
    for folder in _patches(shared_data):
        names, data, profile = _stack(folder)
        for k, (y, x) in enumerate([(0, 0), (0, 60), (60, 0), (60, 60)]):
            quad = data[:, y:y + 60, x:x + 60]
            prof = {"crs": profile["crs"], "transform": profile["transform"] * profile["transform"].translation(x, y)}
            qdir = root / "folders" / folder.name / f"q{k}"
            for n, band in zip(names, quad):
                _write_tif(qdir / f"{n}.tif", [n], band[None], prof)
            _write_tif(root / "tifs" / folder.name / f"q{k}.tif", names, quad, prof)
        (root / "npy").mkdir(exist_ok=True)
        np.save(root / "npy" / f"{folder.name}.npy", data)
    stacks = [_stack(f)[1] for f in _patches(shared_data)]
    mosaic = np.concatenate([np.concatenate(stacks[:3], axis=2), np.concatenate(stacks[3:], axis=2)], axis=1)
    _write_tif(root / "mosaic.tif", names, mosaic, {"crs": "EPSG:32634", "transform": from_origin(0, 0, 10, 10)})
    return root


# --- the stem and the normalisation ----------------------------------------------------------------

def test_inflated_stem_keeps_rgb_filters_and_starts_others_from_their_mean():
    import torch

    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False))
    w = conv[0].weight.detach().clone()
    inflate_stem(conv, [None, 2, 1, 0, None, None])  # B01, B02 (blue), B03, B04 (red), two more
    new = conv[0].weight.detach()
    assert new.shape == (8, 6, 3, 3) and conv[0].in_channels == 6
    assert torch.allclose(new[:, 1], w[:, 2] * 0.5) and torch.allclose(new[:, 3], w[:, 0] * 0.5)
    assert torch.allclose(new[:, 0], w.mean(1) * 0.5) and torch.allclose(new[:, 5], w.mean(1) * 0.5)
    # bands that move together (a grey picture repeated) give exactly the activations of the picture
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        inflated = conv(x.repeat(1, 6, 1, 1))
        plain = torch.nn.functional.conv2d(x.repeat(1, 3, 1, 1), w)
    assert torch.allclose(inflated, plain, atol=1e-5)


@pytest.mark.parametrize("extra", [0.05, 0.1, 0.4])
def test_a_small_extra_weight_keeps_the_rgb_filters_and_the_activations_size(extra):
    import torch

    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False))
    w = conv[0].weight.detach().clone()
    inflate_stem(conv, [None, 2, 1, 0, None, None, None], extra)  # B01, B02 (blue), B03, B04 (red), 3 more
    new = conv[0].weight.detach()
    scale = 1 / (1 + extra)  # the colour filters, nearly whole for a small share
    assert torch.allclose(new[:, 1], w[:, 2] * scale) and torch.allclose(new[:, 3], w[:, 0] * scale)
    # the 4 other bands together weigh `extra` of the 3 colour filters
    assert torch.allclose(new[:, [0, 4, 5, 6]].sum(1), w.sum(1) * extra * scale, atol=1e-6)
    assert torch.allclose(new[:, 6], w.mean(1) * extra * 3 / 4 * scale)
    x = torch.rand(2, 1, 16, 16)  # identical bands: the activations of the grey picture, whatever extra
    with torch.no_grad():
        assert torch.allclose(conv(x.repeat(1, 7, 1, 1)), torch.nn.functional.conv2d(x.repeat(1, 3, 1, 1), w), atol=1e-5)
    with pytest.raises(UsageError, match="share of the stem"):
        inflate_stem(torch.nn.Conv2d(3, 8, 3), [2, 1, 0, None], 0.0)  # zero would be the RGB encoder itself


def test_fixed_normalisation_band_encoder_sees_a_grey_stack_as_the_picture_and_uses_every_band():
    """With the picture's normalisation on the fixed stretch, C identical bands give exactly the RGB
    encoder's vector of the grey picture; the extra band still changes the vector when it differs."""
    import torch

    from agcurate.encoders.lite0 import lite0_encoder
    from agcurate.encoders.runners import make_runner

    rgb = lite0_encoder(64)
    enc = band_encoder(rgb, ["B02", "B03", "B04", "B08"], [2, 1, 0, None], stretch="0,3000", extra=0.25, norm="fixed")
    assert enc.mean == rgb.mean + (rgb.mean[0],) and enc.std == rgb.std + (rgb.std[0],)
    assert enc.id != band_encoder(rgb, ["B02", "B03", "B04", "B08"], [2, 1, 0, None], extra=0.5, norm="fixed").id
    grey = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (2, 1, 64, 64), dtype=np.uint8))
    plain = make_runner(rgb, "cpu", "torch")(grey.repeat(1, 3, 1, 1))
    bands = make_runner(enc, "cpu", "torch")
    assert np.abs(bands(grey.repeat(1, 4, 1, 1)) - plain).max() < 1e-4
    nir = grey.repeat(1, 4, 1, 1).clone()
    nir[:, 3] = 255 - nir[:, 3]
    other = bands(nir)
    moved = 1 - (other * plain).sum(1) / np.linalg.norm(other, axis=1) / np.linalg.norm(plain, axis=1)
    assert moved.min() > 1e-3  # the NIR band contributes


def test_band_normalisation_maps_each_band_onto_the_imagenet_spread():
    from agcurate.encoders.lite0 import TF_MEAN, TF_STD

    band_mean, band_std = [0.1, 0.3, 0.6, 0.05], [0.02, 0.1, 0.2, 0.01]
    mean, std = effective_normalisation(band_mean, band_std, TF_MEAN, TF_STD)
    # a pixel one band-spread above the band's mean lands where ImageNet's mean + 1 std does
    for bm, bs, m, s in zip(band_mean, band_std, mean, std):
        z0, z1 = (bm - m) / s, (bm + bs - m) / s
        assert z0 == pytest.approx((0.449 - 0.498) / 0.502, abs=0.02)
        assert z1 - z0 == pytest.approx(0.226 / 0.502, abs=0.01)


def test_resize_bands_handles_any_band_count():
    px = np.random.default_rng(0).integers(0, 255, (50, 70, 13), dtype=np.uint8)
    small = resize_bands(px, 32)
    assert small.shape == (32, 32, 13) and small.dtype == np.uint8
    assert resize_bands(px, (35, 25)).shape == (25, 35, 13)
    # band by band, the same as resizing that band alone
    import cv2

    assert np.array_equal(small[:, :, 12], cv2.resize(np.ascontiguousarray(px[:, :, 12]), (32, 32),
                                                        interpolation=cv2.INTER_AREA))


def test_bands_option_syntax():
    assert SourceOptions(bands="all").bands == "all"
    assert SourceOptions(bands="B02,B03,B04,B08").bands
    with pytest.raises(UsageError, match="give 1 or 3 bands"):
        SourceOptions(bands="5,2")


# --- embedding ------------------------------------------------------------------------------------

def test_bands_all_embeds_every_band_deterministically_and_default_stays_true_colour(shared_data, tmp_path):
    folders = _patches(shared_data)[0].parent
    a = agcurate.embed([folders], store=tmp_path / "a", bands="all", workers=0, image_size=64, progress=False)
    assert a.encoder.bands and len(a.encoder.bands) == 12 and len(a.encoder.mean) == 12
    assert "|bands=B01,B02," in a.encoder.id and a.vectors.shape == (6, 1280)
    assert {len(variant_bands(it)) for it in a.to_items()} == {12}
    b = agcurate.embed([folders], store=tmp_path / "b", bands="all", workers=0, image_size=64, progress=False)
    assert b.encoder.id == a.encoder.id and np.array_equal(a.vectors, b.vectors)  # ONNX, two fresh stores
    plain = agcurate.embed([folders], store=tmp_path / "a", **FAST)
    assert plain.encoder.bands is None and plain.encoder.id == agcurate.get_encoder("lite0", image_size=64).id
    assert plain.stats.encoded == 6  # its own entries: never a band encoder's vectors


def test_torch_and_onnx_runners_agree_on_a_band_encoder(tmp_path):
    import torch

    from agcurate.encoders.lite0 import lite0_encoder
    from agcurate.encoders.runners import make_runner

    rng = np.random.default_rng(0)
    enc = band_encoder(lite0_encoder(64), [f"B{i:02d}" for i in range(1, 6)], [None, 2, 1, 0, None],
                       rng.uniform(0.1, 0.4, 5), rng.uniform(0.05, 0.2, 5))
    x = torch.from_numpy(rng.integers(0, 255, (3, 5, 64, 64), dtype=np.uint8))
    onnx = make_runner(enc, "cpu", "onnx", cache_dir=tmp_path)(x)
    eager = make_runner(enc, "cpu", "torch")(x)
    assert onnx.shape == (3, 1280) and np.abs(onnx - eager).max() < 1e-4


@pytest.mark.slow
def test_every_raster_layout_gives_the_same_band_vectors(band_sets, tmp_path):
    """The same pixels as band folders, 12-band GeoTIFFs and .npy give the same 12-band vectors."""
    store = tmp_path / "s"
    by_layout = {}
    for name in ("folders", "tifs"):
        emb = agcurate.embed([band_sets / name], store=store, bands="all", **FAST)
        assert len(emb) == 24 and len(emb.encoder.bands) == 12
        by_layout[name] = dict(zip([str(Path(p).relative_to(band_sets / name)).removesuffix(".tif")
                                    for p in emb.paths], emb.vectors))
    common = sorted(by_layout["folders"])
    sims = [float(by_layout["folders"][k] @ by_layout["tifs"][k]) for k in common]
    assert min(sims) > 0.999
    npy = agcurate.embed([band_sets / "npy"], store=store, bands="all", **FAST)
    assert len(npy) == 6 and len(npy.encoder.bands) == 12
    tiles = agcurate.embed([band_sets / "mosaic.tif"], store=store, bands="all", tile=60, **FAST)
    assert len(tiles) == 24 and tiles.items["w"].tolist() == [60] * 24


def test_a_mixed_collection_is_refused_with_the_reason(band_sets, examples_dir, tmp_path):
    with pytest.raises(UsageError, match="one band layout"):
        agcurate.embed([band_sets / "tifs", examples_dir / "AnnualCrop_1.jpg"], store=tmp_path, bands="all", **FAST)


# --- pretraining and the band check ---------------------------------------------------------------

@pytest.fixture(scope="module")
def band_model(band_sets, tmp_path_factory):
    out = tmp_path_factory.mktemp("bm") / "model.pt"
    res = agcurate.pretrain([band_sets / "folders"], out, epochs=1, batch_size=8, image_size=32, embed_size=64,
                            workers=0, bands="all", progress=False)
    return res


def test_pretrain_bands_records_bands_and_normalisation(band_model):
    from agcurate.encoders import read_checkpoint

    assert band_model.bands and len(band_model.bands) == 12
    ck = read_checkpoint(band_model.out)
    assert ck["bands"] == list(band_model.bands) and ck["stretch"] == "0,3000"
    assert len(ck["mean"]) == len(ck["std"]) == 12
    assert ck["state_dict"]["conv_stem.weight"].shape[1] == 12
    enc = agcurate.get_encoder(f"file:{band_model.out}")
    assert enc.bands == band_model.bands and "|bands=" in enc.id


def test_a_band_model_embeds_matching_input_in_any_layout(band_model, band_sets, tmp_path):
    model = f"file:{band_model.out}"
    a = agcurate.embed([band_sets / "tifs"], model=model, store=tmp_path, workers=0, backend="torch", progress=False)
    assert len(a) == 24 and a.encoder.bands == band_model.bands  # bands picked by the model, by name


def test_a_band_model_refuses_input_without_its_bands(band_model, shared_data, examples_dir, tmp_path):
    model = f"file:{band_model.out}"
    chips = shared_data("s2-cloudcover-chips") / "data" / "test_features"
    runner = CliRunner()
    for path, why in ((chips, "has no band 'B01'"), (examples_dir, "gives a picture")):
        res = runner.invoke(app, ["embed", str(path), "--model", model, "--store", str(tmp_path), "--workers", "0"])
        assert res.exit_code == 2, res.output
        assert "takes the 12 bands B01,B02" in res.output and why in res.output
    res = runner.invoke(app, ["embed", str(chips), "--model", model, "--bands", "3,2,1", "--store", str(tmp_path)])
    assert res.exit_code == 2 and "trained on the bands" in res.output


# --- the 13-band path end to end, through the CLI -------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("layout", ["folders", "tifs"])
def test_band_path_end_to_end_on_the_cli(band_sets, layout, tmp_path):
    runner = CliRunner()
    data = str(band_sets / layout)
    store, out = str(tmp_path / "store"), tmp_path / "out"
    common = ["--store", store, "--workers", "0", "--backend", "torch", "--image-size", "64"]

    def run(*args):
        res = runner.invoke(app, list(args))
        assert res.exit_code == 0, res.output
        return res.output

    assert "24" in run("embed", data, "--bands", "all", *common)
    run("outliers", "--out", str(out), *common)  # the collection of the last embed, with its bands
    table = pd.read_csv(out / "outliers.csv")
    assert len(table) == 24
    top = table.sort_values("score", ascending=False)["path"].head(4).tolist()
    assert sum(SNOWY in p for p in top) >= 3  # the snowy patch's quadrants lead the ranking
    run("cluster", "--report", "--out", str(out), *common)
    assert (out / "report.html").is_file() and len(pd.read_csv(out / "clusters.csv")) == 24
    model = tmp_path / "m.pt"
    assert "training a 12-band encoder (B01," in run("pretrain", data, "--bands", "all", "--epochs", "1", "--batch-size", "8",
                            "--image-size", "32", "--embed-size", "64", "--workers", "0", "--out", str(model))
    run("probe", data, "--labels-from-folders", "-m", "lite0", "-m", f"file:{model}", "--bands", "all",
        "--fractions", "0.5,1", "--repeats", "2", "--out", str(out), *common)
    probe = pd.read_csv(out / "probe.csv")
    assert probe["model"].nunique() == 2 and probe["accuracy_mean"].between(0, 1).all()
