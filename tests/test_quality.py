"""Quality issues: absolute per-item scores from measures, spectral tests before RGB heuristics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agcurate.ops.quality import CALIBRATION, ISSUES, fit_test, issue_logits, quality_table


def test_issue_scores_are_absolute_and_flag_at_the_calibrated_threshold():
    t, s = CALIBRATION["brightness"]
    items = pd.DataFrame({"brightness": [t - 3 * s, t, t + 3 * s, 0.5]})
    q = quality_table(items)
    assert q["is_dark"].tolist() == [True, True, False, False]
    assert q["dark_score"][1] == pytest.approx(0.5)
    assert q["dark_score"].is_monotonic_decreasing  # darker = more likely dark
    # absolute: the same item scores the same whatever else is in the collection
    alone = quality_table(items.iloc[[0]].reset_index(drop=True))
    assert alone["dark_score"][0] == q["dark_score"][0]
    assert np.isnan(q["cloud_score"]).all() and not q["is_cloud"].any()  # no measure: not flagged


def test_spectral_tests_win_over_rgb_heuristics_per_item():
    t_s, s_s = CALIBRATION["sig_cloud"]
    t_w, s_w = CALIBRATION["cloud_white"]
    items = pd.DataFrame({"sig_cloud": [t_s + 2 * s_s, np.nan], "cloud_white": [0.0, t_w + 2 * s_w]})
    logits, basis = issue_logits(items)
    assert logits["cloud"] == pytest.approx([2.0, 2.0])
    assert basis["cloud"].tolist() == ["spectral", "rgb heuristic"]
    # haze takes the stronger of cirrus and the haze transform
    t_c, s_c = CALIBRATION["sig_cirrus"]
    t_h, s_h = CALIBRATION["sig_dark_object"]
    items = pd.DataFrame({"sig_cirrus": [t_c + 4 * s_c, np.nan], "sig_dark_object": [t_h - s_h, t_h + s_h],
                          "dark_channel": [0.0, 1.0]})
    logits, basis = issue_logits(items)
    assert logits["haze"] == pytest.approx([4.0, 1.0]) and basis["haze"].tolist() == ["spectral", "spectral"]
    assert set(quality_table(items).columns) >= {f"{i}_score" for i in ISSUES} | {f"is_{i}" for i in ISSUES}


def test_fit_test_puts_the_threshold_between_separated_classes():
    rng = np.random.default_rng(0)
    clean, bad = rng.uniform(0.0, 0.05, 200), rng.uniform(0.5, 1.0, 20)
    t, s = fit_test(np.r_[clean, bad], np.r_[np.zeros(200), np.ones(20)], "high")
    assert 0.05 < t < 0.5 and s > 0
    t_low, _ = fit_test(np.r_[clean, bad], np.r_[np.ones(200), np.zeros(20)], "low")  # low values bad
    assert 0.05 < t_low < 0.5


def test_dark_object_counts_nir_so_turbid_water_is_not_haze():
    """Haze veils every band; turbid water is bright in the visible but dark in NIR (reflectance)."""
    from agcurate.sources.raster import spectral_signals

    n = 400
    valid = np.ones(n, bool)
    water = {"blue": np.full(n, 0.12), "green": np.full(n, 0.14), "red": np.full(n, 0.13), "nir": np.full(n, 0.02)}
    land = {"blue": np.full(n, 0.04), "green": np.full(n, 0.07), "red": np.full(n, 0.06), "nir": np.full(n, 0.30)}
    t, a = 0.7, np.array([0.42, 0.40, 0.38, 0.36])  # the benchmark's thin cloud: I = J t + A (1 - t)
    hazed = {k: v * t + a[i] * (1 - t) for i, (k, v) in enumerate(water.items())}
    assert spectral_signals(water, valid)["dark_object"] == pytest.approx(0.02)
    assert spectral_signals(land, valid)["dark_object"] == pytest.approx(0.04)
    assert spectral_signals(hazed, valid)["dark_object"] == pytest.approx(0.02 * t + 0.36 * (1 - t))
    rgb_only = {k: v for k, v in water.items() if k != "nir"}  # without NIR: the visible minimum, as before
    assert spectral_signals(rgb_only, valid)["dark_object"] == pytest.approx(0.12)


def test_cloud_share_counts_shadowed_cloud_flat_into_nir_not_water_or_vegetation():
    """A grey (shadowed) cloud below the 0.25 brightness of the bright test still counts where its
    spectrum stays flat into NIR; turbid water (NIR far below the visible) and vegetation (far above),
    at the same visible brightness and haze test, do not; without NIR only the bright test applies."""
    from agcurate.sources.raster import spectral_signals

    n = 400
    valid = np.ones(n, bool)

    def surface(blue, green, red, nir):
        return {"blue": np.full(n, blue), "green": np.full(n, green), "red": np.full(n, red), "nir": np.full(n, nir)}

    grey_cloud = surface(0.17, 0.15, 0.14, 0.14)  # blue - 0.5 red = 0.10 > 0.08; NIR / visible 0.93
    water = surface(0.17, 0.15, 0.14, 0.07)
    vegetation = surface(0.17, 0.15, 0.14, 0.40)
    bright_cloud = surface(0.45, 0.44, 0.43, 0.42)
    assert spectral_signals(grey_cloud, valid)["cloud"] == 1.0
    assert spectral_signals(water, valid)["cloud"] == 0.0
    assert spectral_signals(vegetation, valid)["cloud"] == 0.0
    assert spectral_signals(bright_cloud, valid)["cloud"] == 1.0
    no_nir = {k: v for k, v in grey_cloud.items() if k != "nir"}
    assert spectral_signals(no_nir, valid)["cloud"] == 0.0
    half = {k: np.r_[grey_cloud[k][: n // 2], water[k][n // 2:]] for k in grey_cloud}
    assert spectral_signals(half, valid)["cloud"] == pytest.approx(0.5)


def _measured_clear_and_covered(paths, airlight, t):
    """``quality_signals`` of real photos as they are and under a simulated cover I = J t + A (1 - t)."""
    from PIL import Image

    from agcurate.embedding.signals import quality_signals

    clear, covered = [], []
    for path in paths:  # a path, or decoded pixels
        rgb = path if isinstance(path, np.ndarray) else np.asarray(Image.open(path).convert("RGB"))
        clear.append(quality_signals(rgb))
        mixed = rgb * t + np.asarray(airlight, np.float32) * (1 - t) + 0.5
        covered.append(quality_signals(np.clip(mixed, 0, 255).astype(np.uint8)))
    return pd.DataFrame(clear), pd.DataFrame(covered)


def _rice_on_white(shared_data):
    rice = sorted((shared_data("rice-leaf") / "Bacterial").glob("Bacterial_1[0-4].jpg"))
    assert len(rice) == 5
    return rice


def test_rgb_veil_needs_a_lift_over_the_whole_picture_not_a_white_background_or_bright_field(shared_data):
    """Real photos: rice leaves on white backgrounds and bright EuroSAT AnnualCrop fields have a high
    dark-channel mean (the old RGB haze measure flagged them) but a low veil; the same pictures under a
    simulated thin cloud (I = J t + A (1 - t), t = 0.5, whitish airlight) are flagged."""
    crop = sorted((shared_data("eurosat-rgb") / "images" / "AnnualCrop").glob("AnnualCrop_1[0-4].jpg"))
    assert len(crop) == 5
    clean, veiled = _measured_clear_and_covered(_rice_on_white(shared_data) + crop, [225, 230, 240], 0.5)
    assert (clean["dark_channel"][:5] > 0.5).all()  # white backgrounds: a high dark-channel mean
    assert not quality_table(clean)["is_haze"].any()
    assert quality_table(veiled)["is_haze"].all()
    assert (veiled["veil"] > clean["veil"] + 0.2).all()


def test_rgb_cloud_needs_grey_surroundings_not_a_white_background_beside_a_vivid_object(shared_data):
    """Real photos: rice leaves on white backgrounds and close-range maize rows over bright soil have a high
    white share (the old RGB cloud measure flagged them) but a low ``cloud_white``: the leaf beside the
    background is vivid, the soil is not bright enough; the same pictures under a simulated thick cloud
    (I = J t + A (1 - t), t = 0.1, whitish grey) are flagged."""
    maize = sorted(shared_data("maize-croprow-video").rglob("*.jpg"))[:5]
    assert len(maize) == 5
    clean, clouded = _measured_clear_and_covered(_rice_on_white(shared_data) + maize, [235, 238, 242], 0.1)
    assert (clean["white_share"][:5] > 0.266).sum() >= 3  # white backgrounds: the old test's threshold flagged them
    assert not quality_table(clean)["is_cloud"].any()
    assert quality_table(clouded)["is_cloud"].all()


def test_rgb_veil_is_ruled_out_by_one_dark_patch_in_a_grey_frame(shared_data):
    """Real video frames of a grey car park, colourless (saturation ~0.02) with no dark pixels over most of
    the picture (the 5th percentile of the dark channel 0.36 in 3 of the 4, as high as a veiled dark forest tile):
    not hazy, as some dark patch (a tyre, a shadow) is left somewhere; the same frames under a simulated
    thin cloud (I = J t + A (1 - t), t = 0.5) lift every patch and are flagged."""
    import cv2

    cap = cv2.VideoCapture(str(shared_data("intel-sample-videos") / "car-detection.mp4"))
    frames = []
    for i in range(271):  # frames 0, 90, 180, 270 of 377
        ok, bgr = cap.read()
        assert ok
        if i % 90 == 0:
            frames.append(bgr[:, :, ::-1])
    cap.release()
    clean, veiled = _measured_clear_and_covered(frames, [225, 230, 240], 0.5)
    assert not quality_table(clean)["is_haze"].any()
    assert quality_table(veiled)["is_haze"].all()
    assert (clean["veil"] < 0.2).all() and (veiled["veil"] > clean["veil"] + 0.25).all()
