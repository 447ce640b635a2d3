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
patches of one land-cover class score far lower. Pictures with too few keypoints to align (calm
water, a dark forest patch, a dim video frame) are aligned densely instead (``_dense_check``:
template matching of a mid-frequency band over turns, flips, small zooms, shifts, crops and
padding) and scored on that band evened out, so that one strong edge two pictures share (a shore)
does not make them copies; the whole-picture turn checks must hold on that band too, and fill
(padding, an erased box) is left out of every correlation, so two pictures with fill in the same
place do not correlate through it. A strong colour grade (mean colours moved by more than
``MAX_CHROMA``) counts only when keypoints align the pair and every colour channel of one maps onto
the other's through a monotone curve (``_graded``). OpenCV is imported inside the functions.
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
MAX_CHROMA = 0.15    # mean colour shares of a copy mostly stay this close; beyond (a strong grade or another
#                      picture) only a keypoint alignment that also holds channel by channel counts (``_graded``)
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
DENSE_POOR = 2 * RICH  # pairs with fewer keypoints on either side are also aligned densely (``_dense_check``)
DENSE_VARIANTS = 2   # ... as whole frames in this many turns/flips (16 x 16 views of the pictures agreeing best) ...
DENSE_BAND = (2.0, 8.0)  # ... comparing this band (blur scales in units of the smoothing sigma) ...
DENSE_ZOOM = tuple(1.0 + 0.02 * np.arange(-3, 4))  # ... at these zooms of the whole frame (recaptures) ...
DENSE_SHIFT = 0.08   # ... and shifts up to this share of the side ...
DENSE_CROP = 0.1     # ... or as a crop down to this share of the other's area ...
DENSE_SIGNAL = 0.5   # band spread (grey levels) each picture needs: below it, nothing but noise to compare
DENSE_CELL_FLAT = 0.5  # cells of the evened band (``_even``: unit spread) spreading less are left out as flat
DENSE_FITS = 4       # places scored (surest first: ``_dense_starts``)
DENSE_CLIMB = 3      # ... and the best of them moved by whole pixels while that scores higher, at most this often
DENSE_WORK = 0.5     # share of the verification frame the dense check works at (its band is coarse)
COLOUR_SIDE = 128    # a copy whose mean colours moved more than MAX_CHROMA (a strong grade) must align by
#                      keypoints and then correlate channel by channel, on views this long (or the original's size)
DENSE_UNIQUE = 0.05  # a dense placement must correlate this much better than any shifted by the band's coarse
#                      scale or more (``_peak``: a road matches itself all along it); else its score is that margin
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
    transform: np.ndarray | None = field(default=None, repr=False)  # 2 x 3, second frame -> first (keypoints)


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
    colour: np.ndarray | None = None  # RGB, longer side ``COLOUR_SIDE``: a grade is checked channel by channel
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
                   + sum(x.nbytes for x in (self._points, self._desc, self._fine, self.colour) if x is not None))


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
    chroma = colour = None
    if rgb.ndim == 3:
        c = np.ascontiguousarray(rgb[:, :, :3])
        # black or white fill (letterbox, padding, an erased part) is no colour of the picture
        fill = (c.max(axis=2) < FILL_BLACK) | (c.min(axis=2) > 255 - FILL_BLACK)
        m = np.asarray(cv2.mean(c, mask=None if fill.all() else (~fill).astype(np.uint8)))[:3]
        chroma = m / max(1e-6, float(m.sum()))
        k = min(1.0, COLOUR_SIDE / float(max(h, w)))
        colour = cv2.resize(c, (max(8, round(w * k)), max(8, round(h * k))), interpolation=cv2.INTER_AREA)
        colour = cv2.GaussianBlur(colour, (0, 0), 0.6)  # JPEG's coarse colour blocks, as a copy's blur
    return Features(g, cv2.GaussianBlur(gf, (0, 0), sigma), scale=s, chroma=chroma, tiny=_tiny(gf), colour=colour)


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
                             tiny=np.ascontiguousarray(f.tiny[:, ::-1]) if f.tiny is not None else None,
                             colour=np.ascontiguousarray(f.colour[:, ::-1]) if f.colour is not None else None, _of=f)
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


def _cells(a: np.ndarray, b: np.ndarray, mask: np.ndarray, flat: float = FLAT) -> tuple[float, float]:
    """Cell by cell on a ``CELLS`` grid: (share of the textured cells that match, correlation of the
    matching cells together). An edited copy matches everywhere but where it was changed. (Each
    cell's sums at once, ``np.add.reduceat``; a cell is judged on its pixels inside ``mask``.)"""
    share, good = _matching_cells(a, b, mask, flat)
    return (share, _ncc(a, b, good)) if share else (0.0, 0.0)


