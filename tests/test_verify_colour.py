"""Strongly colour-graded copies (``ops.verify._graded``): mean colour shares moved by more than
``MAX_CHROMA`` used to be rejected outright, so a strong white balance or per-channel curve lost the
copy (the wild benchmark's aerial ``colour`` miss). Such a pair is now looked at, but only a keypoint
alignment may call it a copy, and the aligned pictures must then correlate channel by channel with
any monotone curve undone (``_channels``): a grade keeps every channel's order, a neighbour tile of
other colours does not align, and a picture whose colours changed in one part does not pass."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from agcurate.ops.verify import MAX_CHROMA, compare, features
from test_verify_dense import _jpeg

THRESHOLD = 0.85


def _grade(rgb: np.ndarray) -> np.ndarray:
    """A strong warm grade: per-channel gamma and gain (red up, blue down)."""
    x = rgb.astype(np.float32) / 255
    gam, gain = (0.5, 1.0, 1.8), (1.25, 1.0, 0.65)
    return (np.stack([np.clip(gain[c] * x[..., c] ** gam[c], 0, 1) for c in range(3)], -1) * 255 + 0.5).astype(np.uint8)


def _recolour_half(rgb: np.ndarray) -> np.ndarray:
    """The left half's colours inverted around grey, its brightness kept (a local colour change)."""
    import cv2

    y = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    half = y.shape[1] // 2
    y[:, :half, 1:] = 255 - y[:, :half, 1:]
    return cv2.cvtColor(y, cv2.COLOR_YCrCb2RGB)


@pytest.fixture(scope="module")
def aerial(shared_data):
    big = np.asarray(Image.open(shared_data("deepforest-aerial") / "OSBS_029.png").convert("RGB"))

    def tile(x: int, y: int, t: int = 256) -> np.ndarray:
        return np.ascontiguousarray(big[y:y + t, x:x + t])

    return tile


def test_strongly_graded_copies_are_found_and_graded_neighbours_are_not(aerial):
    a = aerial(50, 60)
    fa = features(a)
    g = _grade(a)
    assert float(np.abs(features(g).chroma - fa.chroma).max()) > MAX_CHROMA  # rejected outright before
    for kind, copy in {"graded": g, "turned": np.rot90(g), "mirrored": g[:, ::-1]}.items():
        check = compare(fa, features(_jpeg(np.ascontiguousarray(copy), 80)))
        assert check.score >= THRESHOLD and check.colour, (kind, check)
    assert compare(fa, features(_jpeg(np.ascontiguousarray(g[:, ::-1]), 80))).mirrored
    for x in (50 + 128, 50 + 256):  # overlapping by half, adjacent
        assert compare(fa, features(_jpeg(_grade(aerial(x, 60)), 80))).score < 0.5, x


def test_a_local_colour_change_is_no_grade(aerial):
    """Half of the tile recoloured (brightness kept, so the grey pictures still match exactly) and
    then graded: keypoints align, but one channel no longer maps onto the other through a curve."""
    a = aerial(50, 60)
    fa = features(a)
    b = features(_jpeg(_grade(_recolour_half(a)), 80))
    assert float(np.abs(b.chroma - fa.chroma).max()) > MAX_CHROMA
    check = compare(fa, b)
    assert check.score < THRESHOLD, check
