"""Cheap per-item pixel signals computed while decoding and kept beside the vectors."""

from __future__ import annotations

import hashlib

import numpy as np


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB uint8 image to ``size`` x ``size`` (area filter down, bicubic up)."""
    import cv2

    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(rgb)
    interp = cv2.INTER_AREA if h * w >= size * size else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(rgb), (size, size), interpolation=interp)


def pixel_hash(rgb: np.ndarray) -> str:
    """Hash of the decoded pixels: equal for the same picture saved in any lossless format."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(rgb.shape, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


def pixel_signals(rgb: np.ndarray, small: np.ndarray, nodata: np.ndarray | None = None) -> dict[str, float]:
    """Brightness, saturation (0-1), sharpness (variance of the Laplacian at encoder size) and
    no-data share (pixels that are pure black in every channel, or flagged by the source)."""
    import cv2

    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    if nodata is None:
        nodata_share = _black_share(rgb)
    else:
        nodata_share = float(np.mean(nodata)) if nodata.size else 1.0
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))
    # OpenCV's reductions, not numpy's: rgb.any(axis=2) alone took 129 ms on a 12 MP image (now 26 ms
    # for all signals), and decoding is what limits end-to-end speed on a GPU
    return {
        "brightness": cv2.mean(gray)[0] / 255.0,
        "saturation": cv2.mean(hsv)[1] / 255.0,
        "sharpness": float(lap_std[0, 0]) ** 2,
        "nodata": nodata_share,
        **quality_signals(rgb, nodata),
    }


QUALITY_SIDE = 256  # quality signals are measured at native size, shrunk (never enlarged) to this side
QUALITY_SIGNALS = ("white_share", "cloud_white", "clipped", "dark_channel", "veil", "contrast", "blur")
QUALITY_VERSION = 11.0  # stored as ``quality_v``: rows measured by another version are measured again
BLUR_SIDE = 128  # blur is judged at thumbnail size: softness that vanishes there (an upscaled photo) is not blur