def _matching_cells(a: np.ndarray, b: np.ndarray, mask: np.ndarray, flat: float = FLAT) -> tuple[float, np.ndarray]:
    """``_cells``: (share of the textured cells that match, their pixels inside ``mask``)."""
    h, w = a.shape
    ys = np.linspace(0, h, CELLS + 1).astype(int)
    xs = np.linspace(0, w, CELLS + 1).astype(int)
    m = mask.astype(np.float64)
    x, y = a.astype(np.float64) * m, b.astype(np.float64) * m

    def per_cell(v: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.add.reduceat(v, ys[:-1], axis=0), xs[:-1], axis=1)

    n, sx, sy = per_cell(m), per_cell(x), per_cell(y)
    sxx, syy, sxy = per_cell(x * x), per_cell(y * y), per_cell(x * y)
    size = np.diff(ys)[:, None] * np.diff(xs)[None, :]
    nn = np.maximum(n, 1.0)
    vx = np.maximum(sxx - sx * sx / nn, 0.0)
    vy = np.maximum(syy - sy * sy / nn, 0.0)
    cov = sxy - sx * sy / nn
    textured = (n >= 0.5 * size) & (np.sqrt(np.maximum(vx, vy) / nn) >= flat)
    corr = cov / np.sqrt(np.maximum(vx * vy, 1e-12))
    match = textured & (n >= 64) & (corr >= CELL_MATCH)
    good = np.repeat(np.repeat(match, np.diff(ys), axis=0), np.diff(xs), axis=1) & mask
    return (float(match.sum()) / float(textured.sum()) if match.any() else 0.0), good


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
    check = PairCheck(0.0, "keypoints", n_in, angle, scale, overlap, coverage=coverage, inside=inside, transform=M)
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


