"""Pixel-level verification of a candidate image pair: is one a transformed copy of the other?

Global embeddings find candidates but confuse a crop with a look-alike. Here a pair is aligned
(SIFT keypoints + RANSAC similarity transform, or one of the four right-angle rotations when too
few keypoints match; small images also get a search over slight turns of each right angle) and the
aligned pixels are compared by normalised cross-correlation, which ignores brightness and contrast
changes. A copy scores near 1, two different leaves of one disease
or two patches of one land-cover class score far lower. OpenCV is imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SIDE = 256           # images are compared with their longer side at this many pixels
MIN_INLIERS = 10     # RANSAC inliers needed to trust a keypoint alignment
MIN_OVERLAP = 0.6    # aligned overlap as a share of the smaller image
BLUR_SIGMA = 2.0     # both sides are low-passed alike, so a blurred copy still correlates
RICH = 30            # keypoints an image needs before a failed keypoint alignment counts against it
MAX_CHROMA = 0.05    # mean colour shares of a copy stay this close (brightness/contrast included)
FLAT = 4.0           # grey-level spread below which correlation means little (water, bare soil)
FLAT_CHROMA = 0.015  # ... and colours must agree this closely instead
FILL_BLACK = 8       # grey level under which a pixel may be the black fill of a rotation
SMALL_SCALE = 2.0    # images upscaled at least this much (<= 128 px) get the slight-rotation search
TILT = 10.0          # ... over this many degrees either way
TILT_STEP = 1.0
TILT_GATE = 0.3      # ... tried only when some right angle correlates this well unaligned
RICH_PENALTY = 9.0   # a textured pair whose keypoints do not line up: correlation gap x (1 + this)


@dataclass
class PairCheck:
    """Outcome of comparing two images: correlation after alignment and how it was aligned."""

    score: float
    method: str          # "keypoints", "rotation" or "none"
    inliers: int = 0
    rotation: float = 0.0  # degrees, of the second image relative to the first
    scale: float = 1.0
    overlap: float = 0.0


@dataclass
class Features:
    """What verification needs of one image, computed once: grey pixels and SIFT keypoints."""

    gray: np.ndarray      # float32, longer side = SIDE
    smooth: np.ndarray    # gray low-passed (about one original pixel) for correlation
    points: np.ndarray    # (n, 2) float32 keypoint positions
    desc: np.ndarray | None
    scale: float = 1.0    # resize factor from the original pixels to ``gray``
    chroma: np.ndarray | None = None  # mean r, g, b shares: kept by brightness changes, not by a new scene


def features(rgb: np.ndarray, side: int = SIDE) -> Features:
    """Grey image resized to ``side`` on its longer edge, its smoothed copy and SIFT keypoints."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    h, w = gray.shape[:2]
    s = side / float(max(h, w))
    size = (max(8, round(w * s)), max(8, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    g = cv2.resize(gray, size, interpolation=interp)
    sift = cv2.SIFT_create(nfeatures=1000, contrastThreshold=0.01)
    kps, desc = sift.detectAndCompute(g, None)
    pts = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)
    gf = g.astype(np.float32)
    sigma = max(BLUR_SIGMA, s)  # at least one original pixel: JPEG blocks of a small image vanish
    chroma = None
    if rgb.ndim == 3:
        m = rgb.reshape(-1, rgb.shape[2])[:, :3].astype(np.float64).mean(axis=0)
        chroma = m / max(1e-6, float(m.sum()))
    return Features(gf, cv2.GaussianBlur(gf, (0, 0), sigma), pts, desc, s, chroma)


def _ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    if mask is not None:
        a, b = a[mask], b[mask]
    if a.size < 64:
        return 0.0
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if den < 1e-6:  # flat images: equal only if both are flat at any level
        return 1.0 if float(np.abs(a).max()) < 1e-3 and float(np.abs(b).max()) < 1e-3 else 0.0
    return float((a * b).sum() / den)


def _keypoint_check(fa: Features, fb: Features) -> PairCheck | None:
    import cv2

    if fa.desc is None or fb.desc is None or len(fa.desc) < 4 or len(fb.desc) < 4:
        return None
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    pairs = matcher.knnMatch(fb.desc, fa.desc, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < MIN_INLIERS:
        return None
    src = fb.points[[m.queryIdx for m in good]]
    dst = fa.points[[m.trainIdx for m in good]]
    M, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=4.0,
                                         maxIters=2000, confidence=0.995, refineIters=10)
    if M is None or inl is None:
        return None
    n_in = int(inl.sum())
    if n_in < MIN_INLIERS:
        return None
    scale = float(np.hypot(M[0, 0], M[1, 0]))
    angle = float(np.degrees(np.arctan2(M[1, 0], M[0, 0])))
    if not 0.25 <= scale <= 4.0:
        return None
    h, w = fa.gray.shape
    warped = cv2.warpAffine(fb.smooth, M, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    valid = cv2.warpAffine(np.ones_like(fb.gray, np.uint8), M, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    valid = cv2.erode(valid, np.ones((7, 7), np.uint8)).astype(bool)
    area_b = fb.gray.size * scale * scale
    overlap = float(valid.sum()) / max(1.0, min(float(fa.gray.size), area_b))
    if overlap < MIN_OVERLAP:
        return PairCheck(0.0, "keypoints", n_in, angle, scale, overlap)
    # corners filled by a rotation are not content: ignore pixels that are black in one image and
    # not in the other, widened by the blur radius (the smoothed black bleeds into its surroundings,
    # which on a low-contrast image outweighs the content) and by JPEG ringing at the fill's edge
    warped_raw = cv2.warpAffine(fb.gray, M, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    fill = ((warped_raw < FILL_BLACK) & (fa.gray >= FILL_BLACK)) | ((fa.gray < FILL_BLACK) & (warped_raw >= FILL_BLACK))
    # the same holds at the overlap's edge, beyond which the copy may hold fill (or nothing at all):
    # pixels within three blur sigmas of it are left out, and the frame's edge counts as such an edge
    r = int(np.ceil(3 * max(BLUR_SIGMA, fa.scale, fb.scale * scale)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    fill = cv2.morphologyEx(fill.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    fill = cv2.dilate(fill, disc).astype(bool)
    inner = cv2.erode(valid.astype(np.uint8), disc, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    mask = inner & ~fill
    return PairCheck(_ncc(fa.smooth, warped, mask), "keypoints", n_in, angle, scale, overlap)


def _rotation_check(fa: Features, fb: Features) -> PairCheck:
    import cv2

    h, w = fa.gray.shape
    best = PairCheck(0.0, "rotation")
    for k in range(4):
        rb = np.rot90(fb.smooth, k)
        if k % 2 and abs(rb.shape[0] / rb.shape[1] - h / w) > 0.05 * h / w:
            continue
        rb = cv2.resize(np.ascontiguousarray(rb), (w, h), interpolation=cv2.INTER_AREA)
        s = _ncc(fa.smooth, rb)
        if s > best.score:
            best = PairCheck(s, "rotation", 0, 90.0 * k, 1.0, 1.0)
    return best


@lru_cache(maxsize=256)
def _tilt_frame(w: int, h: int, angle: float, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotation matrix about the centre and the pixels at least ``r`` inside the turned frame."""
    import cv2

    M = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    valid = cv2.warpAffine(np.ones((h, w), np.uint8), M, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return M, cv2.erode(valid, disc, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)


def _tilt_check(fa: Features, fb: Features) -> PairCheck | None:
    """Small images (too few keypoints to align): a search over slight rotations at each right angle.

    Run at the originals' own resolution, so it is cheap: every right angle at a coarse step, then
    the best one refined; the edge band and rotation fill are left out as in the keypoint check.
    """
    import cv2

    if min(fa.scale, fb.scale) < SMALL_SCALE:
        return None
    h, w = fa.gray.shape
    n = max(8, round(max(h, w) / fa.scale))
    size = (max(8, round(w * n / max(h, w))), max(8, round(h * n / max(h, w))))
    a = cv2.resize(fa.smooth, size, interpolation=cv2.INTER_AREA)
    ga = cv2.resize(fa.gray, size, interpolation=cv2.INTER_AREA)
    r = int(np.ceil(3 * max(BLUR_SIGMA, fa.scale) * n / max(h, w)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    turns = []
    for k in range(4):
        rb, gb = np.rot90(fb.smooth, k), np.rot90(fb.gray, k)
        if abs(rb.shape[0] / rb.shape[1] - h / w) > 0.05 * h / w:
            continue
        turns.append((k, cv2.resize(np.ascontiguousarray(rb), size, interpolation=cv2.INTER_AREA),
                      cv2.resize(np.ascontiguousarray(gb), size, interpolation=cv2.INTER_AREA)))

    def score(k: int, rb: np.ndarray, gb: np.ndarray, angle: float) -> PairCheck:
        M, inner = _tilt_frame(size[0], size[1], angle, r)
        wb = cv2.warpAffine(rb, M, size, flags=cv2.INTER_LINEAR, borderValue=0)
        raw = cv2.warpAffine(gb, M, size, flags=cv2.INTER_LINEAR, borderValue=0)
        fill = ((raw < FILL_BLACK) & (ga >= FILL_BLACK)) | ((ga < FILL_BLACK) & (raw >= FILL_BLACK))
        fill = cv2.dilate(fill.astype(np.uint8), disc).astype(bool)
        return PairCheck(_ncc(a, wb, inner & ~fill), "tilt", 0, 90.0 * k + angle, 1.0, float(inner.mean()))

    coarse = [float(x) for x in np.arange(-TILT, TILT + 1e-6, 2 * TILT_STEP) if x != 0]
    best = max((score(k, rb, gb, x) for k, rb, gb in turns for x in coarse), key=lambda c: c.score, default=None)
    if best is None:
        return None
    k = int(round(best.rotation / 90.0)) % 4
    x0 = best.rotation - 90.0 * k
    _, rb, gb = next(t for t in turns if t[0] == k)
    for x in (x0 - TILT_STEP, x0 + TILT_STEP):
        if x != 0 and abs(x) <= TILT + TILT_STEP:
            c = score(k, rb, gb, x)
            if c.score > best.score:
                best = c
    return best


def _crop_check(fa: Features, fb: Features) -> PairCheck | None:
    """``fb`` as an unscaled crop of ``fa`` (or the reverse): template matching at original scale."""
    import cv2

    best = None
    for big, small, swap in ((fa, fb, False), (fb, fa, True)):
        f = big.scale / small.scale  # small's pixels brought to big's resolution
        h, w = round(small.smooth.shape[0] * f), round(small.smooth.shape[1] * f)
        bh, bw = big.smooth.shape
        if not (h <= bh and w <= bw) or h * w < 0.45 * bh * bw or (h, w) == (bh, bw):
            continue
        tmpl = cv2.resize(small.smooth, (w, h), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        res = cv2.matchTemplate(big.smooth, tmpl, cv2.TM_CCOEFF_NORMED)
        score = float(res.max())
        if best is None or score > best.score:
            best = PairCheck(score, "crop", 0, 0.0, f if not swap else 1 / f, 1.0)
    return best


def compare(fa: Features, fb: Features) -> PairCheck:
    """Best alignment of ``fb`` onto ``fa`` and the correlation of the aligned pixels (-1..1).

    When both images have plenty of keypoints but none line up, a whole-image correlation is
    discounted: smooth look-alikes (a leaf on a plain background) correlate well at low frequency.
    Two flat images (calm water: nothing but noise) must also agree closely in colour; even then
    their correlation is mostly noise, so featureless look-alikes are not called duplicates.
    """
    dc = 0.0
    flat = max(float(fa.smooth.std()), float(fb.smooth.std())) < FLAT
    if fa.chroma is not None and fb.chroma is not None:
        dc = float(np.abs(fa.chroma - fb.chroma).max())
        if dc > MAX_CHROMA or (flat and dc > FLAT_CHROMA):
            return PairCheck(0.0, "colour")
    kp = _keypoint_check(fa, fb)
    if kp is not None and kp.score >= 0.5:
        return kp
    rot = _rotation_check(fa, fb)
    # a slight turn of a right angle still correlates somewhat unaligned: search only then
    tilt = _tilt_check(fa, fb) if rot.score >= TILT_GATE else None
    alts = [c for c in (rot, _crop_check(fa, fb), tilt) if c is not None]
    best = max(alts, key=lambda c: c.score)
    rich = min(1.0, min(len(fa.points), len(fb.points)) / RICH)
    best.score = 1.0 - (1.0 - best.score) * (1.0 + RICH_PENALTY * rich)
    if kp is not None and kp.score > best.score:
        return kp
    return best
