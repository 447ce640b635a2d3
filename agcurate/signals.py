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
        nodata_share = float(np.mean(~rgb.any(axis=2))) if rgb.size else 1.0
    else:
        nodata_share = float(np.mean(nodata)) if nodata.size else 1.0
    return {
        "brightness": float(gray.mean() / 255.0),
        "saturation": float(hsv[:, :, 1].mean() / 255.0),
        "sharpness": float(cv2.Laplacian(gray, cv2.CV_32F).var()),
        "nodata": nodata_share,
    }
