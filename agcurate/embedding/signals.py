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
    }


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
