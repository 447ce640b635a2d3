"""Dense verification of keypoint-poor pairs (``ops.verify._dense_check``): smooth water, a dark
forest patch, a dim video frame have too few keypoints to align, so their copies are aligned by
template matching of a mid-frequency band (turns/flips, small zooms and shifts, crops and padding)
and compared on that band evened out (``_even``), cell by cell where a caption or an erased part
differs. Known answers on generated low-texture pictures (copies of every kind; another picture of
the same texture; two pictures that share one strong edge; overlapping and adjacent neighbours)
and on real ones (a EuroSAT forest patch, a traffic-video frame, EuroSAT water patches with a
shore that look alike)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from agcurate.ops.verify import _dense_check, compare, features

THRESHOLD = 0.85


def _jpeg(rgb: np.ndarray, quality: int = 60) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _field(seed: int, size=(96, 128), std: float = 2.0, shore: bool = False) -> np.ndarray:
    """Smooth low-contrast texture (calm water, a canopy): grey spread ~2 levels, bluish; with
    ``shore``, a bright straight shore across one corner (the same in every picture)."""
    import cv2

    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.normal(size=size).astype(np.float32), (0, 0), 3.0)
    x = x / x.std() * std
    if shore:
        yy, xx = np.mgrid[:size[0], :size[1]]
        x = x + 40.0 * (yy + 0.6 * xx > 100)
    return np.clip(np.stack([60 + x, 80 + x, 120 + 1.1 * x], -1), 0, 255).astype(np.uint8)


def _recapture(rgb: np.ndarray, zoom: float, dx: float, dy: float) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    M = np.float32([[zoom, 0, (1 - zoom) * w / 2 + dx], [0, zoom, (1 - zoom) * h / 2 + dy]])
    return cv2.warpAffine(rgb, M, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _edited(rgb: np.ndarray, share: float = 0.25) -> np.ndarray:
    x = rgb.copy()
    h, w = x.shape[:2]
    eh, ew = int(h * share ** 0.5), int(w * share ** 0.5)
    x[h // 4:h // 4 + eh, w // 3:w // 3 + ew] = 0
    return x


def _padded(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    out = np.zeros((h, max(w + 40, round(h * 16 / 9)), 3), np.uint8)
    x0 = (out.shape[1] - w) // 2
    out[:, x0:x0 + w] = rgb
    return out


def _graded(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32) / 255
    return (np.stack([x[..., 0] ** 0.7, 0.9 * x[..., 1] ** 1.3, x[..., 2] ** 1.1], -1) * 255).astype(np.uint8)


def _watermark(rgb: np.ndarray) -> np.ndarray:
    im = Image.fromarray(rgb).convert("RGBA")
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    h = rgb.shape[0]
    ImageDraw.Draw(layer).text((5, h // 3), "SAMPLE", fill=(255, 255, 255, 160),
                               font=ImageFont.load_default(size=max(10, h // 8)))
    return np.asarray(Image.alpha_composite(im, layer).convert("RGB"))


def test_low_texture_copies_are_aligned_densely_and_look_alikes_are_not():
    a = _field(1)
    fa = features(a)
    assert len(fa.points) < 10  # too few keypoints for the keypoint alignment
    copies = {
        "reencoded": _jpeg(a, 50),
        "mirrored": _jpeg(np.ascontiguousarray(a[:, ::-1])),
        "rotated": _jpeg(np.ascontiguousarray(np.rot90(a))),
        "colour": _jpeg(_graded(a)),
        "recapture": _jpeg(_recapture(a, 1.04, 3, -2)),
        "edited": _jpeg(_edited(a)),
        "padded": _jpeg(_padded(a)),
        "watermark": _jpeg(_watermark(a)),
    }
    for kind, b in copies.items():
        check = compare(fa, features(b))
        assert check.score >= THRESHOLD and check.method == "dense", (kind, check)
    assert compare(fa, features(copies["mirrored"])).mirrored
    turn = compare(fa, features(copies["rotated"])).rotation
    assert min(abs(turn - 90) % 360, abs(turn - 270) % 360) < 2
    edit = compare(fa, features(copies["edited"]))
    assert edit.edited > 0.1
    pad = compare(fa, features(copies["padded"]))
    assert pad.inside < 0.9 and pad.coverage > 0.9  # the original lies inside the padded copy

    # another picture of the same texture, and neighbours cut from one larger picture
    assert compare(fa, features(_jpeg(_field(2)))).score < 0.5
    big = _field(5, size=(96, 256))
    left = features(big[:, :128].copy())
    for other in (big[:, 64:192], big[:, 128:]):  # overlapping by half, adjacent
        assert _dense_check(left, features(_jpeg(np.ascontiguousarray(other)))).score < 0.5


def test_a_shared_strong_edge_does_not_make_a_copy():
    """Two different textures with the same bright shore: the band evened out counts the water as
    much as the shore, so the dense check does not call them copies; a copy still is one."""
    a = _field(1, shore=True)
    fa = features(a)
    assert _dense_check(fa, features(_jpeg(_recapture(a, 1.03, 2, 1)))).score >= THRESHOLD
    for seed in (2, 3):
        assert _dense_check(fa, features(_jpeg(_field(seed, shore=True)))).score < 0.7


@pytest.fixture(scope="module")
def eurosat(shared_data):
    root = shared_data("eurosat-rgb") / "images"

    def get(name: str) -> np.ndarray:
        return np.asarray(Image.open(root / name.split("_")[0] / name).convert("RGB"))

    return get


def test_a_dark_forest_patch_and_its_copies(eurosat):
    """EuroSAT Forest_147 (grey spread ~2, ~30 keypoints, most of them noise): its copies are found
    by the dense check; three water patches with a shore that look alike are not paired."""
    f = eurosat("Forest_147.jpg")
    ff = features(f)
    copies = {
        "mirrored": _jpeg(np.ascontiguousarray(f[:, ::-1]), 80),
        "colour": _jpeg(_graded(f), 80),
        "recapture": _jpeg(_recapture(f, 1.05, 2, 1), 80),
        "padded": _jpeg(_padded(f), 80),
    }
    for kind, b in copies.items():
        check = compare(ff, features(b))
        assert check.score >= THRESHOLD, (kind, check)
    for x, y in (("SeaLake_121.jpg", "SeaLake_149.jpg"), ("SeaLake_62.jpg", "SeaLake_63.jpg"),
                 ("SeaLake_129.jpg", "SeaLake_78.jpg")):
        assert compare(features(eurosat(x)), features(eurosat(y))).score < 0.75, (x, y)


@pytest.mark.slow
def test_a_dim_video_frame_with_a_caption_an_erased_part_and_a_recapture(shared_data):
    import cv2

    cap = cv2.VideoCapture(str(shared_data("intel-sample-videos") / "car-detection.mp4"))
    cap.set(cv2.CAP_PROP_POS_MSEC, 1000)
    ok, frame = cap.read()
    cap.release()
    if not ok:
        pytest.skip("car-detection.mp4 could not be decoded here")
    v = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    fv = features(v)
    assert len(fv.points) < 30
    for kind, b in {"watermark": _watermark(v), "edited": _edited(v), "recapture": _recapture(v, 0.96, 12, -8)}.items():
        check = compare(fv, features(_jpeg(b)))
        assert check.score >= THRESHOLD, (kind, check)


def test_tiles_cut_along_one_straight_road_are_not_copies(shared_data):
    """The aperture problem: 64 px tiles cut at different places along a straight road of the NEON
    aerial picture (keypoint-poor: pale road, two verges) match each other densely at 0.90-0.98,
    because a road matches itself at any shift along it. The dense alignment must be unique to
    count (``_peak``), so they are not copies; a re-encoded or recaptured copy of one still is."""
    big = np.asarray(Image.open(shared_data("deepforest-aerial") / "2019_YELL_2_541000_4977000_image_crop.png")
                     .convert("RGB"))

    def tile(x: int, y: int) -> np.ndarray:
        return np.ascontiguousarray(big[y:y + 64, x:x + 64])

    # (x, y) of the tile corners: pairs along the road that the dense check used to accept
    for (x1, y1), (x2, y2) in (((463, 805), (540, 915)), ((383, 653), (453, 769)), ((228, 335), (220, 310))):
        a = tile(x1, y1)
        fa = features(a)
        assert compare(fa, features(_jpeg(tile(x2, y2), 70))).score < THRESHOLD, (x1, y1, x2, y2)
        for copy in (_jpeg(a, 60), _jpeg(_recapture(a, 1.03, 2, -1), 70), _jpeg(np.ascontiguousarray(a[:, ::-1]), 70)):
            assert compare(fa, features(copy)).score >= THRESHOLD, (x1, y1)
