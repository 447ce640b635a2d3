"""The quick paths of dedup at scale: whole-picture copies accepted without keypoints
(``ops.verify._fast_accept``) with the right ``reason``, everything else left to the full check;
keypoints detected only when needed; the per-picture preparation of the cheap rejection
(``ops.dedup._same_size``) against a plain per-pair computation; the verification order.
Generated cases with known answers from the bundled example pictures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from agcurate.ops import dedup as D
from agcurate.ops.verify import _fast_accept, compare, features, mirrored

THRESHOLD = 0.85


def _jpeg(rgb: np.ndarray, quality: int = 70) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.fixture(scope="module")
def aerial(examples_dir) -> np.ndarray:
    return np.asarray(Image.open(examples_dir / "OSBS_029.jpg").convert("RGB"))


def _resized(rgb: np.ndarray, f: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((round(w * f), round(h * f)), Image.LANCZOS))


def test_whole_picture_copies_skip_keypoints_with_the_right_reason(aerial):
    graded = np.clip(aerial.astype(np.float32) * [1.15, 1.0, 0.8] + 12, 0, 255).astype(np.uint8)
    cases = {  # copy -> reason ``find_duplicates`` gives it
        "reencoded": (_jpeg(aerial, 40), "reencoded"),
        "resized": (_jpeg(_resized(aerial, 0.5)), "resized"),
        "mirrored": (_jpeg(aerial[:, ::-1]), "mirrored"),
        "turned": (_jpeg(np.rot90(aerial)), "rotated"),
        "turned+mirrored": (_jpeg(np.rot90(aerial[:, ::-1])), "mirrored+rotated"),
        "graded": (_jpeg(graded), "colour"),
    }
    fa = features(aerial)
    for name, (copy, reason) in cases.items():
        fb = features(copy)
        c = compare(fa, fb)
        assert c.method == "whole" and c.score >= 0.95, name
        assert fb._points is None and fa._points is None, name  # no keypoints were detected
        turned = round(c.rotation / 90.0) % 2 == 1
        same = (copy.shape[1::-1] if not turned else copy.shape[:2]) == aerial.shape[1::-1]
        assert D.reason_of(c, same) == reason, name


def test_fast_path_leaves_crops_edits_and_neighbours_to_the_full_check(aerial, examples_dir):
    h, w = aerial.shape[:2]
    fa = features(aerial)
    crop = _jpeg(aerial[int(0.2 * h):int(0.8 * h), int(0.15 * w):int(0.85 * w)])
    erased = aerial.copy()
    erased[: h // 3, : w // 3] = 0
    left, right = (features(np.ascontiguousarray(x)) for x in (aerial[:, :2 * w // 3], aerial[:, w // 3:]))
    other = np.asarray(Image.open(examples_dir / "SOAP_031.jpg").convert("RGB"))  # same forest type
    for name, pic in (("crop", crop), ("edited", _jpeg(erased)), ("other", other)):
        assert _fast_accept(fa, features(pic)) is None, name
    assert _fast_accept(left, right) is None  # overlapping neighbours (half of each is the other's)
    c = compare(fa, features(crop))  # the full check still finds the crop, and says so
    assert c.method == "keypoints" and c.score >= THRESHOLD and D.reason_of(c, False) == "cropped"
    c = compare(fa, features(_jpeg(erased)))
    assert c.score >= THRESHOLD and "edited" in D.reason_of(c, True)
    assert compare(left, right).score < THRESHOLD
    assert compare(fa, features(other)).score < THRESHOLD


def test_flat_look_alikes_are_not_accepted_quickly():
    rng = np.random.default_rng(0)
    a = np.clip(120 + rng.normal(0, 2, (64, 64, 3)), 0, 255).astype(np.uint8)  # calm water
    b = np.clip(120 + rng.normal(0, 2, (64, 64, 3)), 0, 255).astype(np.uint8)
    assert _fast_accept(features(a), features(b)) is None


def test_mirrored_keypoints_follow_lazily(aerial):
    f = features(aerial[:128, :160])
    m = mirrored(f)
    assert f._points is None and m._points is None
    direct = features(np.ascontiguousarray(aerial[:128, :160][:, ::-1]))
    assert m.desc.dtype == np.float32 and len(m.points) == len(f.points)
    # the flipped keypoints land where keypoints of the flipped picture are detected
    d = np.linalg.norm(m.points[:50, None] - direct.points[None], axis=2).min(axis=1)
    assert np.median(d) < 1.0


def _reference(pa: np.ndarray, pb: np.ndarray) -> float:
    """``same_size_scores`` of one pair the plain way: masked correlation, then each shift."""
    import cv2

    ok = (pa != -128) & (pb != -128)
    x, y = np.where(ok, pa, 0).astype(np.float64), np.where(ok, pb, 0).astype(np.float64)
    best = -1.0
    if ok.sum() >= 0.5 * ok.size:
        best = float(np.corrcoef(x[ok], y[ok])[0, 1])
    h2, w2 = pa.shape[0] // 2, pa.shape[1] // 2
    xa = np.where(pa != -128, pa, 0).astype(np.float32)[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2).mean(axis=(1, 3))
    xb = np.where(pb != -128, pb, 0).astype(np.float32)[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2).mean(axis=(1, 3))
    ry, rx = int(np.ceil(h2 * D.QUICK_INNER)), int(np.ceil(w2 * D.QUICK_INNER))
    res = cv2.matchTemplate(xa, np.ascontiguousarray(xb[ry:h2 - ry, rx:w2 - rx]), cv2.TM_CCOEFF_NORMED)
    return max(best, float(res.max()))


def test_same_size_scores_match_a_plain_computation():
    rng = np.random.default_rng(3)
    base = rng.integers(-60, 60, (6, 40, 48)).astype(np.int8)
    pb = np.clip(0.7 * base + rng.integers(-30, 30, base.shape), -127, 127).astype(np.int8)
    pb[1] = np.roll(base[1], (4, -6), axis=(0, 1))  # a shifted copy: found by the shift search
    pb[2, :10] = -128  # erased at the top
    base[3, :, :8] = -128
    pb[4] = rng.integers(-60, 60, (40, 48))  # unrelated
    got = D.same_size_scores(base, pb)
    want = [_reference(a, b) for a, b in zip(base, pb)]
    assert np.allclose(got, want, atol=1e-4)
    assert got[1] > 0.9 and got[4] < 0.3
    # the batched form on shared pictures (as ``gate_pairs`` calls it) gives the same numbers
    stack = np.concatenate([base, pb])
    ia, ib = np.array([0, 0, 1, 2, 3, 5, 4]), np.array([6, 7, 7, 8, 9, 11, 10])
    assert np.allclose(D._same_size(stack, ia, ib), [_reference(stack[a], stack[b]) for a, b in zip(ia, ib)], atol=1e-4)


def test_pairs_are_verified_set_by_set():
    cands = [((0, 5), 0.9), ((1, 2), 0.95), ((2, 3), 0.7), ((4, 5), 0.8), ((0, 4), 0.6)]
    order = [p for p, _ in D._local_order(cands)]
    assert sorted(order) == sorted(p for p, _ in cands)
    sets = [0 if p[0] in (0, 4, 5) else 1 for p in order]
    assert sets == sorted(sets) or sets == sorted(sets, reverse=True)  # one set, then the other


def test_shifted_tiles_are_accepted_quickly_and_features_stay_as_they_were(aerial):
    """Two 64 px tiles of one picture a few pixels apart (each >= 90% inside the other) are a
    whole-picture copy for the quick check: the phase correlation is windowed, so the frames' edges
    (which the tiles do not share) do not outweigh the texture; comparing changes no features."""
    for dy, dx in ((4, 2), (-2, -2), (0, -6)):
        a, b = aerial[100:164, 100:164], aerial[100 + dy:164 + dy, 100 + dx:164 + dx]
        fa, fb = features(np.ascontiguousarray(a)), features(np.ascontiguousarray(b))
        before = [x.copy() for x in (fa.smooth, fa.fine, fb.smooth, fb.fine)]
        c = _fast_accept(fa, fb)
        assert c is not None and c.method == "whole" and c.score >= 0.95, (dy, dx)
        assert all(np.array_equal(x, y) for x, y in zip(before, (fa.smooth, fa.fine, fb.smooth, fb.fine)))
    far = features(np.ascontiguousarray(aerial[100:164, 140:204]))  # 40 px apart: a neighbour, not a copy
    assert _fast_accept(features(np.ascontiguousarray(aerial[100:164, 100:164])), far) is None


def test_thumb_correlation_is_the_best_of_the_eight_turns_and_flips():
    rng = np.random.default_rng(5)
    t = rng.normal(size=(5, 16, 16)).astype(np.float32)
    t[1] = np.rot90(t[0], 1)[:, ::-1] * 2 + 3  # a turned, mirrored, brighter copy
    pairs = np.array([[0, 1], [0, 2], [3, 4], [2, 2]])
    got = D.thumb_correlation(t, pairs)
    want = [max(float(np.corrcoef(v[0].ravel(), t[b].ravel())[0, 1]) for v in D._dihedral(t[a:a + 1]))
            for a, b in pairs]
    assert np.allclose(got, want, atol=1e-5) and got[0] > 0.999


def test_graph_order_keeps_connected_pictures_together():
    rng = np.random.default_rng(2)
    # three separate sets of pictures (numbered at random), pairs listed in random order
    sets = [rng.permutation(300)[:40], rng.permutation(np.arange(300, 600))[:40], np.arange(1000, 1040)]
    pairs = np.concatenate([np.stack([s[rng.integers(0, 40, 150)], s[rng.integers(0, 40, 150)]], 1) for s in sets])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = pairs[rng.permutation(len(pairs))]
    order = D._graph_order(pairs)
    assert sorted(order.tolist()) == list(range(len(pairs)))
    label = np.select([pairs[:, 0] < 300, pairs[:, 0] < 600], [0, 1], 2)[order]
    assert (np.diff(label) != 0).sum() == 2  # one set after the other
