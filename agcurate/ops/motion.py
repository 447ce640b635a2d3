"""Camera motion and scene change from small grey frames: where the view has moved on, where a shot
cuts, and what passes through a fixed camera's view.

Pure functions on arrays (OpenCV does the vision): frame-to-frame motion from tracked corners
(``goodFeaturesToTrack`` + pyramidal Lucas-Kanade + ``findHomography``: shift, turn, zoom and the
perspective of the ground), chained into one coordinate frame per shot and smoothed over time (hand
shake is no new view), so the overlap of any two frames of a shot follows from their transforms. A
motion counts only where it explains the pictures, not only the corners (``explains``). A
cut is where nothing in the half second after looks like anything in the half second before, and
the frame matches none of them. A fixed camera's changes are compared cell by cell against each cell's own noise. Nothing here reads
files or knows about embeddings.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

DEFAULT_OVERLAP = 0.5    # keep a new frame when the view overlaps every kept frame of the shot less than this
STATIC_OVERLAP = 0.98    # a stretch whose every frame overlaps its first this much comes from a fixed camera ...
STATIC_MIN_S = 2.0       # ... when it lasts at least this many seconds
MAX_CORNERS = 120        # corners tracked from frame to frame (10 per cell of a 4x3 grid)
STILL_PX = 1.0           # a corner that moved less than this (pixels at 160 px width) stood still ...
STILL_SHARE = 0.3        # ... and when this share of the tracked corners stood still, so did the camera
MIN_INLIERS = 12         # a camera motion explains at least this many tracked corners ...
MIN_INLIER_SHARE = 0.5   # ... and most of them (the dominant motion: leaves tossing and blur make none) ...
SPREAD = 0.5             # ... in at least this share of the grid cells that have tracked corners ...
IDENTITY_SHARE = 0.9     # ... unless "no motion" matches at least this share of the grid cells it matches
RESIDUAL_SHARE = 0.3     # ... and, once applied, leaves at most this share of the grey difference "no motion" leaves
MIN_STEP_OVERLAP = 0.5   # frames 1/10 s apart sharing less than this: a wrong match, not a camera that fast
REANCHOR = 0.8           # measure against a newer frame once the view shares less than this with the anchor
SHAKE_S = 0.3            # camera motion faster than this (seconds, a Gaussian's sigma) is shake, not a new view
SAME_SCENE_RESIDUAL = 0.9  # a homography that leaves less than this share shows one scene, even when not followed
SAME_SCENE = 0.6         # where motion cannot be measured, frames correlating this much (32x18) are one shot ...
CUT_WINDOW_S = 0.5       # ... nor do any two frames within this many seconds before and after it
CUT_DIFF = 30.0          # two flat pictures further apart in mean grey (0-255) than this are a cut
NEW_OBJECT_NOISE = 4.0   # a cell differs from a keyframe by this many times its frame-to-frame noise ...
NEW_OBJECT_MIN_DIFF = 12.0  # ... and by at least this many grey levels (0-255) on average
NEW_OBJECT_CELLS = 0.03  # a frame differs when at least this share of the grid cells do (5 of 144)
EVENT_GAP_S = 1.0        # changes closer than this are one event; the opening view is picked in this time
OPENING_S = 0.5          # a change under way this soon after a fixed view starts is part of that view
EVENT_MIN_S = 0.3        # a change that does not stay this long is noise, not an object passing through
CHANGE_BLUR = 2.0        # grey frames are blurred this much (sigma, pixels at 160 px width) before comparing
GRID = (16, 9)           # cells across and down for the change test
OVERLAP_GRID = (32, 18)  # points per frame on which overlap is measured

@dataclass
class Motion:
    """Per frame (time order): ``transform`` maps the frame into its shot's first frame (3x3),
    ``segment`` is the shot id (a new one after each cut), ``tracked`` whether the motion from the
    previous frame was measured (False at a cut and for the first frame), ``size`` (w, h)."""

    transform: "np.ndarray"  # noqa: F821
    segment: "np.ndarray"  # noqa: F821
    tracked: "np.ndarray"  # noqa: F821
    size: tuple[int, int]


def corners(gray: "np.ndarray") -> "np.ndarray | None":  # noqa: F821
    """Corners to track, found cell by cell on a 4x3 grid (each cell against its own strongest
    corner), so a plain background still gets corners next to a high-contrast car or person."""
    import cv2
    import numpy as np

    h, w = gray.shape[:2]
    found = []
    mask = np.zeros((h, w), np.uint8)
    for y in range(3):
        for x in range(4):
            mask[:] = 0
            mask[y * h // 3:(y + 1) * h // 3, x * w // 4:(x + 1) * w // 4] = 255
            p = cv2.goodFeaturesToTrack(gray, maxCorners=MAX_CORNERS // 12, qualityLevel=0.01,
                                        minDistance=max(3, w // 60), mask=mask, blockSize=5)
            if p is not None:
                found.append(p)
    return np.concatenate(found).astype(np.float32) if found else None


def frame_motion(prev: "np.ndarray", cur: "np.ndarray", pts: "np.ndarray | None" = None,  # noqa: F821
                 raw: "tuple[np.ndarray, np.ndarray] | None" = None,  # noqa: F821
                 residual: float | None = None) -> "np.ndarray | None":  # noqa: F821
    """The 3x3 homography that maps ``cur`` into ``prev`` (grey uint8 arrays of one size), or None
    when the motion cannot be told. ``pts``: ``corners(prev)`` when already known; ``raw``: the two
    frames before contrast equalisation, for the pixel comparison; ``residual``: the largest
    ``residual_share`` accepted (default ``RESIDUAL_SHARE``).

    Corners of ``prev`` are tracked into ``cur`` and back (a corner that does not come back within a
    pixel is dropped). When enough of them did not move, the camera stood still and what moved is
    something passing through (identity). Otherwise a homography (shift, turn, zoom and the
    perspective of ground seen from a moving vehicle) must explain enough of them, spread over at
    least half of the grid cells that have tracked corners: a car crossing a fixed view explains
    only the cells it covers."""
    import cv2
    import numpy as np

    h, w = prev.shape[:2]
    if pts is None:
        pts = corners(prev)
    if pts is None or len(pts) < MIN_INLIERS:
        return None
    nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, winSize=(15, 15), maxLevel=3)
    moved = np.linalg.norm((nxt - pts).reshape(-1, 2), axis=1)
    found = st.ravel() == 1
    still = int((found & (moved < STILL_PX * w / 160)).sum())
    if still >= MIN_INLIERS and still >= STILL_SHARE * found.sum() and same_scene(*(raw or (prev, cur))):
        return np.eye(3)  # most corners stood still: so did the camera (no need to track back)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, nxt, None, winSize=(15, 15), maxLevel=3)
    ok = found & (st2.ravel() == 1) & (np.linalg.norm((back - pts).reshape(-1, 2), axis=1) < 1.0)
    n_ok = int(ok.sum())
    if n_ok < MIN_INLIERS:
        return None
    m, inl = cv2.findHomography(nxt[ok], pts[ok], cv2.RANSAC, 1.5 * w / 160)
    if m is None or inl is None or abs(m[2, 2]) < 1e-12:
        return None
    inl = inl.ravel().astype(bool)
    n_in = int(inl.sum())
    if n_in < MIN_INLIERS or n_in < MIN_INLIER_SHARE * n_ok:
        return None
    p = pts.reshape(-1, 2)[ok]
    cell = np.minimum(p[:, 0] * 4 // w, 3) + 4 * np.minimum(p[:, 1] * 3 // h, 2)
    tracked_cells = np.count_nonzero(np.bincount(cell.astype(int), minlength=12) >= 2)
    inlier_cells = np.count_nonzero(np.bincount(cell[inl].astype(int), minlength=12) >= 2)
    if inlier_cells < SPREAD * tracked_cells:
        return None
    m = m / m[2, 2]
    # a fixed camera with something large moving close to it: keep "no motion" when it explains
    # (nearly) as much of the picture as the homography does
    a, b = raw if raw is not None else (prev, cur)
    warped = cv2.warpPerspective(b, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    inside = cv2.warpPerspective(np.full_like(b, 255), m, (w, h), flags=cv2.INTER_NEAREST) > 0
    same = _matching_cells(a, b)
    if same >= 0.25 * GRID[0] * GRID[1] and same >= IDENTITY_SHARE * _matching_cells(a, warped, inside):
        return np.eye(3)
    if residual_share(a, b, m, inside) > (RESIDUAL_SHARE if residual is None else residual):
        return None
    return m


def explains(a: "np.ndarray", b: "np.ndarray", m: "np.ndarray", inside: "np.ndarray | None" = None) -> bool:  # noqa: F821
    """Whether the homography ``m`` (``b`` into ``a``, grey frames of one size) explains the change
    between them: ``residual_share`` at most ``RESIDUAL_SHARE``. A pan or a drive leaves a few
    percent; corners that agree on a motion the pictures do not show (a swinging, blurred hand-held
    view of look-alike leaves) leave half or more, and such steps add up to a camera path that runs
    away from the real one."""
    return residual_share(a, b, m, inside) <= RESIDUAL_SHARE


def residual_share(a: "np.ndarray", b: "np.ndarray", m: "np.ndarray", inside: "np.ndarray | None" = None,  # noqa: F821
                   ) -> float:
    """The mean grey difference left between ``a`` and ``b`` warped by ``m`` (both blurred, a change
    of exposure taken off, over where the warped ``b`` lands: ``inside``), as a share of the
    difference with no motion at all (1.0 when they do not overlap enough to tell)."""
    import cv2
    import numpy as np

    h, w = a.shape[:2]
    x = cv2.GaussianBlur(a, (0, 0), CHANGE_BLUR).astype(np.float32)
    y = cv2.GaussianBlur(b, (0, 0), CHANGE_BLUR)
    yw = cv2.warpPerspective(y, m, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32)
    if inside is None:
        inside = cv2.warpPerspective(np.full_like(b, 255), m, (w, h), flags=cv2.INTER_NEAREST) > 0
    inside = inside & (cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)  # off the warped edge
    if inside.sum() < 0.1 * inside.size:
        return 1.0

    def left(d: "np.ndarray") -> float:
        d = d[inside]
        return float(np.abs(d - np.median(d)).mean())

    still = left(x - y.astype(np.float32))
    return left(x - yw) / still if still > 1e-6 else 1.0


def _matching_cells(a: "np.ndarray", b: "np.ndarray", valid: "np.ndarray | None" = None) -> int:  # noqa: F821
    """Cells of a 16x9 grid where two grey frames agree (mean absolute difference under 8 levels once
    the median difference is taken off)."""
    import cv2
    import numpy as np

    d = a.astype(np.float32) - b.astype(np.float32)
    d = np.abs(d - np.median(d if valid is None else d[valid]))  # a change of exposure is no difference
    if valid is not None:
        d[~valid] = 255.0
    cells = cv2.resize(d, GRID, interpolation=cv2.INTER_AREA)
    return int((cells < 8.0).sum())


def _thumb(a: "np.ndarray") -> "tuple[np.ndarray | None, float]":  # noqa: F821
    """A grey frame at 32x18, mean removed and L2-normalised (None when flat), and its mean grey."""
    import cv2
    import numpy as np

    t = cv2.resize(a, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    t -= t.mean()
    norm = float(np.linalg.norm(t))
    return (t / norm if norm >= 1e-3 else None), float(a.mean())


def _thumb_dissimilarity(ta, tb) -> float:
    (va, ma), (vb, mb) = ta, tb
    if va is None or vb is None:  # a flat picture: alike when both are flat and of one brightness
        return 0.0 if va is None and vb is None and abs(ma - mb) < CUT_DIFF else 1.0
    return 1.0 - float(va @ vb)


def dissimilarity(a: "np.ndarray", b: "np.ndarray") -> float:  # noqa: F821
    """1 - the correlation of two grey frames at 32x18 (0: alike, 1: unrelated, 2: inverted); two flat
    pictures are alike (0) when of one brightness, a flat and a textured one unrelated (1)."""
    return _thumb_dissimilarity(_thumb(a), _thumb(b))


def same_scene(a: "np.ndarray", b: "np.ndarray") -> bool:  # noqa: F821
    """Two grey frames look alike at 32x18 (correlation at least ``SAME_SCENE``): no cut between them."""
    return dissimilarity(a, b) <= 1.0 - SAME_SCENE


def cut_candidates(frames: "list[np.ndarray]", times: "np.ndarray | None" = None) -> "np.ndarray":  # noqa: F821
    """Per frame, whether a cut may come before it: no frame of the ``CUT_WINDOW_S`` after it
    (itself included) looks like (``same_scene``) any frame of the ``CUT_WINDOW_S`` before it. A
    hand-held camera that swings and blurs makes consecutive frames unlike each other, but within
    half a second it swings back to a view like one before; after a cut nothing does. Without
    ``times`` frames are taken 1/10 s apart."""
    import numpy as np

    n = len(frames)
    out = np.zeros(n, bool)
    if n < 2:
        return out
    times = np.arange(n) / 10.0 if times is None else np.asarray(times, np.float64)
    thumbs = [_thumb(f) for f in frames]
    unlike = 1.0 - SAME_SCENE
    for i in range(1, n):
        if _thumb_dissimilarity(thumbs[i - 1], thumbs[i]) <= unlike:
            continue
        before = np.flatnonzero((times < times[i]) & (times >= times[i - 1] - CUT_WINDOW_S))
        after = np.flatnonzero((times >= times[i]) & (times <= times[i] + CUT_WINDOW_S))
        out[i] = all(_thumb_dissimilarity(thumbs[a], thumbs[b]) > unlike for a in before for b in after)
    return out


def track(frames: "list[np.ndarray]", times: "np.ndarray | None" = None) -> Motion:  # noqa: F821
    """Chain ``frame_motion`` over grey frames in time order into one coordinate frame per shot.

    Each frame is measured against an anchor (an earlier frame of the shot) rather than only the one
    before, so a fixed camera stays exactly still and a slow pan adds up without drift; the anchor
    moves on when the view shares less than ``REANCHOR`` with it, or when only the previous frame
    can be matched. Where no motion can be measured (blur, a plain view) but the frame is no cut
    (``cut_candidates``: it looks like the one before, or like one of the half second before), the
    camera is taken to have stood still; otherwise a new shot starts, unless the frame matches
    another frame of the half second before (``_match_before``: a swing away and back). ``times``:
    the frames' times in seconds (for the cut test's window)."""
    import cv2
    import numpy as np

    raw = frames
    frames = [cv2.equalizeHist(f) for f in frames]  # auto exposure and light changes: same corners
    n = len(frames)
    size = (frames[0].shape[1], frames[0].shape[0]) if n else (0, 0)
    transform = np.tile(np.eye(3), (n, 1, 1))
    segment = np.zeros(n, np.int64)
    tracked = np.zeros(n, bool)
    anchor, anchor_pts = 0, (corners(frames[0]) if n else None)
    cut = cut_candidates(frames, times)
    times_ = np.arange(n) / 10.0 if times is None else np.asarray(times, np.float64)
    for i in range(1, n):
        segment[i] = segment[i - 1]
        m = frame_motion(frames[anchor], frames[i], anchor_pts, (raw[anchor], raw[i]))
        if m is not None and overlap(transform[i - 1], transform[anchor] @ m, size) < MIN_STEP_OVERLAP:
            m = None  # half the view gone in one step: a wrong match, not a camera that fast
        if m is not None:
            transform[i] = transform[anchor] @ m
        elif anchor != i - 1 and (m := frame_motion(frames[i - 1], frames[i], None, (raw[i - 1], raw[i]))) is not None \
                and overlap(np.eye(3), m, size) >= MIN_STEP_OVERLAP:
            transform[i] = transform[i - 1] @ m
        elif not cut[i]:
            m = None
            transform[i] = transform[i - 1]
        elif (found := _match_before(frames, raw, times_, i, anchor, size, segment)) is not None:
            j, m = found  # a swing away and back: the frame matches one of the half second before
            transform[i] = transform[i - 1] if m is None else transform[j] @ m
        else:
            m = None
            segment[i] += 1
            anchor, anchor_pts = i, corners(frames[i])
            continue
        tracked[i] = m is not None
        if anchor != i and (m is None or overlap(transform[anchor], transform[i], size) < REANCHOR):
            anchor, anchor_pts = i, corners(frames[i])
    return Motion(transform=transform, segment=segment, tracked=tracked, size=size)


def _match_before(frames: "list[np.ndarray]", raw: "list[np.ndarray]", times: "np.ndarray", i: int,  # noqa: F821
                  anchor: int, size: tuple[int, int], segment: "np.ndarray",  # noqa: F821
                  ) -> "tuple[int, np.ndarray | None] | None":  # noqa: F821
    """The latest frame of the ``CUT_WINDOW_S`` before frame ``i`` in its shot (``segment``; other
    than ``anchor`` and the previous one, tried already) that ``frame_motion`` matches to it, with the motion, or with None
    when the motion explains the pictures better than no motion but not well enough to follow
    (``SAME_SCENE_RESIDUAL``: one scene, the motion unknown); None when no frame matches (a cut:
    nothing after it can be matched to anything before). A camera that swings away and back under
    motion blur is no cut."""
    import numpy as np

    for j in range(i - 2, -1, -1):
        if times[j] < times[i] - CUT_WINDOW_S or segment[j] != segment[i - 1]:
            break
        if j == anchor:
            continue
        m = frame_motion(frames[j], frames[i], None, (raw[j], raw[i]), residual=SAME_SCENE_RESIDUAL)
        if m is not None and overlap(np.eye(3), m, size) >= MIN_STEP_OVERLAP:
            return j, (m if explains(raw[j], raw[i], m) else None)
    return None


@functools.lru_cache(maxsize=8)
def _grid(size: tuple[int, int]) -> "np.ndarray":  # noqa: F821
    """The ``OVERLAP_GRID`` points of a frame of ``size`` (w, h), homogeneous, as (3, points) (read-only)."""
    import numpy as np

    w, h = size
    gx, gy = OVERLAP_GRID
    x, y = np.meshgrid((np.arange(gx) + 0.5) * w / gx, (np.arange(gy) + 0.5) * h / gy)
    g = np.stack([x.ravel(), y.ravel(), np.ones(x.size)])
    g.setflags(write=False)
    return g


def _seen(h: "np.ndarray", size: tuple[int, int]) -> "np.ndarray":  # noqa: F821
    """For each 3x3 ``h`` of a stack (m, 3, 3) mapping a frame into another, the share of the frame's
    points it puts inside the other."""
    import numpy as np

    w, hh = size
    p = h @ _grid(size)  # (m, 3, points)
    z = p[:, 2]
    ok = z > 1e-9
    zs = np.where(ok, z, 1.0)
    x, y = p[:, 0] / zs, p[:, 1] / zs
    return np.mean(ok & (x >= 0) & (x <= w) & (y >= 0) & (y <= hh), axis=1)


def overlaps(ta: "np.ndarray", tbs: "np.ndarray", size: tuple[int, int]) -> "np.ndarray":  # noqa: F821
    """``overlap`` of frame A (transform ``ta``) with each frame of a stack of transforms ``tbs``."""
    import numpy as np

    tbs = np.asarray(tbs, np.float64).reshape(-1, 3, 3)
    if len(tbs) == 0:
        return np.zeros(0)
    ta = np.asarray(ta, np.float64)
    try:
        ab = np.linalg.solve(tbs, np.broadcast_to(ta, tbs.shape))  # A's pixels into each B
        ba = np.linalg.solve(np.broadcast_to(ta, tbs.shape), tbs)
    except np.linalg.LinAlgError:  # a degenerate transform somewhere: that one shares nothing
        return np.array([overlaps(ta, t, size)[0] if abs(np.linalg.det(t)) > 1e-12 else 0.0 for t in tbs]) \
            if len(tbs) > 1 else np.zeros(1)
    return np.minimum(_seen(ab, size), _seen(ba, size))


def overlap(ta: "np.ndarray", tb: "np.ndarray", size: tuple[int, int]) -> float:  # noqa: F821
    """How much two frames of one shot show of each other, from their transforms into the shot's
    coordinates: the smaller of the share of A seen in B and the share of B seen in A (each measured
    on a grid of points in the frame's own pixels). A shift by half the width shares a half; a zoom
    in to half the width shares a quarter; walking forward, what has left the bottom of the view."""
    return float(overlaps(ta, tb, size)[0])


def coverage_keyframes(transforms: "np.ndarray", size: tuple[int, int], sharpness: "np.ndarray",  # noqa: F821
                       min_overlap: float = DEFAULT_OVERLAP, kept: list[int] | None = None) -> list[int]:
    """Keyframes of one shot (indices into ``transforms``, frames in time order): the first is the sharpest
    of the frames that still show most of the opening view; after that, once a frame overlaps every
    kept frame less than ``min_overlap``, the sharpest of the frames since the last keyframe that have
    moved at least halfway from ``min_overlap`` to 1 is kept (so no two keyframes share more than that).
    A view the camera returns to is not kept twice: overlap is taken with every kept frame, including
    ``kept`` (keyframes of the shot chosen before, e.g. while the camera stood still)."""
    import numpy as np

    n = len(transforms)
    if n == 0:
        return []
    near = (1.0 + min_overlap) / 2  # "moved on": shares at most this much with any kept frame
    given = set(kept or ())
    if kept:
        kept, start = list(kept), 0
    else:
        first = np.flatnonzero(overlaps(transforms[0], transforms, size) >= near)
        first = first[:next((k for k, i in enumerate(first) if i != first[0] + k), len(first))] if len(first) \
            else [0]  # a leading run
        kept = [max((int(i) for i in first), key=lambda i: (sharpness[i], -i))]
        start = kept[0] + 1
    cov = np.max([overlaps(transforms[k], transforms, size) for k in kept], axis=0)  # best overlap with a kept frame
    while start < n:
        below = np.flatnonzero(cov[start:] < min_overlap)
        if len(below) == 0:
            break
        c = start + int(below[0])
        pool = [start + j for j in range(c - start) if cov[start + j] <= near] or [c]
        best = max(pool, key=lambda i: (sharpness[i], -i))
        kept.append(best)
        cov = np.maximum(cov, overlaps(transforms[best], transforms, size))
        start = best + 1
    return sorted(k for k in kept if k not in given)


def smooth_path(transforms: "np.ndarray", times: "np.ndarray", size: tuple[int, int],  # noqa: F821
                sigma_s: float = SHAKE_S) -> "np.ndarray":  # noqa: F821
    """The camera path of one shot with hand shake taken out, as video stabilisers do: the frame's
    corners in the shot's coordinates are averaged over time (Gaussian, ``sigma_s`` seconds) and each
    transform is rebuilt from its averaged corners. A slow pan or drive is unchanged; a camera that
    swings back and forth (a hand-held walk) keeps its average view. Where a corner cannot be placed
    (a view turned edge-on) the path is returned as it was."""
    import cv2
    import numpy as np

    n = len(transforms)
    times = np.asarray(times, np.float64)
    if n < 3 or sigma_s <= 0:
        return transforms
    w, h = size
    box = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64).T
    p = transforms @ box  # (n, 3, 4)
    if (p[:, 2] <= 1e-6).any():
        return transforms
    c = p[:, :2] / p[:, 2:3]  # (n, 2, 4)
    lo = np.searchsorted(times, times - 3 * sigma_s, side="left")  # the Gaussian cut at 3 sigma: a
    hi = np.searchsorted(times, times + 3 * sigma_s, side="right")  # long drive costs O(n), not O(n^2)
    src = box[:2].T.astype(np.float32)
    out = np.empty_like(transforms)
    for i in range(n):
        wt = np.exp(-0.5 * ((times[lo[i]:hi[i]] - times[i]) / sigma_s) ** 2)
        sm = np.tensordot(wt / wt.sum(), c[lo[i]:hi[i]], axes=1)
        out[i] = cv2.getPerspectiveTransform(src, sm.T.astype(np.float32))
    return out


def still_stretches(transforms: "np.ndarray", size: tuple[int, int], times: "np.ndarray",  # noqa: F821
                    ) -> list[tuple[int, int, bool]]:
    """Split one shot into stretches (first, last, static): a static stretch lasts at least
    ``STATIC_MIN_S`` with every frame overlapping its first at least ``STATIC_OVERLAP``; the frames
    between static stretches form moving ones."""
    n = len(transforms)
    out: list[tuple[int, int, bool]] = []
    i = 0
    while i < n:
        j = i + _run_length(transforms, size, i)
        if times[j] - times[i] >= STATIC_MIN_S or (i == 0 and j == n - 1):
            out.append((i, j, True))
        elif out and not out[-1][2]:
            out[-1] = (out[-1][0], i, False)
            j = i
        else:
            out.append((i, i, False))
            j = i
        i = j + 1
    return out


def _run_length(transforms: "np.ndarray", size: tuple[int, int], i: int) -> int:  # noqa: F821
    """How many frames after ``i`` in a row overlap frame ``i`` at least ``STATIC_OVERLAP`` (measured
    in growing chunks: a moving camera stops the run at once)."""
    import numpy as np

    n, j, chunk = len(transforms), i + 1, 8
    while j < n:
        below = np.flatnonzero(overlaps(transforms[i], transforms[j:j + chunk], size) < STATIC_OVERLAP)
        if len(below):
            return j + int(below[0]) - i - 1
        j, chunk = j + chunk, chunk * 2
    return n - 1 - i


def nearest_overlap(transforms: "np.ndarray", size: tuple[int, int], i: int, others: list[int]) -> float:  # noqa: F821
    """The largest overlap of frame ``i`` with any of ``others`` (0 when there are none)."""
    others = [k for k in others if k != i]
    return float(overlaps(transforms[i], transforms[others], size).max()) if others else 0.0


def cell_difference(a: "np.ndarray", b: "np.ndarray", grid: tuple[int, int] = GRID) -> "np.ndarray":  # noqa: F821
    """Mean absolute grey difference per grid cell between two frames of one fixed view, after
    matching ``b``'s brightness and contrast to ``a`` (a light change or flicker is no difference)."""
    import cv2
    import numpy as np

    x = a.astype(np.float32)
    y = b.astype(np.float32)
    yc = y - y.mean()
    gain = float((x.ravel() - x.mean()) @ yc.ravel()) / max(float(yc.ravel() @ yc.ravel()), 1e-6)
    d = np.abs(x - (yc * gain + x.mean()))
    return cv2.resize(d, grid, interpolation=cv2.INTER_AREA).ravel()


def cell_noise(frames: "list[np.ndarray]", max_pairs: int = 200) -> "np.ndarray":  # noqa: F821
    """Per cell, what noise, compression and flicker leave between consecutive frames (the median
    of their cell differences: most consecutive frames of a fixed camera show the same scene)."""
    import numpy as np

    pairs = np.unique(np.linspace(1, len(frames) - 1, min(max_pairs, len(frames) - 1)).astype(int))
    if len(pairs) == 0:
        return np.zeros(GRID[0] * GRID[1], np.float32)
    return np.median(np.stack([cell_difference(frames[i - 1], frames[i]) for i in pairs]), axis=0)


def static_keyframes(frames: "list[np.ndarray]", times: "np.ndarray",  # noqa: F821
                     sharpness: "np.ndarray") -> list[tuple[int, str]]:  # noqa: F821
    """A fixed camera's keyframes as (index, reason): the opening view (the sharpest frame of the
    first ``EVENT_GAP_S`` that looks like the first frame), then one frame per event (``new object``): a run of frames that differ
    from the opening view, at least ``EVENT_MIN_S`` long, runs less than ``EVENT_GAP_S`` apart joined.
    The event's keyframe is the sharpest of its frames that differ at least as much as its median
    frame. A cell differs when it is ``NEW_OBJECT_NOISE`` times its own frame-to-frame noise and
    ``NEW_OBJECT_MIN_DIFF`` grey levels off (after a blur: a change of focus is no object); a frame
    differs when at least ``NEW_OBJECT_CELLS`` of the cells do. The scene returning to its opening state (the empty car park after a car has gone)
    is no event."""
    import numpy as np

    n = len(frames)
    if n == 0:
        return []
    import cv2

    times = np.asarray(times, np.float64)
    frames = [cv2.GaussianBlur(f, (0, 0), CHANGE_BLUR) for f in frames]  # focus and fine noise do not count
    floor = np.maximum(NEW_OBJECT_NOISE * cell_noise(frames), NEW_OBJECT_MIN_DIFF)
    need = max(1, int(np.ceil(NEW_OBJECT_CELLS * floor.size)))
    opening = np.flatnonzero(times <= times[0] + EVENT_GAP_S)
    opening = [i for i in opening if (cell_difference(frames[0], frames[i]) >= floor).sum() < need]
    first = int(opening[np.argmax(sharpness[opening])])
    diff = np.array([int((cell_difference(frames[first], f) >= floor).sum()) for f in frames])
    chosen = [(first, "scene")]
    for a, b in change_events(diff >= need, times):
        if times[a] - times[0] < OPENING_S:
            continue  # what moves from the start (a signer's hands) belongs to the opening view
        span = np.arange(a, b + 1)
        top = span[diff[span] >= np.median(diff[span])]
        chosen.append((int(top[np.argmax(sharpness[top])]), "new object"))
    return chosen


def change_events(on: "np.ndarray", times: "np.ndarray") -> list[tuple[int, int]]:  # noqa: F821
    """Runs of frames (first, last index) where ``on``: runs less than ``EVENT_GAP_S`` apart joined,
    runs shorter than ``EVENT_MIN_S`` dropped."""
    import numpy as np

    events: list[list[int]] = []
    for i in np.flatnonzero(on):
        if events and times[i] - times[events[-1][1]] <= EVENT_GAP_S:
            events[-1][1] = int(i)
        else:
            events.append([int(i), int(i)])
    return [(a, b) for a, b in events if times[b] - times[a] >= EVENT_MIN_S]


MODES = ("auto", "shots", "coverage")
UNTRACKED_SHARE = 0.5  # a stretch whose steps were mostly not measured (taken as still) is "untracked"


def camera_label(static: bool, tracked: "np.ndarray") -> str:  # noqa: F821
    """``static``, ``moving`` or, for a stretch that only looks still because most of its steps could
    not be measured (a swinging, blurred hand-held view), ``untracked``. An untracked stretch is kept
    as a fixed view (its opening frame and what changes beyond its own noise): the camera may have
    moved, but no measured motion says so."""
    if not static:
        return "moving"
    return "untracked" if len(tracked) and float(tracked.mean()) < UNTRACKED_SHARE else "static"


def select_views(frames: "list[np.ndarray]", times: "np.ndarray", sharpness: "np.ndarray",  # noqa: F821
                 mode: str = "auto", min_overlap: float = DEFAULT_OVERLAP) -> "pd.DataFrame":  # noqa: F821
    """Keyframes of one video from small grey frames (time order) by geometry and change, not meaning.

    Shots are cut where the motion cannot be followed. In ``auto`` mode each shot is split into
    stretches (``still_stretches``): a fixed-camera stretch keeps its opening view and one frame per
    event of something passing through (``static_keyframes``); a moving stretch keeps a frame each time
    the view has moved on (``coverage_keyframes``, against every keyframe of the shot). ``coverage``
    applies the moving rule to whole shots. Returns one row per frame: ``segment`` (shot),
    ``camera`` (static/moving/untracked, see ``camera_label``), ``is_keyframe``, ``reason``
    (``new shot``, ``moved on``, ``new object``; empty for other frames), ``overlap`` (a keyframe's
    overlap with the keyframe before it in its shot, 0 for a shot's first) and ``coverage`` (each frame's largest overlap with a keyframe of
    its shot).
    """
    import numpy as np
    import pandas as pd

    n = len(frames)
    times = np.asarray(times, np.float64)
    sharp = np.nan_to_num(np.asarray(sharpness, np.float64))
    out = pd.DataFrame({"segment": np.zeros(n, np.int64), "camera": [""] * n, "is_keyframe": np.zeros(n, bool),
                        "reason": [""] * n, "overlap": np.zeros(n), "coverage": np.zeros(n)})
    if n == 0:
        return out
    mo = track(frames, times)
    out["segment"] = mo.segment
    reasons: dict[int, str] = {}
    for s in range(int(mo.segment.max()) + 1):
        idx = np.flatnonzero(mo.segment == s)
        t = smooth_path(mo.transform[idx], times[idx], mo.size)
        kept: list[int] = []
        stretches = still_stretches(t, mo.size, times[idx]) if mode == "auto" else [(0, len(idx) - 1, False)]
        for a, b, static in stretches:
            out.loc[idx[a:b + 1], "camera"] = camera_label(static, mo.tracked[idx[a + 1:b + 1]])
            if static:
                # the view a moving camera came to rest on is a view it moved on to
                part = [(a + k, "moved on" if why == "scene" else why) for k, why in
                        static_keyframes([frames[i] for i in idx[a:b + 1]], times[idx[a:b + 1]], sharp[idx[a:b + 1]])]
                near = (1.0 + min_overlap) / 2
                if kept and part and nearest_overlap(t, mo.size, part[0][0], kept) > near:
                    part = part[1:]  # the camera came to rest on a view already kept
            else:
                sub = t[:b + 1]
                part = [(k, "moved on") for k in coverage_keyframes(sub, mo.size, sharp[idx[:b + 1]], min_overlap,
                                                                      kept=kept) if k >= a]
            kept += [k for k, _ in part]
            for k, why in part:
                reasons[int(idx[k])] = why
        kept.sort()
        if kept:
            reasons[int(idx[kept[0]])] = "new shot"
        for j, k in enumerate(kept):
            out.loc[idx[k], "overlap"] = overlap(t[kept[j - 1]], t[k], mo.size) if j else 0.0
        out.loc[idx, "coverage"] = np.max([overlaps(t[k], t, mo.size) for k in kept], axis=0) if kept else 0.0
    for i, why in reasons.items():
        out.loc[i, "is_keyframe"] = True
        out.loc[i, "reason"] = why
    return out
