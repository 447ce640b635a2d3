"""Pixel-level verification of a candidate image pair: is one a transformed copy of the other?

Global embeddings find candidates but confuse a crop with a look-alike. Here a pair is aligned
(SIFT keypoints + RANSAC similarity transform: scale, turn and shift, nothing else, so a view of
the same scene from elsewhere does not fit; or one of the four right-angle rotations when too few
keypoints match; small images also get a search over slight turns of each right angle), also with
the second image mirrored, and the aligned pixels are compared by correlation: Pearson, which
ignores brightness and contrast, and Spearman (ranks), which ignores any monotone colour curve.
One image must lie (nearly) inside the other: a crop, a thumbnail or a padded copy is a copy, an
overlapping neighbour tile is not. A copy with part of its content erased or overlaid (an edited
photo, a watermark) scores on the part that still matches, when that part is most of the picture
and matches almost exactly. A copy scores near 1; two different leaves of one disease or two
patches of one land-cover class score far lower. OpenCV is imported inside the functions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

SIDE = 256           # images are compared with their longer side at this many pixels ...
MIN_SIDE = 128       # ... or at twice their own size when smaller (a 64 px patch: 128, SIFT 2x cheaper)
MIN_INLIERS = 10     # RANSAC inliers needed to trust a keypoint alignment
CONTAIN = 0.85       # share of one image's frame that must lie inside the other's (crop, not neighbour)
BLUR_SIGMA = 2.0     # both sides are low-passed alike, so a blurred copy still correlates
RICH = 30            # keypoints an image needs before a failed keypoint alignment counts against it
MAX_CHROMA = 0.15    # mean colour shares of a textured copy stay this close (a colour grade moves them less)
FLAT = 4.0           # grey-level spread below which correlation means little (water, bare soil)
FLAT_CHROMA = 0.015  # ... and colours must agree this closely instead
FILL_BLACK = 8       # grey level under which a pixel may be the black fill of a rotation
SMALL_SCALE = 2.0    # images upscaled at least this much (<= 128 px) get the slight-rotation search
TILT = 10.0          # ... over this many degrees either way
TILT_STEP = 1.0
TILT_GATE = 0.3      # ... tried only when some right angle correlates this well unaligned
RICH_PENALTY = 9.0   # a textured pair whose keypoints do not line up: correlation gap x (1 + this)
SURE = 0.95          # a score this high needs no second look (mirrored, ranks)
PARTIAL_INLIERS = 20  # keypoint inliers before a partly matching pair is looked at cell by cell
CELLS = 8            # ... on a CELLS x CELLS grid of the first image
CELL_MATCH = 0.9     # a cell matches when its own correlation reaches this
PARTIAL_SHARE = 0.6  # an edited copy: at least this share of the textured cells match ...
PARTIAL_SCORE = 0.97  # ... and the matching cells together correlate this well
COLOUR_SHIFT = 0.02  # mean colour shares or grey level (0-1) moved this much: a colour change
TINY_GATE = 0.8      # keypoint-rich pairs go on to whole-image checks only when 16 x 16 views correlate so
TRIM = 3.0           # robust deviations from the line of a copy's pixels beyond which a pixel was overlaid
CROP_AREA = 0.2      # an unscaled crop is searched for down to this share of the other's area
PRE = 96             # strongest keypoints of each side matched first: a cheap rejection ...
PRE_MATCHES = 8      # ... unless this many of their matches agree on one similarity transform
FAST_VARIANTS = 2    # turns/flips (best 16 x 16 matches first) tried by the quick whole-picture check ...
FAST_OVERLAP = 0.9   # ... which accepts a copy shifted by at most this much overlap ...
FAST_FINE = 0.9      # ... whose fine texture (``Features.fine``) correlates this well, aligned ...
FAST_FILL = 0.01     # ... and with (nearly) no part black in one picture only (edited: the full check)
# SIFT descriptors (4 x 4 cells x 8 orientations) of the mirrored image: the cell rows reverse and
# the orientation bins run backwards (checked against descriptors recomputed on a flipped image)
_IDX = np.arange(128).reshape(4, 4, 8)
MIRROR_PERM = _IDX[::-1][:, :, (-np.arange(8)) % 8].reshape(-1)


@dataclass
class PairCheck:
    """Outcome of comparing two images: correlation after alignment and how it was aligned.

    ``coverage``: share of the first image's frame that the second covers (below 1: a crop);
    ``inside``: share of the second image's frame that lies inside the first (below 1: padded or
    wider); ``edited``: share of the textured overlap that does not match (an edited copy);
    ``colour``: the colours or grey levels differ (a grade, a filter, brightness)."""

    score: float
    method: str          # "whole", "keypoints", "rotation", "tilt", "crop", "colour" or "none"
    inliers: int = 0
    rotation: float = 0.0  # degrees, of the second image relative to the first
    scale: float = 1.0
    overlap: float = 0.0
    mirrored: bool = False
    coverage: float = 1.0
    inside: float = 1.0
    edited: float = 0.0
    colour: bool = False


@dataclass
class Features:
    """What verification needs of one image, computed once: grey pixels and, when first asked for
    (``points``, ``desc``), SIFT keypoints: a pair that the quick whole-picture check accepts
    (``_fast_accept``) never needs them."""

    gray: np.ndarray      # uint8, longer side = SIDE (or 2x its own, at least MIN_SIDE)
    smooth: np.ndarray    # gray low-passed (about one original pixel), float32, for correlation
    _points: np.ndarray | None = None  # (n, 2) float32 keypoint positions (``points``)
    _desc: np.ndarray | None = None
    scale: float = 1.0    # resize factor from the original pixels to ``gray``
    chroma: np.ndarray | None = None  # mean r, g, b shares: kept by brightness changes, not by a new scene
    tiny: np.ndarray | None = None    # 16 x 16 squeezed, zero-mean unit vector: a cheap first look
    _mirror: "Features | None" = field(default=None, repr=False)
    _of: "Features | None" = field(default=None, repr=False)  # the unflipped image (of a ``mirrored``)
    _fine: np.ndarray | None = field(default=None, repr=False)

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _keypoints(self) -> None:
        with self._lock:  # pairs sharing this image may be compared at once: detect once
            if self._points is not None:
                return
            if self._of is None:
                pts, desc = _sift(self.gray)
            else:  # mirrored: the unflipped image's keypoints, flipped
                pts = self._of.points.copy()
                pts[:, 0] = (self.gray.shape[1] - 1) - pts[:, 0]
                desc = self._of._desc
                desc = np.ascontiguousarray(desc[:, MIRROR_PERM]) if desc is not None else None
            # SIFT descriptors are whole numbers 0-255: kept as bytes (a quarter of the memory)
            self._desc = desc.astype(np.uint8) if desc is not None else None
            self._points = pts

    @property
    def points(self) -> np.ndarray:
        self._keypoints()
        return self._points

    @property
    def desc(self) -> np.ndarray | None:
        """(n, 128) float32 SIFT descriptors, strongest keypoint first."""
        self._keypoints()
        return self._desc.astype(np.float32) if self._desc is not None else None

    @property
    def fine(self) -> np.ndarray:
        """``smooth`` high-passed (what is left of it above its own blur scale): the fine texture
        and noise that a copy shares and a look-alike does not."""
        if self._fine is None:
            import cv2

            sigma = max(BLUR_SIGMA, self.scale)
            self._fine = self.smooth - cv2.GaussianBlur(self.smooth, (0, 0), sigma)
        return self._fine

    def nbytes(self) -> int:
        return int(self.gray.nbytes + self.smooth.nbytes
                   + sum(x.nbytes for x in (self._points, self._desc, self._fine) if x is not None))


def _sift(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    import cv2

    sift = cv2.SIFT_create(nfeatures=1000, contrastThreshold=0.01)
    kps, desc = sift.detectAndCompute(gray, None)
    order = np.argsort([-k.response for k in kps], kind="stable")  # strongest first (``PRE``)
    pts = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)[order]
    return pts, (desc[order] if desc is not None else None)


def features(rgb: np.ndarray, side: int = SIDE) -> Features:
    """Grey image resized to ``side`` on its longer edge (small images: twice their size, at least
    ``MIN_SIDE``), its smoothed copy; SIFT keypoints follow when first needed."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    h, w = gray.shape[:2]
    side = min(side, max(MIN_SIDE, 2 * max(h, w)))
    s = side / float(max(h, w))
    size = (max(8, round(w * s)), max(8, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    g = cv2.resize(np.ascontiguousarray(gray, dtype=np.uint8), size, interpolation=interp)
    gf = g.astype(np.float32)
    sigma = max(BLUR_SIGMA, s)  # at least one original pixel: JPEG blocks of a small image vanish
    chroma = None
    if rgb.ndim == 3:
        c = np.ascontiguousarray(rgb[:, :, :3])
        # black or white fill (letterbox, padding, an erased part) is no colour of the picture
        fill = (c.max(axis=2) < FILL_BLACK) | (c.min(axis=2) > 255 - FILL_BLACK)
        m = np.asarray(cv2.mean(c, mask=None if fill.all() else (~fill).astype(np.uint8)))[:3]
        chroma = m / max(1e-6, float(m.sum()))
    return Features(g, cv2.GaussianBlur(gf, (0, 0), sigma), scale=s, chroma=chroma, tiny=_tiny(gf))


def _tiny(g: np.ndarray) -> np.ndarray:
    import cv2

    t = cv2.resize(g, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)
    t -= t.mean()
    return t / max(1e-6, float(np.linalg.norm(t)))


def mirrored(f: Features) -> Features:
    """``f`` of the image flipped left to right: pixels flipped, keypoints mirrored and their
    descriptors permuted (``MIRROR_PERM``), so nothing is detected again; kept on ``f``."""
    if f._mirror is None:
        f._mirror = Features(np.ascontiguousarray(f.gray[:, ::-1]), np.ascontiguousarray(f.smooth[:, ::-1]),
                             scale=f.scale, chroma=f.chroma,
                             tiny=np.ascontiguousarray(f.tiny[:, ::-1]) if f.tiny is not None else None, _of=f)
    return f._mirror


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


def _rank_ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Spearman correlation over ``mask``: the same for any monotone change of either side's tones
    (curves, gamma, a filter), where Pearson only forgives brightness and contrast."""
    from scipy.stats import rankdata

    a, b = a[mask], b[mask]
    if a.size < 64:
        return 0.0
    return _ncc(rankdata(a).astype(np.float32), rankdata(b).astype(np.float32))


def _frame_share(M: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> float:
    """Share of the ``src`` frame (h, w) that ``M`` maps inside the ``dst`` frame (h, w)."""
    import cv2

    h, w = src
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32).reshape(-1, 1, 2)
    poly = cv2.transform(corners, M).reshape(-1, 2)
    area = abs(float(cv2.contourArea(poly)))
    frame = np.array([[0, 0], [dst[1], 0], [dst[1], dst[0]], [0, dst[0]]], np.float32)
    inter, _ = cv2.intersectConvexConvex(poly.astype(np.float32), frame)
    return float(inter) / max(1e-6, area)


def _cells(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Cell by cell on a ``CELLS`` grid: (share of the textured cells that match, correlation of the
    matching cells together). An edited copy matches everywhere but where it was changed."""
    h, w = a.shape
    ys = np.linspace(0, h, CELLS + 1).astype(int)
    xs = np.linspace(0, w, CELLS + 1).astype(int)
    good = np.zeros_like(mask)
    textured = matched = 0
    for y0, y1 in zip(ys[:-1], ys[1:]):
        for x0, x1 in zip(xs[:-1], xs[1:]):
            m = mask[y0:y1, x0:x1]
            if m.sum() < 0.5 * m.size:
                continue
            ca, cb = a[y0:y1, x0:x1][m], b[y0:y1, x0:x1][m]
            if max(float(ca.std()), float(cb.std())) < FLAT:
                continue
            textured += 1
            if _ncc(ca, cb) >= CELL_MATCH:
                matched += 1
                good[y0:y1, x0:x1] |= m
    if not textured:
        return 0.0, 0.0
    return matched / textured, _ncc(a, b, good) if matched else 0.0


def _trimmed(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """A robust line through the aligned pixels: (share of pixels within ``TRIM`` robust deviations
    of it, their correlation). A watermark, caption or painted-out part is an outlier of a copy's
    line, so the rest correlates almost exactly; two different pictures scatter everywhere."""
    x, y = a[mask].astype(np.float64), b[mask].astype(np.float64)
    if x.size < 64 or float(x.std()) < FLAT:
        return 0.0, 0.0
    keep = np.ones(x.size, bool)
    for _ in range(3):
        p, q = np.polyfit(x[keep], y[keep], 1)
        r = y - (p * x + q)
        dev = np.abs(r - np.median(r[keep]))
        keep = dev <= max(1.0, TRIM * 1.4826 * float(np.median(dev[keep])))
    if keep.sum() < 64:
        return 0.0, 0.0
    return float(keep.mean()), _ncc(x[keep], y[keep])


def _pre_check(fa: Features, fb: Features, da: np.ndarray, db: np.ndarray, matches) -> bool:
    """Could the pair align? The ``PRE`` strongest keypoints of each side matched against all of
    the other's, and the matches must agree on one similarity transform (``PRE_MATCHES`` inliers).
    Look-alike textures (leaves, fields) find a few matches by chance, but not consistent ones."""
    import cv2

    fwd = matches(db[:PRE], da)
    back = matches(da[:PRE], db)
    if len(fwd) + len(back) < PRE_MATCHES:
        return False
    src = np.concatenate([fb.points[[m.queryIdx for m in fwd]].reshape(-1, 2),
                          fb.points[[m.trainIdx for m in back]].reshape(-1, 2)])
    dst = np.concatenate([fa.points[[m.trainIdx for m in fwd]].reshape(-1, 2),
                          fa.points[[m.queryIdx for m in back]].reshape(-1, 2)])
    M, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=4.0,
                                         maxIters=500, confidence=0.99, refineIters=0)
    return M is not None and inl is not None and int(inl.sum()) >= PRE_MATCHES


def _keypoint_check(fa: Features, fb: Features) -> PairCheck | None:
    import cv2

    da, db = fa.desc, fb.desc
    if da is None or db is None or len(da) < 4 or len(db) < 4:
        return None
    matcher = cv2.BFMatcher(cv2.NORM_L2)

    def matches(q, t):
        return [m[0] for m in matcher.knnMatch(q, t, k=2) if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]

    if len(db) > 2 * PRE and len(da) > 2 * PRE and not _pre_check(fa, fb, da, db, matches):
        return None
    pairs = matcher.knnMatch(db, da, k=2)
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
    if not 0.1 <= scale <= 10.0:
        return None
    h, w = fa.gray.shape
    inside = _frame_share(M, fb.gray.shape, (h, w))
    coverage = _frame_share(cv2.invertAffineTransform(M), (h, w), fb.gray.shape)
    warped = cv2.warpAffine(fb.smooth, M, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    valid = cv2.warpAffine(np.ones_like(fb.gray, np.uint8), M, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    valid = cv2.erode(valid, np.ones((7, 7), np.uint8))
    area_b = fb.gray.size * scale * scale
    overlap = float(np.count_nonzero(valid)) / max(1.0, min(float(fa.gray.size), area_b))
    check = PairCheck(0.0, "keypoints", n_in, angle, scale, overlap, coverage=coverage, inside=inside)
    if max(inside, coverage) < CONTAIN:  # neither lies inside the other: neighbours, not copies
        return check
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
    inner = cv2.erode(valid, disc, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    mask = inner & ~fill
    check.score = _ncc(fa.smooth, warped, mask)
    check.colour = _tone_change(fa.smooth[mask], warped[mask])
    if abs(angle - 90.0 * round(angle / 90.0)) < 1.0:  # no rotation corners: fill inside is an erasure
        check.edited = float(np.count_nonzero(fill & inner)) / max(1, np.count_nonzero(inner))
    if check.score < SURE:
        check.score = max(check.score, _rank_ncc(fa.smooth, warped, mask))
    if check.score < SURE and n_in >= PARTIAL_INLIERS:
        # an edited copy: part of it erased, painted or written over; the rest matches exactly
        # (erased areas are black in one image only, which the fill rule above left out, so they
        # are judged on all pixels of the aligned frame)
        for share, part in (_cells(fa.smooth, warped, inner), _trimmed(fa.smooth, warped, inner)):
            if share >= PARTIAL_SHARE and part >= PARTIAL_SCORE and part > check.score:
                check.score, check.edited = part, max(check.edited, 1.0 - share)
    return check


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
        if not (h <= bh and w <= bw) or h * w < CROP_AREA * bh * bw or (h, w) == (bh, bw):
            continue
        tmpl = cv2.resize(small.smooth, (w, h), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        res = cv2.matchTemplate(big.smooth, tmpl, cv2.TM_CCOEFF_NORMED)
        score = float(res.max())
        if best is None or score > best.score:
            share = h * w / float(bh * bw)
            best = PairCheck(score, "crop", 0, 0.0, f if not swap else 1 / f, 1.0,
                             coverage=1.0 if swap else share, inside=share if swap else 1.0)
    return best


def _fast_accept(fa: Features, fb: Features) -> PairCheck | None:
    """A whole-picture copy accepted without keypoints: ``fb`` in one of its eight turns/flips
    (those whose 16 x 16 views match ``fa`` best), resized to ``fa``'s frame and shifted by phase
    correlation, correlates at least ``SURE`` and its fine texture at least ``FAST_FINE``. That is
    a resized, re-encoded, turned, mirrored or graded copy (or one shifted a little); a look-alike
    shares the coarse picture at most, not the fine texture, and anything else (crops, edits,
    rotations by other angles) is left to the full check: None."""
    import cv2

    if fa.tiny is None or fb.tiny is None or min(float(fa.smooth.std()), float(fb.smooth.std())) < FLAT:
        return None
    h, w = fa.gray.shape
    variants = sorted(((float((fa.tiny * np.rot90(fb.tiny[:, ::-1] if flip else fb.tiny, k)).sum()), flip, k)
                       for flip in (False, True) for k in range(4)), reverse=True)
    r = int(np.ceil(3 * max(BLUR_SIGMA, fa.scale)))
    for _, flip, k in variants[:FAST_VARIANTS]:
        def turn(x: np.ndarray) -> np.ndarray:
            x = np.rot90(x[:, ::-1] if flip else x, k)
            if abs(x.shape[0] / x.shape[1] - h / w) > 0.05 * h / w:
                return None
            x = np.ascontiguousarray(x)
            return x if x.shape == (h, w) else cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA)

        smooth, fine, gray = turn(fb.smooth), turn(fb.fine), turn(fb.gray)
        if smooth is None:
            continue
        (dx, dy), _ = cv2.phaseCorrelate(fa.fine, fine)
        share = max(0.0, w - abs(dx)) * max(0.0, h - abs(dy)) / float(w * h)
        if share < FAST_OVERLAP:
            continue
        M = np.float32([[1, 0, -dx], [0, 1, -dy]])
        smooth, fine = (cv2.warpAffine(x, M, (w, h), flags=cv2.INTER_LINEAR) for x in (smooth, fine))
        gray = cv2.warpAffine(gray, M, (w, h), flags=cv2.INTER_NEAREST)
        inner = np.zeros((h, w), bool)
        inner[max(0, int(np.ceil(-dy))) + r:h - max(0, int(np.ceil(dy))) - r,
              max(0, int(np.ceil(-dx))) + r:w - max(0, int(np.ceil(dx))) - r] = True
        if inner.sum() < 0.5 * h * w:
            continue
        fill = (gray < FILL_BLACK) != (fa.gray < FILL_BLACK)
        if np.count_nonzero(fill & inner) > FAST_FILL * np.count_nonzero(inner):
            continue
        score = _ncc(fa.smooth, smooth, inner)
        if score >= SURE and _ncc(fa.fine, fine, inner) >= FAST_FINE:
            return PairCheck(score, "whole", 0, (-90.0 * k) % 360.0, h / float(fb.gray.shape[1 if k % 2 else 0]), share,
                             mirrored=flip, coverage=share, inside=share,
                             colour=_tone_change(fa.smooth[inner], smooth[inner]))
    return None


def _tone_change(a: np.ndarray, b: np.ndarray) -> bool:
    """Grey levels of two aligned pixel sets differ in level or spread beyond re-encoding noise."""
    if a.size < 64:
        return False
    ma, mb = float(a.mean()), float(b.mean())
    sa, sb = float(a.std()), float(b.std())
    # spread is compared loosely: the side shown at lower resolution is smoothed more
    return abs(ma - mb) > 2 * COLOUR_SHIFT * 255 or not 0.7 <= (sb + 1) / (sa + 1) <= 1 / 0.7


def _oriented(fa: Features, fb: Features) -> PairCheck:
    """``compare`` for one orientation of ``fb`` (turns included, mirror not)."""
    kp = _keypoint_check(fa, fb)
    if kp is not None and kp.score >= 0.5:
        return kp
    rich = min(1.0, min(len(fa.points), len(fb.points)) / RICH)
    if rich >= 1.0 and fa.tiny is not None and fb.tiny is not None and \
            max(float((fa.tiny * np.rot90(fb.tiny, k)).sum()) for k in range(4)) < TINY_GATE:
        # keypoint-rich and unaligned: only a near-identical picture could still score (the
        # penalty below), and that shows already at 16 x 16
        return kp if kp is not None else PairCheck(0.0, "none")
    rot = _rotation_check(fa, fb)
    # a slight turn of a right angle still correlates somewhat unaligned: search only then
    tilt = _tilt_check(fa, fb) if rot.score >= TILT_GATE else None
    alts = [c for c in (rot, _crop_check(fa, fb), tilt) if c is not None]
    best = max(alts, key=lambda c: c.score)
    best.score = 1.0 - (1.0 - best.score) * (1.0 + RICH_PENALTY * rich)
    if kp is not None and kp.score > best.score:
        return kp
    return best


def _either_way(fa: Features, fb: Features) -> PairCheck:
    """``_oriented`` of ``fb`` onto ``fa`` and, unless that is sure, of ``fa`` onto ``fb`` (keypoint
    matching and RANSAC are not symmetric: a small or edited picture may align one way only),
    told in ``fa``'s frame."""
    best = _oriented(fa, fb)
    if best.score < SURE:
        back = _oriented(fb, fa)
        if back.score > best.score:
            back.rotation = -back.rotation
            back.scale = 1.0 / back.scale if back.scale else 1.0
            back.coverage, back.inside = back.inside, back.coverage
            best = back
    return best


def compare(fa: Features, fb: Features) -> PairCheck:
    """Best alignment of ``fb`` onto ``fa`` (or of ``fb`` mirrored) and the correlation of the
    aligned pixels (-1..1), with what changed between them (``PairCheck``).

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
    best = _fast_accept(fa, fb) or _either_way(fa, fb)  # a whole-picture copy needs no keypoints
    if best.score < SURE:
        flip = _either_way(fa, mirrored(fb))
        if flip.score > best.score:
            best = flip
            best.mirrored = True
    whole = best.coverage >= 0.9 and best.inside >= 0.9
    best.colour = best.colour or (whole and dc > COLOUR_SHIFT) or (best.method not in ("keypoints", "whole")
                                                   and whole and _tone_change(fa.smooth, fb.smooth))
    return best
