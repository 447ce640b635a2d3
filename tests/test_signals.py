"""Pixel signals on generated images with known answers (and against a plain numpy reference)."""

from __future__ import annotations

import numpy as np
import pytest

from agcurate.embedding.signals import _black_share, pixel_signals, resize_square


def _signals(rgb, nodata=None):
    return pixel_signals(rgb, resize_square(rgb, 32), nodata)


def test_no_data_share_counts_pixels_black_in_every_channel():
    rgb = np.full((40, 50, 3), 200, np.uint8)
    rgb[:10] = 0                      # a quarter of the rows pure black
    rgb[20, :, :] = (0, 0, 1)         # nearly black, but not no-data
    rgb[30, :5] = (0, 7, 0)
    assert _signals(rgb)["nodata"] == pytest.approx(0.25)
    assert _signals(np.zeros((8, 8, 3), np.uint8))["nodata"] == 1.0
    assert _black_share(np.zeros((0, 8, 3), np.uint8)) == 1.0
    assert _black_share(np.array([[0, 3], [0, 0]], np.uint8)) == 0.75  # one-band input
    flagged = np.zeros((40, 50), bool)
    flagged[:, :5] = True             # the source's own mask wins over pixel values
    assert _signals(rgb, nodata=flagged)["nodata"] == pytest.approx(0.1)


def test_flat_grey_has_known_brightness_no_saturation_no_sharpness():
    s = _signals(np.full((64, 64, 3), 51, np.uint8))
    assert s["brightness"] == pytest.approx(51 / 255, abs=1e-6)
    assert s["saturation"] == 0.0 and s["sharpness"] == 0.0
    red = _signals(np.tile(np.array([255, 0, 0], np.uint8), (16, 16, 1)))
    assert red["saturation"] == pytest.approx(1.0)


def test_signals_match_a_numpy_reference_on_random_pixels():
    import cv2

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
    rgb[::7] = 0
    small = resize_square(rgb, 32)
    got = pixel_signals(rgb, small)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    want = {
        "brightness": gray.mean() / 255,
        "saturation": cv2.cvtColor(small, cv2.COLOR_RGB2HSV)[:, :, 1].mean() / 255,
        "sharpness": cv2.Laplacian(gray, cv2.CV_32F).astype(np.float64).var(),
        "nodata": np.mean(~rgb.any(axis=2)),
    }
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-4), k
    sharp = _signals(np.kron(rng.integers(0, 2, (8, 8)), np.ones((4, 4)))[..., None].repeat(3, 2).astype(np.uint8) * 255)
    assert sharp["sharpness"] > 1000  # a hard checkerboard is sharp


def test_quality_signals_known_answers():
    from agcurate.embedding.signals import QUALITY_SIGNALS, quality_signals

    grey = quality_signals(np.full((64, 64, 3), 128, np.uint8))
    assert set(grey) == {*QUALITY_SIGNALS, "quality_v"}
    assert grey["contrast"] == 0.0 and grey["clipped"] == 0.0 and grey["blur"] == 0.0
    assert np.isnan(grey["white_share"]) and np.isnan(grey["dark_channel"])  # grey input: no colour to judge
    tinted = quality_signals(np.full((64, 64, 3), (128, 128, 130), np.uint8))
    assert tinted["dark_channel"] == pytest.approx(128 / 255, abs=1e-6)
    assert tinted["white_share"] == pytest.approx((128 / 255 - 0.4) / 0.3, abs=1e-3)  # mid grey: partly white
    rgb = np.full((40, 50, 3), (40, 120, 30), np.uint8)   # saturated green: not white at all
    rgb[:10] = 255                                        # a quarter white and clipped
    q = quality_signals(rgb)
    assert q["white_share"] == pytest.approx(0.25) and q["clipped"] == pytest.approx(0.25)
    assert q["contrast"] > 0.2
    # pixels the source marks as no data are left out of every measure
    mask = np.zeros((40, 50), bool)
    mask[:10] = True
    assert quality_signals(rgb, mask)["white_share"] == 0.0
    assert np.isnan(quality_signals(rgb, np.ones((40, 50), bool))["contrast"])


def test_blur_measure_rises_when_blurred_and_small_images_are_not_enlarged():
    import cv2

    from agcurate.embedding.signals import quality_signals

    rng = np.random.default_rng(5)
    photo = cv2.resize(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), (400, 400), interpolation=cv2.INTER_NEAREST)
    sharp = quality_signals(photo)["blur"]
    blurred = quality_signals(cv2.GaussianBlur(photo, (0, 0), 12))["blur"]  # 3% of the side
    assert blurred > sharp + 0.4 and 0 <= sharp < blurred <= 1
    tile = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # a 64 px tile measured as is: sharp noise
    assert quality_signals(tile)["blur"] < 0.2
    assert "white_share" in _signals(tile)  # computed with the other pixel signals at decode time


def test_a_clipped_white_tile_is_white_not_grey_input():
    from agcurate.embedding.signals import quality_signals

    q = quality_signals(np.full((32, 32, 3), 255, np.uint8))
    assert q["white_share"] == 1.0 and q["clipped"] == 1.0 and q["dark_channel"] == 1.0


def test_white_share_counts_neutral_pixels_not_bright_coloured_ones():
    """Cloud is white or grey (saturation < 0.1); bright turbid water, sand and soil are coloured."""
    from agcurate.embedding.signals import quality_signals

    img = np.zeros((40, 40, 3), np.uint8)
    img[:20] = (205, 200, 170)   # milky beige water, as bright as thin cloud: HSV saturation 0.17
    img[20:] = (230, 232, 235)   # white cloud: saturation 0.02
    q = quality_signals(img)
    assert q["white_share"] == pytest.approx(0.5 * (1 + (0.2 - 35 / 205) / 0.1), abs=0.02)  # beige counts 0.3
    beige = quality_signals(np.full((40, 40, 3), (190, 175, 140), np.uint8))  # saturation 0.26
    assert beige["white_share"] == 0.0


def test_veil_is_the_darkest_pixels_and_pixels_without_data_do_not_darken_it():
    from agcurate.embedding.signals import quality_signals

    rgb = np.full((256, 256, 3), (150, 160, 170), np.uint8)
    assert quality_signals(rgb)["veil"] == pytest.approx(150 / 255, abs=1e-6)
    rgb[100, 100] = 0  # one dead pixel does not count
    assert quality_signals(rgb)["veil"] == pytest.approx(150 / 255, abs=1e-6)
    rgb[30:34, 30:34] = 20  # one dark object anywhere: no veil over the whole picture
    assert quality_signals(rgb)["veil"] == pytest.approx(20 / 255, abs=1e-6)
    framed = np.full((64, 64, 3), (150, 160, 170), np.uint8)
    framed[:, :8] = 0  # a no-data border beside the valid pixels
    nodata = np.zeros((64, 64), bool)
    nodata[:, :8] = True
    q = quality_signals(framed, nodata)
    assert q["veil"] == pytest.approx(150 / 255, abs=1e-6)
    assert q["dark_channel"] == pytest.approx(150 / 255, abs=1e-6)