def _near(x: np.ndarray, r: int) -> np.ndarray:
    """``x`` (bool) widened by a disc of radius ``r``."""
    import cv2

    if r <= 0 or not x.any():
        return x
    return cv2.dilate(x.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0


def _picture_mask(ga: np.ndarray, gb: np.ndarray, r: int, inner: np.ndarray | None = None) -> np.ndarray:
    """Pixels of two aligned grey frames that are picture in both and at least ``r`` away from
    fill in either (padding bars, an erased box, a rotation's corners; their smoothed edges bleed
    into the picture), and ``3 r`` away from fill in both: two pictures with fill in the same place
    (two padded or two edited copies of different flat patches) share its outline and its JPEG
    ringing, which must not make them correlate."""
    ca, cb = _content(ga), _content(gb)
    mask = ~(_near(~(ca & cb), r) | _near(~ca & ~cb, 3 * r))
    return mask & inner if inner is not None else mask


def _evened_ncc(ga: np.ndarray, gb: np.ndarray, mask: np.ndarray, sigma: float, work: float = DENSE_WORK) -> float:
    """The dense check's measure for two aligned grey frames (``DENSE_BAND`` of the picture in
    both, evened by ``_even``, at ``work`` of the frame, whose smoothing scale is ``sigma``)
    correlated over ``mask``: a copy keeps it, two pictures that share one strong edge (a shore) or
    a smooth layout do not. 0 when there is nothing to compare: too little overlap, or a band
    spreading less than ``DENSE_SIGNAL`` (nearly flat water: what is left of it, a smooth gradient,
    correlates as well between two look-alike lake patches, 0.89, as between copies)."""
    import cv2

    a, b, m = ga, gb, mask
    if work != 1.0:
        h, w = ga.shape
        size = (max(8, round(w * work)), max(8, round(h * work)))
        a, b = (cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (ga, gb))
        m = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        sigma *= work
    both = _content(a) & _content(b)
    ba, bb = _band(a, both, sigma), _band(b, both, sigma)
    m &= both
    if np.count_nonzero(m) < 64 or min(float(ba[m].std()), float(bb[m].std())) < DENSE_SIGNAL:
        return 0.0
    return _ncc(_even(ba, both, sigma), _even(bb, both, sigma), m)


def _rotation_check(fa: Features, fb: Features) -> tuple[PairCheck, float]:
    """``fb`` turned by each right angle and resized onto ``fa``'s frame: the smoothed pictures
    correlated over what is picture in both (``_picture_mask``); with the best turn's correlation
    of the evened band (``_evened_ncc``), which ``_oriented`` also requires."""
    import cv2

    h, w = fa.gray.shape
    sigma = max(BLUR_SIGMA, fa.scale, fb.scale * max(h, w) / max(fb.gray.shape))
    r = int(np.ceil(3 * sigma))
    best, place = PairCheck(0.0, "rotation"), None
    for k in range(4):
        rb = np.rot90(fb.smooth, k)
        if k % 2 and abs(rb.shape[0] / rb.shape[1] - h / w) > 0.05 * h / w:
            continue
        rb = cv2.resize(np.ascontiguousarray(rb), (w, h), interpolation=cv2.INTER_AREA)
        gb = cv2.resize(np.ascontiguousarray(np.rot90(fb.gray, k)), (w, h), interpolation=cv2.INTER_AREA)
        mask = _picture_mask(fa.gray, gb, r)
        s = _ncc(fa.smooth, rb, mask)
        if s > best.score:
            best, place = PairCheck(s, "rotation", 0, 90.0 * k, 1.0, 1.0), (gb, mask)
    return best, (_evened_ncc(fa.gray, place[0], place[1], sigma) if place is not None else 0.0)


@lru_cache(maxsize=256)
def _tilt_frame(w: int, h: int, angle: float, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotation matrix about the centre and the pixels at least ``r`` inside the turned frame."""
    import cv2

    M = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    valid = cv2.warpAffine(np.ones((h, w), np.uint8), M, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return M, cv2.erode(valid, disc, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)


def _tilt_check(fa: Features, fb: Features) -> tuple[PairCheck, float] | None:
    """Small images (too few keypoints to align): a search over slight rotations at each right angle.

    Run at the originals' own resolution, so it is cheap: every right angle at a coarse step, then
    the best one refined; the edge band and fill (in either picture) are left out. With the best
    tilt's correlation of the evened band (``_evened_ncc``), as ``_rotation_check``.
    """
    import cv2

    if min(fa.scale, fb.scale) < SMALL_SCALE:
        return None
    h, w = fa.gray.shape
    n = max(8, round(max(h, w) / fa.scale))
    size = (max(8, round(w * n / max(h, w))), max(8, round(h * n / max(h, w))))
    a = cv2.resize(fa.smooth, size, interpolation=cv2.INTER_AREA)
    ga = cv2.resize(fa.gray, size, interpolation=cv2.INTER_AREA)
    sigma = max(BLUR_SIGMA, fa.scale, fb.scale * max(h, w) / max(fb.gray.shape)) * n / max(h, w)
    r = int(np.ceil(3 * max(BLUR_SIGMA, fa.scale) * n / max(h, w)))
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
        # fill in either picture (not only in one) is left out: two padded or edited copies of
        # different flat patches would otherwise correlate through their fill's outline
        return PairCheck(_ncc(a, wb, _picture_mask(ga, raw, r, inner)), "tilt", 0, 90.0 * k + angle, 1.0,
                         float(inner.mean()))

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
    # the best tilt's evened band (at the originals' resolution, as coarse as the dense check works)
    M, inner = _tilt_frame(size[0], size[1], best.rotation - 90.0 * k, r)
    raw = cv2.warpAffine(gb, M, size, flags=cv2.INTER_LINEAR, borderValue=0)
    return best, _evened_ncc(ga, raw, _picture_mask(ga, raw, r, inner), sigma, work=1.0)


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
        if float(tmpl.std()) < FLAT:  # a featureless template "matches" anywhere (OpenCV gives it 1)
            continue
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
        # Hann-windowed (without, the frame's edges, which a shifted tile's do not share, outweigh the
        # texture); windowed here: given the window, OpenCV multiplies its first input in place
        hann = cv2.createHanningWindow((w, h), cv2.CV_32F)
        (dx, dy), _ = cv2.phaseCorrelate(fa.fine * hann, fine * hann)
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
        # fill in both (two padded or edited copies) is no picture: two flat patches with their
        # padding or an erased box in the same place would correlate through its outline
        inner = _picture_mask(fa.gray, gray, r, inner)
        if np.count_nonzero(inner) < 64 or float(fa.smooth[inner].std()) < FLAT:
            continue
        score = _ncc(fa.smooth, smooth, inner)
        if score >= SURE and _ncc(fa.fine, fine, inner) >= FAST_FINE:
            return PairCheck(score, "whole", 0, (-90.0 * k) % 360.0, h / float(fb.gray.shape[1 if k % 2 else 0]), share,
                             mirrored=flip, coverage=share, inside=share,
                             colour=_tone_change(fa.smooth[inner], smooth[inner]))
    return None


def _content(gray: np.ndarray) -> np.ndarray:
    """Pixels that are picture rather than fill: black or white regions (padding, a rotation's
    corners, an erased part) are left out; the opening keeps dark or bright specks of the picture."""
    import cv2

    fill = ((gray < FILL_BLACK) | (gray > 255 - FILL_BLACK)).astype(np.uint8)
    return cv2.morphologyEx(fill, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) == 0


def _band(x: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """``DENSE_BAND`` of ``x`` over the ``valid`` pixels only (normalised convolution: fill and
    erased parts neither count nor bleed into the picture next to them); 0 elsewhere."""
    import cv2

    v = valid.astype(np.float32)
    xv = x.astype(np.float32) * v
    lo, hi = (cv2.GaussianBlur(xv, (0, 0), k * sigma) / np.maximum(cv2.GaussianBlur(v, (0, 0), k * sigma), 1e-3)
              for k in DENSE_BAND)
    return (lo - hi) * v


def _even(band: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """``band`` divided by its local spread (over ``DENSE_BAND[1]`` sigmas, softened by
    ``DENSE_SIGNAL`` so that noise in flat parts is not blown up): every part of the picture counts
    alike, so a correlation is not carried by one strong edge (a shore, a road) that two different
    pictures can share."""
    import cv2

    s = DENSE_BAND[1] * sigma
    v = valid.astype(np.float32)
    local = cv2.GaussianBlur(band * band, (0, 0), s) / np.maximum(cv2.GaussianBlur(v, (0, 0), s), 1e-3)
    return band / np.sqrt(local + DENSE_SIGNAL ** 2)


def _box(g: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the picture inside ``g``: the frame less any fill around it (padding)."""
    c = _content(g)
    rows, cols = np.flatnonzero(c.any(axis=1)), np.flatnonzero(c.any(axis=0))
    if not len(rows):
        return 0, 0, g.shape[1], g.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _boxes(g: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The whole frame and, when padding shrinks it by more than 2%, the picture inside."""
    h, w = g.shape
    b = _box(g)
    inner = (b[2] - b[0]) * (b[3] - b[1]) < 0.98 * h * w
    return [(0, 0, w, h)] + ([b] if inner and (b[2] - b[0]) * (b[3] - b[1]) >= CROP_AREA * h * w else [])


def _dense_starts(a: np.ndarray, gb: np.ndarray, f: float, sigma: float,
                  whole: bool) -> list[tuple[float, np.ndarray]]:
    """Where ``gb`` (a turn/flip of the second picture) could lie on ``a`` (the first), as (band
    correlation there, 2 x 3 matrix from ``gb``'s pixels to ``a``'s). With ``whole``: one frame
    (or the picture inside its padding, ``_boxes``) on the other, at each zoom of ``DENSE_ZOOM``,
    shifted by up to ``DENSE_SHIFT`` where the bands correlate best (phase correlation was tried
    and fails on bands with erased parts); always: when one lies inside the other at the scale of
    their original pixels (``f``: ``gb``'s pixels to ``a``'s; a crop), where template matching
    puts it."""
    import cv2

    h, w = a.shape
    ca = _content(a)
    r = int(np.ceil(DENSE_BAND[0] * sigma))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    starts = []
    for sx0, sy0, sx1, sy1 in (_boxes(gb) if whole else []):
        for dx0, dy0, dx1, dy1 in _boxes(a):
            sw, sh, dw, dh = sx1 - sx0, sy1 - sy0, dx1 - dx0, dy1 - dy0
            if abs(sh / sw - dh / dw) > 0.05 * dh / dw:
                continue
            my, mx = max(1, round(DENSE_SHIFT * dh)), max(1, round(DENSE_SHIFT * dw))
            if dh - 2 * my < 8 or dw - 2 * mx < 8:
                continue
            cx, cy = (dx0 + dx1) / 2, (dy0 + dy1) / 2
            for z in DENSE_ZOOM:
                kx = ky = z * float(np.sqrt(dw * dh / float(sw * sh)))  # box onto box (one scale), zoomed
                M = np.float32([[kx, 0, cx - kx * (sx0 + sx1) / 2], [0, ky, cy - ky * (sy0 + sy1) / 2]])
                wgb = cv2.warpAffine(gb, M, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
                inb = cv2.warpAffine(np.ones_like(gb, np.uint8), M, (w, h), flags=cv2.INTER_NEAREST, borderValue=0) > 0
                both = ca & _content(wgb) & inb  # both bands over the same pixels: an erased part is in neither ...
                keep = cv2.erode(both.astype(np.uint8), disc, borderType=cv2.BORDER_CONSTANT, borderValue=0)
                ba, bb = (_band(x, both, sigma) * keep for x in (a, wgb))  # ... nor the edges next to it
                # the inner part of the placed second picture, shifted over the first by up to DENSE_SHIFT
                y0, y1, x0, x1 = max(0, dy0 - my), min(h, dy1 + my), max(0, dx0 - mx), min(w, dx1 + mx)
                res = cv2.matchTemplate(np.ascontiguousarray(ba[y0:y1, x0:x1]),
                                        np.ascontiguousarray(bb[dy0 + my:dy1 - my, dx0 + mx:dx1 - mx]),
                                        cv2.TM_CCOEFF_NORMED)
                _, c, _, (x, y) = cv2.minMaxLoc(np.nan_to_num(res, nan=-1.0))
                M[:, 2] += (x0 + x - dx0 - mx, y0 + y - dy0 - my)
                starts.append((c, M))
    for inner in (True, False):  # the second inside the first (a crop of it), or the reverse
        big, small, m = (a, gb, f) if inner else (gb, a, 1 / f)
        th, tw = round(small.shape[0] * m), round(small.shape[1] * m)
        bh, bw = big.shape
        x0, y0, x1, y1 = _box(big)  # a crop is of the picture, not of padding around it
        if th > bh or tw > bw or th * tw < DENSE_CROP * (x1 - x0) * (y1 - y0) or th * tw > 0.95 * bh * bw \
                or min(th, tw) < 8:
            continue
        t = cv2.resize(small, (tw, th), interpolation=cv2.INTER_AREA if m < 1 else cv2.INTER_LINEAR)
        res = cv2.matchTemplate(_band(big, _content(big), sigma), _band(t, _content(t), sigma), cv2.TM_CCOEFF_NORMED)
        _, c, _, (x, y) = cv2.minMaxLoc(np.nan_to_num(res, nan=-1.0))
        M = np.float32([[f, 0, x], [0, f, y]]) if inner else np.float32([[f, 0, -x * f], [0, f, -y * f]])
        starts.append((c, M))
    return starts


def _dense_score(
a: np.ndarray, gb: np.ndarray, M: np.ndarray, sigma: float) -> PairCheck:
    """``gb`` aligned onto ``a`` by ``M`` and compared on ``DENSE_BAND``, evened (``_even``), over
    the pixels that are picture in both (edges of the overlap and of erased parts left out); with a
    watermark or caption, on the cells that match (``_cells``). Nothing to compare (flat band, too
    little overlap): score 0."""
    import cv2

    h, w = a.shape
    scale = float(np.hypot(M[0, 0], M[1, 0]))
    inside = _frame_share(M, gb.shape, (h, w))
    coverage = _frame_share(cv2.invertAffineTransform(M), (h, w), gb.shape)
    check = PairCheck(0.0, "dense", 0, float(np.degrees(np.arctan2(M[1, 0], M[0, 0]))), scale, 0.0,
                      coverage=coverage, inside=inside)
    if max(inside, coverage) < CONTAIN:  # neither lies inside the other: neighbours, not copies
        return check
    wgb = cv2.warpAffine(gb, M, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    frame = cv2.warpAffine(np.ones_like(gb, np.uint8), M, (w, h), flags=cv2.INTER_NEAREST, borderValue=0) > 0
    ca, cb = _content(a), _content(wgb)
    both = ca & cb & frame
    r = int(np.ceil(DENSE_BAND[0] * sigma))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    mask = cv2.erode(both.astype(np.uint8), disc, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    # fill in both (the same erased box or padding) rings alike in both after JPEG: left out as far
    # as the band's coarse blur reaches from it, or two flat patches correlate through it
    mask &= ~_near(frame & ~ca & ~cb, int(np.ceil(DENSE_BAND[1] * sigma)))
    n_frame = np.count_nonzero(frame)
    check.overlap = float(n_frame) / max(1.0, min(float(h * w), gb.size * scale * scale))
    # picture in one and fill in the other, within the overlap: erased (an edited copy)
    check.edited = float(np.count_nonzero(frame & (ca != cb))) / max(1, np.count_nonzero(frame & (ca | cb)))
    # enough left to compare: a share of the overlap that is picture in either (fill in both is none)
    if np.count_nonzero(mask) < max(64, (1.0 - PARTIAL_SHARE) * np.count_nonzero(frame & (ca | cb))):
        return check
    ba, bb = _band(a, both, sigma), _band(wgb, both, sigma)
    if min(float(ba[mask].std()), float(bb[mask].std())) < DENSE_SIGNAL:
        return check
    ba, bb = (_even(x, both, sigma) for x in (ba, bb))
    check.score = _ncc(ba, bb, mask)
    if check.score < SURE:
        share, part = _cells(ba, bb, mask, DENSE_CELL_FLAT)  # a caption or an erased part: cell by cell
        if share >= PARTIAL_SHARE and part > check.score:
            check.score, check.edited = part, max(check.edited, 1.0 - share)
    sa, sb = (cv2.GaussianBlur(x.astype(np.float32), (0, 0), sigma)[mask] for x in (a, wgb))
    check.colour = _tone_change(sa, sb)
    return check


def _dense_check(fa: Features, fb: Features) -> PairCheck:
    """Keypoint-poor pairs (smooth water, a dark frame): aligned densely instead, at ``DENSE_WORK``
    of the verification frame. ``fb`` in each of its eight turns/flips is placed on ``fa`` as a crop
    of it (or ``fa`` on ``fb``), and in its ``DENSE_VARIANTS`` likeliest ones (16 x 16 views of the
    pictures inside any padding compared) and as it is, as a whole frame, zoomed a little and
    shifted, also onto the picture inside a padded frame (``_dense_starts``); the ``DENSE_FITS``
    places where the bands correlate best are compared on a band of mid frequencies, evened out
    (``_dense_score``), and the best moved by whole pixels while it gains: what a copy keeps
    through JPEG noise, a colour curve and small shifts, and a look-alike of the same class (calm
    water, a field, a shore) does not share. (ECC refinement was tried: on such weak texture its
    affine fit drifts into stretched local optima.)"""
    import cv2

    def shrink(g: np.ndarray) -> np.ndarray:
        size = (max(8, round(g.shape[1] * DENSE_WORK)), max(8, round(g.shape[0] * DENSE_WORK)))
        return cv2.resize(g, size, interpolation=cv2.INTER_AREA)

    def view(g: np.ndarray) -> np.ndarray:  # 16 x 16 of the picture inside any padding, unit length
        x0, y0, x1, y1 = _box(g)
        t = cv2.resize(g[y0:y1, x0:x1].astype(np.float32), (16, 16), interpolation=cv2.INTER_AREA)
        t -= t.mean()
        return t / max(1e-6, float(np.linalg.norm(t)))

    sigma = DENSE_WORK * max(BLUR_SIGMA, fa.scale, fb.scale * max(fa.gray.shape) / max(fb.gray.shape))
    a = shrink(fa.gray)
    turns = {(flip, k): shrink(np.ascontiguousarray(np.rot90(fb.gray[:, ::-1] if flip else fb.gray, k)))
             for flip in (False, True) for k in range(4)}
    va = view(a)
    likely = sorted(turns, key=lambda t: -float((va * view(turns[t])).sum()))[:DENSE_VARIANTS]
    starts = []
    for (flip, k), gb in turns.items():
        whole = (flip, k) in likely or (flip, k) == (False, 0)
        starts += [(c, flip, k, gb, M) for c, M in _dense_starts(a, gb, fa.scale / fb.scale, sigma, whole)]
    best, place = PairCheck(0.0, "dense"), None
    for _, flip, k, gb, M in sorted(starts, key=lambda s: -s[0])[:DENSE_FITS]:
        c = _dense_score(a, gb, M, sigma)
        if c.score > best.score:
            best, place = c, (flip, k, gb, M)
    if place is None:
        return best
    flip, k, gb, M = place
    for _ in range(DENSE_CLIMB):  # the start's shift is whole pixels of a slightly different measure:
        moves = [(c, M2) for M2 in (M + np.float32([[0, 0, dx], [0, 0, dy]])  # a few steps uphill
                                    for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy)
                 for c in (_dense_score(a, gb, M2, sigma),)]
        c, M2 = max(moves, key=lambda m: m[0].score)
        if c.score <= best.score:
            break
        best, M = c, M2
    best.mirrored = flip
    best.rotation = (best.rotation - 90.0 * k) % 360.0
    # aperture: a 1-D structure (a straight road) matches itself at any shift along it, so a dense
    # alignment proves a copy only when it is unique (``_peak``); if not, its score is that margin
    peak = _peak(a, gb, M, sigma)
    if peak < DENSE_UNIQUE:
        best.score = min(best.score, peak)
    return best


def _peak(a: np.ndarray, gb: np.ndarray, M: np.ndarray, sigma: float) -> float:
    """How far the dense placement ``M`` of ``gb`` on ``a`` stands above its rivals: the evened
    band correlation (``_dense_score``'s measure, over the matching cells when a caption or an
    erased part differs) over shifts of up to 1.5 x the band's coarse scale (``DENSE_BAND[1]``
    sigmas) around it (``cv2.matchTemplate``): best nearer than that scale less best beyond it. A
    copy's band has decorrelated by then in every direction, so it peaks where it was cut (margins
    0.10-0.87 on copies of the dense tests and the wild benchmark, the least a dim highway frame
    with an erased part); tiles cut at different places along a straight road correlate as well
    shifted along the road as where they were matched (margins 0.00-0.007 on the scale benchmark's
    8 road pairs): their alignment proves nothing (the aperture problem). Rivals count only where
    compared on >= 90% of the template's pixels (not over padding); 1.0 when the overlap is under
    three coarse scales wide beyond the search, too small to tell."""
    import cv2

    h, w = a.shape
    wgb = cv2.warpAffine(gb, M, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    frame = cv2.warpAffine(np.ones_like(gb, np.uint8), M, (w, h), flags=cv2.INTER_NEAREST, borderValue=0) > 0
    ca = _content(a)
    both = ca & _content(wgb) & frame
    ys, xs = np.nonzero(both)
    r = DENSE_BAND[1] * sigma  # the band's coarse scale: a copy's band has decorrelated by then
    R = int(np.ceil(1.5 * r))
    if not len(ys) or min(ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()) - 2 * R < max(16.0, 3 * r):
        return 1.0  # a template under three coarse scales wide: a rival shift would leave too little of it
    y0, y1, x0, x1 = ys.min() + R, ys.max() + 1 - R, xs.min() + R, xs.max() + 1 - R
    ba = _even(_band(a, ca, sigma), ca, sigma) * ca  # the first picture wherever the second may shift to
    bb = _even(_band(wgb, both, sigma), both, sigma) * both
    share, good = _matching_cells(ba * both, bb, both, DENSE_CELL_FLAT)  # a caption or an erased part is no rival
    tm = (good if share >= PARTIAL_SHARE and good[y0:y1, x0:x1].sum() >= 64 else both)[y0:y1, x0:x1]
    tm = np.ascontiguousarray(tm, dtype=np.float32)
    if tm.sum() < 64:
        return 1.0
    win = (slice(y0 - R, y1 + R), slice(x0 - R, x1 + R))
    res = np.nan_to_num(cv2.matchTemplate(np.ascontiguousarray(ba[win]), np.ascontiguousarray(bb[y0:y1, x0:x1]),
                                          cv2.TM_CCORR_NORMED, mask=tm), nan=-1.0)
    # a shift only rivals when compared on (almost) as many pixels: not over padding or the edge
    seen = cv2.matchTemplate(np.ascontiguousarray(ca[win], dtype=np.float32), tm, cv2.TM_CCORR) / float(tm.sum())
    yy, xx = np.mgrid[-R:R + 1, -R:R + 1]
    near, far = (np.hypot(yy, xx) < r) & (seen >= 0.9), (np.hypot(yy, xx) >= r) & (seen >= 0.9)
    if not near.any() or not far.any() or res[near].max() <= 0:
        return 1.0  # nothing to tell by
    return max(0.0, float(res[near].max() - res[far].max()))


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
    tilt = _tilt_check(fa, fb) if rot[0].score >= TILT_GATE else None
    crop = _crop_check(fa, fb)
    alts = [c for c in (rot, (crop, 1.0) if crop is not None else None, tilt) if c is not None]
    for c, even in alts:
        # the smoothed pictures' correlation, discounted for a keypoint-rich pair, and the evened
        # band's, which one shared strong edge or a smooth layout does not carry: both must hold
        c.score = min(1.0 - (1.0 - c.score) * (1.0 + RICH_PENALTY * rich), even)
    best = max((c for c, _ in alts), key=lambda c: c.score)
    if kp is not None and kp.score > best.score:
        return kp
    return best


def _told_back(check: PairCheck) -> PairCheck:
    """A check of the first picture onto the second, told in the first's frame."""
    check.rotation = -check.rotation
    check.scale = 1.0 / check.scale if check.scale else 1.0
    check.coverage, check.inside = check.inside, check.coverage
    return check


def _either_way(fa: Features, fb: Features) -> PairCheck:
    """``_oriented`` of ``fb`` onto ``fa`` and, unless that is sure, of ``fa`` onto ``fb`` (keypoint
    matching and RANSAC are not symmetric: a small or edited picture may align one way only),
    told in ``fa``'s frame."""
    best = _oriented(fa, fb)
    if best.score < SURE:
        back = _oriented(fb, fa)
        if back.score > best.score:
            best = _told_back(back)
    return best


def _channels(fa: Features, fb: Features, M: np.ndarray) -> float:
    """``fb`` aligned onto ``fa`` by ``M`` (verification frames) and compared channel by channel
    on their ``colour`` views: the lowest correlation, any monotone curve undone (``_curve_ncc``),
    of a channel that has texture (1.0 when none has). A grade maps each channel through its own
    monotone curve, so every channel keeps its order; a picture whose colours changed in places
    (another day, a leaf turning brown) or a look-alike in other colours does not."""
    import cv2

    if fa.colour is None or fb.colour is None:
        return 1.0
    ca, cb = fa.colour, fb.colour
    h, w = ca.shape[:2]
    ka, kb = w / fa.gray.shape[1], cb.shape[1] / fb.gray.shape[1]
    # M in the colour views' pixels (pixel centres: x_view = k (x + 0.5) - 0.5 on either side)
    A = np.float64(M[:, :2])
    Ms = np.hstack([A * (ka / kb), (ka * (M[:, 2] + A @ np.full(2, 0.5 / kb - 0.5)) + 0.5 * ka - 0.5)[:, None]])
    Ms = Ms.astype(np.float32)
    wb = cv2.warpAffine(cb, Ms, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    valid = cv2.warpAffine(np.ones(cb.shape[:2], np.uint8), Ms, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    mask = cv2.erode(valid, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    for x in (ca, wb):  # fill (padding, an erased part) is no colour of the picture
        mask &= ~((x.max(axis=2) < FILL_BLACK) | (x.min(axis=2) > 255 - FILL_BLACK))
    if np.count_nonzero(mask) < 64:
        return 0.0
    scores = [_curve_ncc(ca[..., i][mask].astype(np.float64), wb[..., i][mask].astype(np.float64))
              for i in range(3) if float(ca[..., i][mask].std()) >= FLAT]
    return min(scores, default=1.0)


def _curve_ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of ``a`` and ``b`` after ``b``'s values are mapped onto ``a``'s by their
    ranks (histogram matching): any monotone curve on ``b`` is undone, and unlike a rank correlation
    the flat, noisy parts of a picture do not outweigh its structure."""
    from scipy.stats import rankdata

    if a.size < 64:
        return 0.0
    matched = np.interp(rankdata(b) - 1.0, np.arange(a.size, dtype=np.float64), np.sort(a))
    return _ncc(a, matched)


def _graded(fa: Features, fb: Features) -> PairCheck:
    """A pair whose mean colours differ by more than ``MAX_CHROMA``: a strong grade (white balance,
    per-channel curves, a filter) or another picture. Only a keypoint alignment may call it a copy
    (a whole-picture correlation would pair look-alikes of similar layout in other colours), either
    way and mirrored, and the aligned pictures must then also correlate channel by channel
    (``_channels``)."""
    best = PairCheck(0.0, "colour")
    for flip in (False, True):
        g = mirrored(fb) if flip else fb
        for x, y, back in ((fa, g, False), (g, fa, True)):
            kp = _keypoint_check(x, y)
            if kp is None or kp.transform is None or kp.score <= best.score:
                continue
            kp.score = min(kp.score, _channels(x, y, kp.transform))
            if kp.score > best.score:
                best = _told_back(kp) if back else kp
                best.mirrored, best.colour = flip, True
            if best.score >= SURE:
                return best
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
        if dc > MAX_CHROMA:  # a strong grade or another picture: keypoints and every channel must agree
            return _graded(fa, fb)
    if flat and dc > FLAT_CHROMA:  # two flat pictures of other colours: only their texture can tell
        best = _dense_check(fa, fb)
    else:
        best = _fast_accept(fa, fb) or _either_way(fa, fb)  # a whole-picture copy needs no keypoints
        if best.score < SURE and min(len(fa.points), len(fb.points)) < DENSE_POOR:
            dense = _dense_check(fa, fb)  # too few keypoints to align: densely
            if dense.score > best.score:
                best = dense
    if best.score < SURE and best.method != "dense":
        flip = _either_way(fa, mirrored(fb))
        if flip.score > best.score:
            best = flip
            best.mirrored = True
    whole = best.coverage >= 0.9 and best.inside >= 0.9
    best.colour = best.colour or (whole and dc > COLOUR_SHIFT) or (best.method not in ("keypoints", "whole")
                                                   and whole and _tone_change(fa.smooth, fb.smooth))
    return best
