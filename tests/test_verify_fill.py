"""Fill and one shared strong edge in the whole-picture checks of ``ops.verify``.

Two different featureless pictures with fill in the same place (an erased black box, padding bars)
used to correlate through the fill's outline and its JPEG ringing (0.99-1.0: the quick whole-
picture check, the right-angle and slight-turn checks); two textures that share one straight
shore correlated at 0.87-0.89 in the right-angle check. Fill is now left out of every whole-picture
correlation (fill in both as far as the band's blur reaches), and the right-angle and slight-turn
checks must also hold on the evened band (``_evened_ncc``). Known answers on generated pictures
and on the two EuroSAT patches that formed a false pair in the wild benchmark (``--bases 12``);
copies with the same fill, and copies of a shore texture, are still copies."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from agcurate.ops.verify import compare, features
from test_verify_dense import _edited, _field, _jpeg, _padded, _recapture

THRESHOLD = 0.85


def _erase(rgb: np.ndarray, y: int, x: int, h: int, w: int) -> np.ndarray:
    out = rgb.copy()
    out[y:y + h, x:x + w] = 0
    return out


@pytest.mark.parametrize("std", [0.7, 1.0, 2.0, 4.0])
def test_flat_pictures_with_fill_in_the_same_place_are_not_copies(std):
    a, b = _field(1, size=(64, 64), std=std), _field(2, size=(64, 64), std=std)
    for fill in (_edited, _padded):
        check = compare(features(_jpeg(fill(a), 80)), features(_jpeg(fill(b), 80)))
        assert check.score < 0.8, (fill.__name__, check)


@pytest.mark.parametrize("std", [2.0, 4.0])
def test_copies_with_the_same_fill_are_still_copies(std):
    a = _field(1, size=(64, 64), std=std)
    for fill in (_edited, _padded):
        x = fill(a)
        fx = features(_jpeg(x, 90))
        for copy in (_jpeg(x, 50), _jpeg(np.ascontiguousarray(x[:, ::-1]), 70), _jpeg(_recapture(x, 1.03, 1, 1), 70)):
            check = compare(fx, features(copy))
            assert check.score >= THRESHOLD, (fill.__name__, check)


def test_a_shared_shore_does_not_make_keypoint_rich_textures_copies():
    """61-141 keypoints each (mostly along the shore and JPEG noise): too many for the dense check,
    and the keypoints do not align, so the right-angle check decides; it used to score 0.87-0.89."""
    for size in ((96, 128), (128, 128)):
        a = _field(1, size=size, shore=True)
        fa = features(a)
        assert len(fa.points) >= 60
        for seed in (2, 3):
            check = compare(fa, features(_jpeg(_field(seed, size=size, shore=True))))
            assert check.score < 0.6, (size, seed, check)
        for copy in (_jpeg(a, 40), _jpeg(np.ascontiguousarray(np.rot90(a)), 40),
                     _jpeg(np.ascontiguousarray(np.rot90(a, 2)), 40)):
            assert compare(fa, features(copy)).score >= THRESHOLD, size


def test_two_eurosat_patches_with_boxes_or_padding(shared_data):
    """SeaLake_89 and Forest_67 (the 12-base wild benchmark's b07 and b11): each with an erased box
    (anywhere) or padded alike, they used to score 0.99 (slight-turn and right-angle checks)."""
    root = shared_data("eurosat-rgb") / "images"
    a, b = (np.asarray(Image.open(root / n.split("_")[0] / n).convert("RGB"))
            for n in ("SeaLake_89.jpg", "Forest_67.jpg"))
    boxes = ((8, 10, 30, 26), (30, 20, 28, 34), (20, 30, 36, 30), (0, 0, 32, 40))
    for (ya, xa, ha, wa), (yb, xb, hb, wb) in zip(boxes, boxes[1:] + boxes[:1]):
        check = compare(features(_jpeg(_erase(a, ya, xa, ha, wa), 70)), features(_jpeg(_erase(b, yb, xb, hb, wb), 70)))
        assert check.score < 0.5, check
    assert compare(features(_jpeg(_padded(a), 70)), features(_jpeg(_padded(b), 70))).score < 0.5
    # a box on a copy of the forest patch too: still a copy (the water patch, spread 0.3 grey levels,
    # has nothing left to tell its copies by once the box is left out)
    ea = _erase(b, *boxes[0])
    assert compare(features(_jpeg(ea, 90)), features(_jpeg(np.ascontiguousarray(ea[:, ::-1]), 60))).score >= THRESHOLD


def test_two_nearly_flat_lake_patches_are_not_copies(shared_data):
    """EuroSAT SeaLake_40 and SeaLake_5 (smoothed grey spread 1.3 and 2.2, no keypoints): with no
    texture left in the compared band, their smooth gradient correlated at 0.89 after a slight turn
    (the slight-turn check): nothing in such pixels tells a copy from a look-alike."""
    root = shared_data("eurosat-rgb") / "images" / "SeaLake"
    a, b = (np.asarray(Image.open(root / n).convert("RGB")) for n in ("SeaLake_40.jpg", "SeaLake_5.jpg"))
    assert compare(features(a), features(b)).score < 0.5