def quality_signals(rgb: np.ndarray, nodata: np.ndarray | None = None) -> dict[str, float]:
    """Per-item measures behind the RGB quality issues (``ops.quality``), over valid pixels.

    Measured at native resolution shrunk to at most ``QUALITY_SIDE`` (area filter; small images are
    never enlarged, so a 64 px tile does not look blurred): ``white_share`` share of bright (grey >= 0.6),
    neutral pixels, soft: each pixel counts clip((grey - 0.4) / 0.3, 0, 1) x clip((0.2 - S) / 0.1, 0, 1)
    with HSV saturation S (cloud, snow: white or grey, S < 0.1; bright turbid water, sand and soil are
    coloured, S 0.15-0.25, and no longer count as half white); ``cloud_white`` the RGB cloud measure:
    the share of brighter neutral pixels (clip((grey - 0.6) / 0.2, 0, 1) x the same neutral weight) times
    1 - the share of vivid pixels (S > 0.35) among the others (a cloud dims and greys what it does not
    cover, while a white lab background sits beside a vivid object in focus; room walls, bare soil and
    concrete are mostly not bright enough); ``dark_channel``, ``veil``, ``cloud_white`` and
    ``white_share`` are NaN for grey input, which has no colour to judge them by;
    ``clipped`` share of pixels with a channel at >= 250
    (over-exposure); ``dark_channel`` mean of the 7 px minimum over channels (He et al.'s dark
    channel, high under haze, but also on bright scenes and white backgrounds; pixels without data do
    not darken their neighbours); ``veil`` the RGB haze measure: the darkest pixels' darkest channel,
    the 0.01th percentile of the per-pixel minimum over channels (a few pixels of a 256 px picture, so a
    stray dead pixel does not count; a veil I = J t + A (1 - t) lifts every pixel by at least
    A (1 - t), so one dark object anywhere rules it out: grey rooms and asphalt, white backgrounds, sky
    and bright roofs leave some dark object, a tyre, a shadow, a doorway, while a veil over a dark
    scene lifts them all);
    ``contrast`` standard deviation of grey (0-1; low = flat); ``blur``
    the no-reference blur metric of Crete-Roffet et al. (2007) at ``BLUR_SIDE`` (area filter, never
    enlarged): how little a 9-tap blur lowers the
    differences between neighbouring pixels (0 sharp - 1 blurred, the worse of the two directions;
    contrast-free, so noise reads as sharp). NaN where no pixel is valid.
    """
    import cv2

    img = np.ascontiguousarray(rgb)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    h, w = img.shape[:2]
    valid = None if nodata is None else ~np.asarray(nodata, bool)
    if h == 0 or w == 0 or (valid is not None and not valid.any()):
        return {**{k: float("nan") for k in QUALITY_SIGNALS}, "quality_v": QUALITY_VERSION}
    f = QUALITY_SIDE / max(h, w)
    if f < 1:
        size = (max(1, round(w * f)), max(1, round(h * f)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        if valid is not None:
            valid = cv2.resize(valid.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    if valid is None:
        valid = _black_share_mask(img)
    if not valid.any():
        return {**{k: float("nan") for k in QUALITY_SIGNALS}, "quality_v": QUALITY_VERSION}
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    sat = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[:, :, 1].astype(np.float32) / 255.0
    low = img.min(axis=2)
    low[~valid] = 255  # pixels without data do not darken the dark channel of their neighbours
    dark = cv2.erode(low, np.ones((7, 7), np.uint8)).astype(np.float32) / 255.0
    g = gray[valid]
    neutral = np.clip((0.2 - sat[valid]) / 0.1, 0, 1)
    white = np.clip((g - 0.4) / 0.3, 0, 1) * neutral
    bright_white = np.clip((g - 0.6) / 0.2, 0, 1) * neutral
    rest = 1 - bright_white
    vivid_rest = float((rest * (sat[valid] > 0.35)).sum() / max(float(rest.sum()), 1e-6))
    # grey input (one band shown as grey): equal channels, unless clipped white (a thick cloud)
    grey_input = (np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 1], img[:, :, 2])
                  and float(np.mean(g >= 250 / 255)) < 0.5)
    return {
        "white_share": float("nan") if grey_input else float(white.mean()),  # no colour: no whiteness
        "cloud_white": float("nan") if grey_input else float(bright_white.mean() * (1 - vivid_rest)),
        "clipped": float(np.mean(img[valid].max(axis=1) >= 250)),
        "dark_channel": float("nan") if grey_input else float(dark[valid].mean()),
        "veil": float("nan") if grey_input else float(np.percentile(low[valid], 0.01)) / 255.0,
        "contrast": float(g.std()),
        "blur": blur_metric(_shrunk(gray, BLUR_SIDE)),
        "quality_v": QUALITY_VERSION,
    }


def _shrunk(img: np.ndarray, side: int) -> np.ndarray:
    """``img`` shrunk (area filter) so its longer side is at most ``side``; never enlarged."""
    import cv2

    h, w = img.shape[:2]
    f = side / max(h, w)
    if f >= 1:
        return img
    return cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def blur_metric(gray: np.ndarray) -> float:
    """Crete-Roffet et al. (2007) no-reference blur: 0 for sharp, towards 1 for blurred (worse axis)."""
    import cv2

    out = 0.0
    for axis, kernel in ((0, np.full((9, 1), 1 / 9, np.float32)), (1, np.full((1, 9), 1 / 9, np.float32))):
        if gray.shape[axis] < 2:
            continue
        reblurred = cv2.filter2D(gray, -1, kernel, borderType=cv2.BORDER_REFLECT)
        d = np.abs(np.diff(gray, axis=axis))
        lost = np.maximum(0.0, d - np.abs(np.diff(reblurred, axis=axis))).sum()
        total = float(d.sum())
        out = max(out, (total - float(lost)) / total if total > 0 else 0.0)
    return float(out)


def _black_share_mask(img: np.ndarray) -> np.ndarray:
    """Pixels not pure black in every channel (all pixels when none is black: a photo)."""
    mask = img.any(axis=2)
    return mask if mask.any() else np.ones(mask.shape, bool)


def _black_share(rgb: np.ndarray) -> float:
    """Share of pixels that are 0 in every channel (1.0 for an empty image)."""
    import cv2

    n = rgb.shape[0] * rgb.shape[1] if rgb.ndim >= 2 else 0
    if n == 0:
        return 1.0
    img = np.ascontiguousarray(rgb)
    if img.ndim == 2:
        return 1.0 - cv2.countNonZero(img) / n
    planes = cv2.split(img)
    acc = planes[0]
    for plane in planes[1:]:
        acc = cv2.bitwise_or(acc, plane)
    return 1.0 - cv2.countNonZero(acc) / n
