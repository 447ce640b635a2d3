"""Exact and near-duplicate groups: hashes, embedding and turn/mirror candidates, pixel
verification against the kept file, one keeper per group.

1. Exact: items with the same decoded pixels (``pixel_hash``) or the same bytes (``content_hash``).
2. Candidates: each item's ``k`` nearest neighbours by embedding with cosine >= ``candidate_similarity``
   (shared faiss kNN, sub-quadratic for large collections), plus, from tiny grey thumbnails, the
   items that match another one turned by a right angle or mirrored (``dihedral_pairs``: eight
   flipped/turned queries of 256 numbers each, far cheaper than embedding the collection turned).
3. Cheap rejection (``gate_pairs``): a candidate goes on only when its 16 x 16 thumbnails correlate
   (best of 8 turns/flips), its embeddings are very close, or its small high-passed previews say
   it could be a crop, padded copy, recapture or edited copy (``quick_score``; pairs of one size
   vectorised). Microseconds a pair; on look-alike-rich collections it drops over 90% of the pairs.
4. Verification: a whole-picture copy (resized, re-encoded, turned, mirrored, graded, shifted a
   little) is accepted by a quick alignment of the whole pictures whose fine texture must agree
   (no keypoints); each remaining pair is aligned (SIFT + RANSAC, either way round, mirrored too, or
   a right-angle rotation) and its aligned pixels correlated (``agcurate.ops.verify``); the pair is
   a duplicate when that score is at least ``threshold``. This is what separates a crop from a
   look-alike.
5. Groups grow along verified pairs, strongest first; two groups merge only when every member
   of both verifies against the kept item of the merged group (largest, sharpest or first; when
   some member does not verify against that one, the next best or the kept item of either group
   may keep it: ``KEEPER_TRIES``), so
   no group holds a file that is not a copy of its kept file: A~B and B~C does not put A and C
   together, and a copy joins the group of the picture it copies best. Verification first
   rejects cheaply (the strongest keypoints must agree on one transform; keypoint-rich pairs
   that do not align go no further unless their 16 x 16 views correlate).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .verify import Features, PairCheck, compare, features

DEFAULT_THRESHOLD = 0.85     # aligned-pixel correlation needed to call a pair a duplicate
CANDIDATE_SIMILARITY = 0.5   # embedding cosine needed to be checked at all
K = 25                       # neighbours per item considered as candidates (a slightly rotated small copy,
                             # black-cornered, can rank past 20 among same-class look-alikes)
KEEP_POLICIES = ("largest", "sharpest", "first")
KEEPER_TRIES = 3             # members (best by the keep policy first) tried as the kept item of a merged group ...
WHOLE = 0.9                  # ... when every member lies inside it (this share of its frame; resized, cropped) ...
KEEPER_CONTENT = 0.9         # ... or has at most 1 / this of its pixels inside any padding (a padded copy)
PAD_SPREAD = 2.0             # grey-level spread under which a border row or column is padding (``content_area``)
BATCH_PAIRS = 128            # pairs verified between two updates of the groups
FEATURE_CACHE = 1024         # items whose verification features are kept in memory ...
CACHE_BYTES = 768 << 20      # ... and at most this many bytes of them
THUMB = 16                   # side of the grey thumbnails behind the turn/mirror candidates
DIHEDRAL_SIMILARITY = 0.85   # thumbnail correlation (best of 8 turns/flips) needed to be checked
DIHEDRAL_K = 4               # thumbnail neighbours per turned/flipped query
DIHEDRAL_EXACT = 5000        # thumbnails searched exactly up to this many, by the approximate index above
CANON_MARGIN = 10.0          # degrees from the edge of the canonical range within which a thumbnail ...
CANON_WEAK = 5.0             # ... (or whose centroid lies this close to the centre: unit thumbnail, pixel
                             # units) queries every turn/flip that could be its canonical one
FLAT_THUMB = 2.0             # grey-level spread under which a thumbnail proposes nothing (calm water)
PREVIEW = 48                 # longer side of the grey previews behind the quick pre-check
GATE_THUMB = 0.8             # a candidate goes on to verification when its thumbnails correlate this well
                             # (best of the 8 turns/flips: resized, re-encoded, turned, mirrored, graded) ...
GATE_COS = 0.9               # ... or its embeddings this well ...
GATE_QUICK = 0.45            # ... or its previews this well (``quick_score``: crops, padding, erasures)
QUICK_SIGMA = 2.0            # high-pass of the previews (look-alike leaves share their low frequencies)
QUICK_INNER = 0.1            # share cut from each edge of the template (recaptures shift, paddings blur)
QUICK_BATCH = 4096           # pairs compared at a time (their pictures prepared once: ~90 MB at 48 px previews)
BLACK = 8                    # grey level under which a preview pixel may be erased or fill

Loader = Callable[[int], np.ndarray]


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def exact_pairs(items: "pd.DataFrame") -> list[tuple[int, int]]:  # noqa: F821
    """Pairs (first, other) of items sharing decoded pixels or file bytes."""
    out: list[tuple[int, int]] = []
    for col in ("pixel_hash", "content_hash"):
        if col not in items.columns:
            continue
        first: dict[str, int] = {}
        for i, h in enumerate(items[col].fillna("").astype(str)):
            if not h:
                continue
            if h in first:
                out.append((first[h], i))
            else:
                first[h] = i
    return out


def candidate_pairs(vectors: np.ndarray, min_similarity: float = CANDIDATE_SIMILARITY, k: int = K,
                    turned: Mapping[int, np.ndarray] | None = None) -> list[tuple[int, int, float]]:
    """Pairs (i < j, cosine) among each item's ``k`` nearest neighbours above ``min_similarity``.

    ``turned`` maps a quarter-turn count to the items' vectors embedded with turned input; each
    turned vector is searched against the unturned ones too, which finds rotated copies.
    """
    from .neighbors import knn, pairs_above

    n = len(vectors)
    if n < 2:
        return []
    k = min(k, n - 1)
    best = {(a, b): s for a, b, s in pairs_above(vectors, min_similarity, k=k)}
    for tv in (turned or {}).values():
        sims, ids = knn(vectors, k + 1, queries=tv)
        for i in range(n):
            for s, j in zip(sims[i], ids[i]):
                if j < 0 or s < min_similarity:
                    break
                if j != i:
                    key = (min(i, int(j)), max(i, int(j)))
                    best[key] = max(best.get(key, -1.0), float(s))
    return sorted((a, b, s) for (a, b), s in best.items())


def thumbnail(rgb: np.ndarray, size: int = THUMB) -> np.ndarray:
    """Grey ``size`` x ``size`` thumbnail (the whole picture squeezed square, area filter), float32.

    Squeezing commutes with right-angle turns and mirrors, so the thumbnail of a turned copy is the
    turned thumbnail of the original, whatever the aspect ratio."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    return cv2.resize(np.ascontiguousarray(gray), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)


def _dihedral(t: np.ndarray) -> list[np.ndarray]:
    """The eight turns and mirrors of a stack of square thumbnails (n, s, s)."""
    out = []
    for flip in (False, True):
        x = t[:, :, ::-1] if flip else t
        out.extend(np.rot90(x, k, axes=(1, 2)) for k in range(4))
    return out


def dihedral_pairs(thumbs: np.ndarray, min_similarity: float = DIHEDRAL_SIMILARITY,
                   k: int = DIHEDRAL_K) -> list[tuple[int, int, float]]:
    """Pairs (i < j, correlation) whose thumbnails match after one of the 8 turns/mirrors.

    Turned and flipped thumbnails are searched against each other (faiss inner product of zero-mean
    unit vectors = correlation): turned and mirrored copies are proposed even where the embedding
    of a turned picture is far from the original's. Each thumbnail is indexed in one canonical
    turn/flip, the one that puts its brightness centroid (first moments) at an angle of 0-45
    degrees; a copy's centroid turns with it, so it meets the original there. Thumbnails whose
    centroid lies within ``CANON_MARGIN`` degrees of an edge of that range, or near the centre
    (``CANON_WEAK``), query every turn/flip that could be canonical: about 1.6 queries a thumbnail
    instead of 8. Flat thumbnails propose nothing.
    """
    from .neighbors import knn

    t = np.asarray(thumbs, np.float32)
    n = len(t)
    if n < 2:
        return []
    spread = t.reshape(n, -1).std(axis=1)
    ok = np.flatnonzero(spread >= FLAT_THUMB)
    if len(ok) < 2:
        return []
    m, s = len(ok), t.shape[1]
    variants = _dihedral(t[ok])  # views
    c = np.arange(s, dtype=np.float32) - (s - 1) / 2.0
    norm = np.linalg.norm(t[ok].reshape(m, -1) - t[ok].reshape(m, -1).mean(axis=1, keepdims=True), axis=1)
    # first moments of the zero-mean unit thumbnails (the coordinates sum to 0: the mean drops out)
    mx = np.stack([np.einsum("nij,j->n", v, c) for v in variants]) / norm
    my = np.stack([np.einsum("nij,i->n", v, c) for v in variants]) / norm
    angle = np.degrees(np.arctan2(my, mx))  # (8, m)
    canon = np.argmax((angle >= 0) & (angle < 45), axis=0)
    maybe = ((angle >= -CANON_MARGIN) & (angle < 45 + CANON_MARGIN)) | (np.hypot(mx[0], my[0]) < CANON_WEAK)[None]
    base = np.empty((m, s * s), np.float32)
    for g, v in enumerate(variants):
        base[canon == g] = _unit_rows(v[canon == g])
    var_q, row_q = np.nonzero(maybe)
    queries = np.concatenate([_unit_rows(variants[g][row_q[var_q == g]]) for g in range(8)])
    row_q = np.concatenate([row_q[var_q == g] for g in range(8)])
    kk = min(k + 1, m)
    sims, ids = knn(base, kk, queries=queries, exact=m <= DIHEDRAL_EXACT)
    rows = np.broadcast_to(row_q[:, None], ids.shape)
    sel = (ids >= 0) & (sims >= min_similarity) & (ids != rows)
    a, b, sv = ok[rows[sel]], ok[ids[sel]], sims[sel]
    best: dict[tuple[int, int], float] = {}
    for x, y, v in zip(np.minimum(a, b), np.maximum(a, b), sv):
        key = (int(x), int(y))
        best[key] = max(best.get(key, -1.0), float(v))
    return sorted((a, b, s) for (a, b), s in best.items())


def preview(rgb: np.ndarray, side: int = PREVIEW) -> np.ndarray:
    """What the quick pre-check of a candidate pair (``quick_score``) looks at: the grey picture with
    its longer side at most ``side`` (area filter, aspect kept), high-passed (``QUICK_SIGMA``), as
    int8; ``-128`` marks pixels that are black (or next to black) in the picture: erased or fill."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    h, w = gray.shape[:2]
    s = min(1.0, side / float(max(h, w)))
    size = (max(4, round(w * s)), max(4, round(h * s)))
    g = cv2.resize(np.ascontiguousarray(gray, dtype=np.uint8), size, interpolation=cv2.INTER_AREA)
    out = np.clip(np.rint(_high_pass(g)), -127, 127).astype(np.int8)
    out[cv2.dilate((g < BLACK).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0] = -128
    return out


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Each of ``x``'s items flattened to a row, centred and scaled to unit length (``_unit``)."""
    return _unit(x.reshape(len(x), int(np.prod(x.shape[1:]))).astype(np.float32))[0]


def thumb_correlation(thumbs: np.ndarray, pairs: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Correlation of the thumbnails of each pair (a, b), best over the 8 turns/flips of a;
    vectorised in batches (memory stays bounded). Each thumbnail is normalised once; a turn or
    flip of a batch of them is a strided view, so nothing is copied per variant."""
    t = np.asarray(thumbs, np.float32)
    n, s = t.shape[:2]
    u = _unit_rows(t).reshape(n, s, s)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    out = np.empty(len(pairs), np.float32)
    for i in range(0, len(pairs), batch):
        a, b = u[pairs[i:i + batch, 0]], u[pairs[i:i + batch, 1]]
        best = np.full(len(a), -np.inf, np.float32)
        for v in _dihedral(a):
            np.maximum(best, np.einsum("bij,bij->b", v, b), out=best)
        out[i:i + batch] = best
    return out


def _high_pass(x: np.ndarray) -> np.ndarray:
    import cv2

    x = x.astype(np.float32)
    return x - cv2.GaussianBlur(x, (0, 0), QUICK_SIGMA)


def _pixels(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Previews' pixels as float32 (0 where black: -128) and where they are not black."""
    levels = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.float32)
    levels[128] = 0.0  # -128: erased or fill
    return levels[np.ascontiguousarray(p).view(np.uint8)], p != -128


def _halve(x: np.ndarray) -> np.ndarray:
    """(n, h, w) -> (n, h // 2, w // 2): mean of each 2 x 2 block (strided adds: no temporaries of
    the block layout, which cost more than the correlations that follow)."""
    h2, w2 = x.shape[1] // 2, x.shape[2] // 2
    return 0.25 * (x[:, 0:2 * h2:2, 0:2 * w2:2] + x[:, 1:2 * h2:2, 0:2 * w2:2]
                   + x[:, 0:2 * h2:2, 1:2 * w2:2] + x[:, 1:2 * h2:2, 1:2 * w2:2])


def _unit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` (n, k) centred and scaled to unit length, and whether each had any spread."""
    x = x - x.mean(axis=1, keepdims=True)
    ss = np.einsum("bk,bk->b", x, x)
    return x / np.sqrt(np.maximum(ss, 1e-12))[:, None], ss > 1e-3


def _same_size(prev: np.ndarray, ia: np.ndarray, ib: np.ndarray, batch: int = 1024) -> np.ndarray:
    """``same_size_scores`` of the pairs (``prev[ia[j]]``, ``prev[ib[j]]``) from a stack of distinct
    previews of one shape, vectorised: each picture is prepared once (centred pixels and their norm;
    at half resolution its Fourier transform, the energy of each of its shifted windows, and its
    inner part as a unit template, transformed), then each batch of pairs costs a dot product and
    one small inverse FFT (the correlation at every shift at once). ``gate_pairs`` passes runs of
    pairs in ``_graph_order``, so a run has few distinct pictures to prepare."""
    u, h, w = prev.shape
    n = len(ia)
    x, ok = _pixels(prev)
    x, ok = x.reshape(u, -1), ok.reshape(u, -1)
    masked = ~ok.all(axis=1)
    centred = x - x.mean(axis=1, keepdims=True)
    ss0 = np.einsum("bk,bk->b", centred, centred)
    best = np.full(n, -1.0, np.float32)
    j = np.flatnonzero(~(masked[ia] | masked[ib]))
    for s in range(0, len(j), batch):
        r = j[s:s + batch]
        a, b = ia[r], ib[r]
        dot = np.einsum("bk,bk->b", centred[a], centred[b])
        good = (ss0[a] > 1e-3) & (ss0[b] > 1e-3)
        best[r] = np.where(good, dot / np.sqrt(np.maximum(ss0[a] * ss0[b], 1e-24)), -1.0)
    j = np.flatnonzero(masked[ia] | masked[ib])  # some pixels erased or fill: those black in neither
    if len(j):
        m = (ok[ia[j]] & ok[ib[j]]).astype(np.float32)
        xm, ym = x[ia[j]] * m, x[ib[j]] * m
        cnt = np.maximum(1.0, m.sum(axis=1))
        sx, sy = xm.sum(axis=1), ym.sum(axis=1)
        vx = np.einsum("bk,bk->b", xm, xm) - sx * sx / cnt
        vy = np.einsum("bk,bk->b", ym, ym) - sy * sy / cnt
        cov = np.einsum("bk,bk->b", xm, ym) - sx * sy / cnt
        good = (cnt >= 0.5 * h * w) & (vx > 1e-3) & (vy > 1e-3)
        best[j] = np.where(good, cov / np.sqrt(np.maximum(vx * vy, 1e-12)), -1.0)
    h2, w2 = h // 2, w // 2
    ry, rx = int(np.ceil(h2 * QUICK_INNER)), int(np.ceil(w2 * QUICK_INNER))
    th, tw = h2 - 2 * ry, w2 - 2 * rx
    if min(th, tw) < 4:
        return best
    xh = _halve(x.reshape(u, h, w))
    xh -= xh.mean(axis=(1, 2), keepdims=True)  # changes no centred window nor its correlations
    tmpl, tok = _unit(np.ascontiguousarray(xh[:, ry:h2 - ry, rx:w2 - rx]).reshape(u, -1))
    # centred energy of each window (shift) of each picture: band matrices sum the windows
    rows = (np.arange(h2)[None, :] - np.arange(2 * ry + 1)[:, None] >= 0) & \
        (np.arange(h2)[None, :] - np.arange(2 * ry + 1)[:, None] < th)
    cols = (np.arange(w2)[:, None] - np.arange(2 * rx + 1)[None, :] >= 0) & \
        (np.arange(w2)[:, None] - np.arange(2 * rx + 1)[None, :] < tw)
    rows, cols = rows.astype(np.float32), cols.astype(np.float32)
    s1, s2 = rows @ xh @ cols, rows @ np.square(xh) @ cols
    energy = s2 - s1 * s1 / (th * tw)  # (u, 2 ry + 1, 2 rx + 1)
    norm = np.where(energy > 1e-3, 1.0 / np.sqrt(np.maximum(energy, 1e-12)), 0.0).astype(np.float32)
    # the template is centred, so each window's mean drops out of its dot product with it: a
    # circular correlation of the (h2, w2) picture with the zero-padded template, which does not
    # wrap at the shifts wanted (at most 2 r), gives them all
    from scipy import fft

    spec = fft.rfft2(xh)
    pad = np.zeros((u, h2, w2), np.float32)
    pad[:, :th, :tw] = tmpl.reshape(u, th, tw)
    tspec = np.conj(fft.rfft2(pad))
    for s in range(0, n, batch):
        a, b = ia[s:s + batch], ib[s:s + batch]
        c = fft.irfft2(spec[a] * tspec[b], s=(h2, w2))[:, :2 * ry + 1, :2 * rx + 1] * norm[a]
        c = np.where((norm[a] > 0) & tok[b][:, None, None], c, -1.0)
        np.maximum(best[s:s + batch], c.reshape(len(a), -1).max(axis=1), out=best[s:s + batch])
    return best


def same_size_scores(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """``quick_score`` of pairs of pictures of one pixel size, previews stacked as (n, h, w):
    vectorised. The best of the correlation of the pixels black in neither (an erased part) and,
    at half the preview's resolution, of the inner ``1 - 2 QUICK_INNER`` of ``pb`` shifted by up to
    ``QUICK_INNER`` of the side over ``pa`` (a recapture, a slightly shifted crop)."""
    n = len(pa)
    if n == 0:
        return np.zeros(0, np.float32)
    return _same_size(np.concatenate([pa, pb]), np.arange(n), n + np.arange(n))


def quick_score(pa: np.ndarray, size_a: tuple[int, int], pb: np.ndarray, size_b: tuple[int, int]) -> float:
    """A cheap look at two previews (``preview``) of pictures of ``size`` (w, h) pixels: could one be
    a crop, padded copy, recapture or edited copy of the other? On the high-passed previews
    (look-alikes share their low frequencies; a colour curve keeps the edges):

    - pictures of one size: ``same_size_scores`` (pixels black in neither; small shifts);
    - else the smaller picture (edges cut by ``QUICK_INNER``) found inside the larger one at the
      scale of their pixels (template matching: a crop keeps its pixels, a padded copy holds the
      original).

    It only decides which pairs are worth the full check (``verify.compare``), so it errs on
    passing; resized or turned crops rely on the other gates (thumbnails, embeddings)."""
    import cv2

    if tuple(size_a) == tuple(size_b) and pa.shape == pb.shape:
        return float(same_size_scores(pa[None], pb[None])[0])
    P = max(1.0, max(tuple(size_a) + tuple(size_b)) / float(PREVIEW))  # original pixels per preview pixel

    def at_scale(p, size):
        dims = (max(4, round(size[0] / P)), max(4, round(size[1] / P)))
        x = _pixels(p)[0]
        return x if x.shape[::-1] == dims else cv2.resize(x, dims, interpolation=cv2.INTER_AREA)

    xa, xb = at_scale(pa, size_a), at_scale(pb, size_b)
    big, small = (xa, xb) if xa.size >= xb.size else (xb, xa)
    h, w = small.shape
    dy, dx = round(h * QUICK_INNER), round(w * QUICK_INNER)
    tmpl = np.ascontiguousarray(small[dy:h - dy, dx:w - dx])
    if tmpl.size < 64 or tmpl.shape[0] > big.shape[0] or tmpl.shape[1] > big.shape[1]:
        return -1.0
    res = cv2.matchTemplate(big, tmpl, cv2.TM_CCOEFF_NORMED)
    return float(np.nan_to_num(res, nan=-1.0).max())


def gate_pairs(pairs: Sequence[tuple[int, int]], vectors: np.ndarray, thumbs: np.ndarray,
               previews: Sequence[np.ndarray], sizes: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Which candidate pairs go on to the full check: thumbnails (``GATE_THUMB``), embeddings
    (``GATE_COS``) or previews (``GATE_QUICK``, ``quick_score``) say they could be copies.
    Rejecting the rest here costs microseconds a pair (pairs of one size: vectorised) instead of
    the milliseconds of keypoints and alignment."""
    from concurrent.futures import ThreadPoolExecutor

    from ..system import cpu_threads

    p = np.asarray(pairs, np.int64).reshape(-1, 2)
    keep = np.zeros(len(p), bool)
    if not len(p):
        return keep
    keep |= thumb_correlation(thumbs, p) >= GATE_THUMB
    v = np.asarray(vectors, np.float32)
    for s in range(0, len(p), batch):
        q = p[s:s + batch]
        keep[s:s + batch] |= np.einsum("ij,ij->i", v[q[:, 0]], v[q[:, 1]]) >= GATE_COS
    sizes = np.asarray(sizes, np.int64)
    shape = np.array([pv.shape for pv in previews], np.int64)
    todo = np.flatnonzero(~keep)
    a, b = p[todo, 0], p[todo, 1]
    same = (sizes[a] == sizes[b]).all(axis=1) & (shape[a] == shape[b]).all(axis=1)

    def one_size(rows: np.ndarray) -> np.ndarray:
        ids, inv = np.unique(p[rows], return_inverse=True)  # each picture prepared once per batch
        inv = inv.reshape(-1, 2)
        return _same_size(np.stack([previews[i] for i in ids]), inv[:, 0], inv[:, 1]) >= GATE_QUICK

    def other(rows: np.ndarray) -> np.ndarray:
        return np.array([quick_score(previews[i], tuple(sizes[i]), previews[j], tuple(sizes[j])) >= GATE_QUICK
                         for i, j in p[rows]], bool)

    jobs = []
    rows_same = todo[same]
    key = shape[p[rows_same, 0]]
    for sh in np.unique(key, axis=0):  # one stack per preview shape; batches share pictures
        rows = rows_same[(key == sh).all(axis=1)]
        rows = rows[_graph_order(p[rows])]
        jobs += [(one_size, rows[s:s + QUICK_BATCH]) for s in range(0, len(rows), QUICK_BATCH)]
    rows = todo[~same]
    jobs += [(other, rows[s:s + QUICK_BATCH]) for s in range(0, len(rows), QUICK_BATCH)]
    with ThreadPoolExecutor(max(1, min(4, cpu_threads()))) as pool:  # numpy and OpenCV release the GIL
        for (_, rows), ok in zip(jobs, pool.map(lambda j: j[0](j[1]), jobs)):
            keep[rows] = ok
    return keep


class PairVerifier:
    """Compares pairs of items by pixels, two threads at a time (OpenCV releases the GIL).

    Features are computed once per item and kept in a bounded cache, so memory stays flat on
    large collections; an item that cannot be read fails its pairs (score 0).
    """

    def __init__(self, load: Loader, cache: int = FEATURE_CACHE, threads: int | None = None):
        from ..system import cpu_threads

        self.load = load
        self.cache: OrderedDict[int, Features | None] = OrderedDict()
        self.size = cache
        self.threads = threads or max(1, min(4, cpu_threads()))
        self.compared = 0  # pairs fully checked so far
        self.computed = 0  # features computed so far (more than ``len(seen)`` when the cache dropped some)
        self.seen: set[int] = set()  # items compared so far

    def _features(self, i: int) -> Features | None:
        try:
            return features(self.load(i))
        except Exception:  # noqa: BLE001 - a vanished or corrupt file must not stop the run
            return None

    def check(self, pairs: Sequence[tuple[int, int]]) -> dict[tuple[int, int], PairCheck]:
        """Scores of ``pairs`` (computed in order-independent batches; same result every run)."""
        from concurrent.futures import ThreadPoolExecutor

        out: dict[tuple[int, int], PairCheck] = {}
        if not pairs:
            return out
        self.compared += len(pairs)
        with ThreadPoolExecutor(self.threads) as pool:
            for s in range(0, len(pairs), BATCH_PAIRS):
                batch = list(pairs[s:s + BATCH_PAIRS])
                need = sorted({i for p in batch for i in p} - set(self.cache))
                self.computed += len(need)
                self.seen.update(need)
                for i, f in zip(need, pool.map(self._features, need)):
                    self.cache[i] = f
                for i in {i for p in batch for i in p}:
                    self.cache.move_to_end(i)

                def one(p):
                    fa, fb = self.cache.get(p[0]), self.cache.get(p[1])
                    return compare(fa, fb) if fa is not None and fb is not None else PairCheck(0.0, "none")

                out.update(zip(batch, pool.map(one, batch)))
                self._trim(keep=2 * BATCH_PAIRS)
        return out

    def _trim(self, keep: int) -> None:
        """Drop the least recently used features beyond ``size`` items or ``CACHE_BYTES`` (never the
        ``keep`` most recent: the current batch needs them)."""
        def size(f):
            return 0 if f is None else f.nbytes() + (f._mirror.nbytes() if f._mirror is not None else 0)

        total = sum(size(f) for f in self.cache.values())
        while len(self.cache) > keep and (len(self.cache) > self.size or total > CACHE_BYTES):
            _, f = self.cache.popitem(last=False)
            total -= size(f)


def verify_pairs(pairs: Sequence[tuple[int, int]], load: Loader) -> dict[tuple[int, int], PairCheck]:
    """Compare the pixels of each pair (``load(i)`` gives item ``i``'s RGB pixels); an item that
    cannot be read fails its pairs (score 0)."""
    return PairVerifier(load).check(pairs)


def _graph_order(pairs: np.ndarray) -> np.ndarray:
    """An order of ``pairs`` ((m, 2) rows of picture numbers) that keeps each picture's pairs close
    together: pictures numbered by a reverse Cuthill-McKee walk of the pair graph (scipy: connected
    sets one after the other, neighbours near each other), pairs sorted by their pictures' numbers.
    A run of pairs then needs few distinct pictures (their features, their prepared previews)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    p = np.asarray(pairs, np.int64).reshape(-1, 2)
    if not len(p):
        return np.zeros(0, np.int64)
    ids, p = np.unique(p, return_inverse=True)  # the pictures these pairs have, numbered 0..n-1
    p, n = p.reshape(-1, 2), len(ids)
    graph = coo_matrix((np.ones(len(p), np.int8), (p[:, 0], p[:, 1])), shape=(n, n)).tocsr()
    pos = np.empty(n, np.int64)
    pos[reverse_cuthill_mckee(graph + graph.T, symmetric_mode=True)] = np.arange(n)
    a, b = pos[p[:, 0]], pos[p[:, 1]]
    return np.lexsort((np.maximum(a, b), np.minimum(a, b)))


def _local_order(cands: list) -> list:
    """``cands`` ((a, b), score) in ``_graph_order``: each picture's features are computed once and
    stay in the bounded cache while its pairs are compared, rather than dropped and computed again
    (what is verified does not depend on the order)."""
    return [cands[i] for i in _graph_order(np.array([c[0] for c in cands], np.int64))]


def _keep_order(items, keep: str) -> np.ndarray:
    """Rank of every item as the one to keep (0 = best): computed once, so choosing the keeper of
    a group costs its size, not the collection's."""
    def col(name: str, default: float = 0.0) -> np.ndarray:
        if name in items.columns:
            return items[name].fillna(default).to_numpy(dtype=float)
        return np.full(len(items), default)

    idx = np.arange(len(items))
    if keep == "first":
        keys = (idx,)
    elif keep == "sharpest":
        keys = (idx, -col("sharpness"))
    else:
        keys = (idx, -col("bytes"), -(col("width") * col("height")))
    rank = np.empty(len(items), np.int64)
    rank[np.lexsort(keys)] = idx
    return rank


def _keeper(members: list[int], rank: np.ndarray) -> int:
    return min(members, key=lambda i: rank[i])


def content_area(rgb: np.ndarray) -> float:
    """Pixels of a picture inside the uniform rows and columns along its edges (letterbox bars,
    padding of any one colour, a plain background; spread under ``PAD_SPREAD`` grey levels),
    trimmed in turn until none is left: a padded copy and its original measure alike."""
    x = np.asarray(rgb, np.float32)
    g = x.mean(axis=2) if x.ndim == 3 else x
    y0, y1, x0, x1 = 0, g.shape[0], 0, g.shape[1]
    for _ in range(4):  # bars along one side cut rows across the other: trim until nothing changes
        box = g[y0:y1, x0:x1]
        if box.size == 0:
            return 0.0
        r, c = np.flatnonzero(box.std(axis=1) >= PAD_SPREAD), np.flatnonzero(box.std(axis=0) >= PAD_SPREAD)
        if not len(r) or not len(c):
            return 0.0
        new = (y0 + r[0], y0 + r[-1] + 1, x0 + c[0], x0 + c[-1] + 1)
        if new == (y0, y1, x0, x1):
            break
        y0, y1, x0, x1 = new
    return float((y1 - y0) * (x1 - x0))


def _keepers(merged: list[int], rank: np.ndarray, kept_a: int, kept_b: int, area: np.ndarray) -> list[int]:
    """Who may keep a merged group, in the order tried (the keep policy's order): the policy's
    first choice, then those of its ``KEEPER_TRIES`` best members and the kept items of the two
    groups that have fewer pixels (``area``) than it. A padded copy or an upscaled thumbnail may be the
    largest file while a crop of the original does not verify against it: the group then keeps the
    original, against which every member does verify, rather than leaving the padded copy out.
    ``find_duplicates`` lets one of them keep only when no member shows more of the picture: each
    lies inside it (``WHOLE``: a resized, re-encoded, turned or cropped copy) or has about as many
    pixels inside any padding (``content_area``: a padded copy). A crop that lies inside two pictures
    that are no copies of each other never keeps them both. Among files of one size the keep policy
    has nothing to do with padding, and retrying them after every refused merge of shifted tiles
    would cost a fifth more verified pairs at scale."""
    best = sorted(merged, key=lambda i: rank[i])[:KEEPER_TRIES]
    first = best[0]
    smaller = {k for k in (*best, kept_a, kept_b) if area[k] < area[first]}
    return [first] + sorted(smaller, key=lambda i: rank[i])


def reason_of(check: PairCheck, same_size: bool) -> str:
    """What makes a verified copy differ from its kept file, as ``+``-joined kinds: ``mirrored``,
    ``rotated``, ``cropped`` (also padded or wider), ``resized``, ``colour``, ``edited``; a copy with
    none of these (another JPEG quality, a blur, a format change) is ``reencoded``."""
    kinds = []
    if check.mirrored:
        kinds.append("mirrored")
    turn = abs(check.rotation) % 360.0
    if min(turn, 360.0 - turn) > 1.5:
        kinds.append("rotated")
    if min(check.coverage, check.inside) < 0.9:
        kinds.append("cropped")
    elif not same_size:
        kinds.append("resized")
    if check.colour:
        kinds.append("colour")
    if check.edited > 0.05:
        kinds.append("edited")
    return "+".join(kinds) or "reencoded"


def find_duplicates(vectors: np.ndarray, items: "pd.DataFrame", *,  # noqa: F821
                    threshold: float = DEFAULT_THRESHOLD, keep: str = "largest",
                    candidate_similarity: float = CANDIDATE_SIMILARITY, k: int = K,
                    verify: bool = True, turned: Mapping[int, np.ndarray] | None = None,
                    load: Loader | None = None, progress: bool | None = None,
                    thumbs: np.ndarray | None = None,
                    previews: Sequence[np.ndarray] | None = None) -> "pd.DataFrame":  # noqa: F821
    """One row per item: ``group`` (-1 when unique), ``keep``, ``score``, ``is_duplicate``, ``reason``.

    ``is_duplicate`` marks the items that could be removed (in a group and not kept); ``score``
    is the similarity to the group's kept item (1.0 for exact copies and for the keeper itself;
    every non-kept member scores at least ``threshold``), ``reason`` says how a member differs
    from the kept item (``exact``, ``reencoded``, ``resized``, ``cropped``, ``mirrored``,
    ``rotated``, ``colour``, ``edited``, joined by ``+``; ``kept`` for the kept item). With
    ``verify=False`` the embedding cosine alone decides (then ``threshold`` applies to the cosine
    and ``reason`` is ``near``). ``turned``: see ``candidate_pairs``. ``thumbs``: (n, s, s) grey
    thumbnails (``thumbnail``) for the turn/mirror candidates of ``dihedral_pairs``. ``previews``:
    one grey ``preview`` per row; with ``thumbs`` they let ``gate_pairs`` reject most candidate
    pairs cheaply before the full check (without them every candidate is fully checked).
    ``load(i)`` returns the RGB pixels of row ``i`` (needed when ``verify``). ``attrs["pairs"]`` of
    the result counts the candidate pairs, those rejected cheaply, the pairs fully checked, and the
    verification features computed (``features``) for how many pictures (``pictures``).
    """
    import pandas as pd

    from ..progress import progress_bar

    if keep not in KEEP_POLICIES:
        raise ValueError(f"keep must be one of {', '.join(KEEP_POLICIES)}, not {keep!r}")
    if verify and load is None:
        raise ValueError("verify=True needs a pixel loader: load(i) -> RGB array of row i")
    n = len(items)
    exact = _UnionFind(n)
    for a, b in exact_pairs(items):
        exact.union(a, b)
    rep = np.array([exact.find(i) for i in range(n)])  # one representative per set of exact copies
    uf = _UnionFind(n)
    for i in range(n):
        uf.union(i, int(rep[i]))
    found = candidate_pairs(vectors, candidate_similarity if verify else threshold, k, turned if verify else None)
    if verify and thumbs is not None:
        found += dihedral_pairs(thumbs)
    best: dict[tuple[int, int], float] = {}
    for a, b, s in found:
        ra, rb = int(rep[a]), int(rep[b])
        if ra != rb:
            key = (min(ra, rb), max(ra, rb))
            best[key] = max(best.get(key, -1.0), s)
    cands = sorted(best.items(), key=lambda c: (-c[1], c[0]))  # most similar first: big groups form early
    counts = {"candidates": len(cands), "rejected_cheaply": 0, "checked": 0}
    if verify and thumbs is not None and previews is not None and cands:
        wh = np.stack([items[c].fillna(0).to_numpy(dtype=np.int64) if c in items.columns else np.zeros(n, np.int64)
                       for c in ("width", "height")], axis=1)
        known = (wh > 0).all(axis=1)
        for i in np.flatnonzero(~known):  # size unknown: the preview's own (crops at scale then go unseen)
            wh[i] = previews[i].shape[::-1]
        passed = gate_pairs([p for p, _ in cands], vectors, thumbs, previews, wh)
        counts["rejected_cheaply"] = int((~passed).sum())
        cands = [c for c, ok in zip(cands, passed) if ok]
    checked: dict[tuple[int, int], PairCheck] = {}
    verifier = PairVerifier(load) if verify else None
    cands = _local_order(cands)  # what is verified does not depend on the order; the cache does

    def cosine(pairs):
        return {(a, b): PairCheck(float(vectors[a] @ vectors[b]), "cosine") for a, b in pairs}

    with progress_bar(len(cands), "verifying pairs", enabled=progress, unit="pairs") as bar:
        for s in range(0, len(cands), BATCH_PAIRS):
            batch = [p for p, _ in cands[s:s + BATCH_PAIRS]]
            got = verifier.check(batch) if verifier is not None else cosine(batch)
            checked.update(got)
            bar.advance(len(batch))

    def score_to(kept: int, members: list[int], need: float | None = None) -> dict[int, PairCheck] | None:
        """Each member checked against ``kept`` (ordered: the reason is the member's change). With
        ``need`` (a merge): None as soon as one member scores below it, the pairs being verified in
        batches that stop at the first failure (the outcome is the same; the cost is not)."""
        out, todo = {}, []
        for m in members:
            if rep[m] == rep[kept]:
                out[m] = PairCheck(1.0, "exact")
            elif (int(rep[kept]), int(rep[m])) in checked:
                out[m] = checked[(int(rep[kept]), int(rep[m]))]
                if need is not None and out[m].score < need:
                    return None
            else:
                todo.append((int(rep[kept]), int(rep[m])))
        todo = list(dict.fromkeys(todo))
        for s in range(0, len(todo), BATCH_PAIRS):
            got = verifier.check(todo[s:s + BATCH_PAIRS]) if verifier is not None else cosine(todo[s:s + BATCH_PAIRS])
            checked.update(got)
            if need is not None and any(c.score < need for c in got.values()):
                return None
        for m in members:
            if m not in out:
                out[m] = checked[(int(rep[kept]), int(rep[m]))]
        return out

    def col(name: str) -> np.ndarray:
        return items[name].fillna(0).to_numpy() if name in items.columns else np.zeros(n)

    area = col("width") * col("height")
    areas: dict[int, float] = {}

    def content(i: int) -> float:
        """Pixels of item ``i`` inside any uniform bars (padding): a member that extends beyond a
        fallback keeper must have no more of them than the keeper (``_keepers``)."""
        if i not in areas:
            try:
                areas[i] = content_area(load(i)) if load is not None else float(area[i])
            except Exception:  # noqa: BLE001 - unreadable: it keeps nothing
                areas[i] = 0.0
        return areas[i]

    # groups grow along verified pairs, strongest first; two groups merge only when every member
    # of both verifies against the kept item of the merged group, so a chain A~B~C whose ends
    # differ stays apart, and a copy joins the group of the picture it copies best
    members_of: dict[int, list[int]] = {}
    for i in range(n):
        members_of.setdefault(uf.find(i), []).append(i)
    rank = _keep_order(items, keep)
    kept_of = {r: _keeper(m, rank) for r, m in members_of.items() if len(m) > 1}
    scores_of: dict[int, dict[int, PairCheck]] = {r: score_to(kept_of[r], [x for x in m if x != kept_of[r]])
                                                  for r, m in members_of.items() if len(m) > 1}
    edges = sorted(((c.score, p) for p, c in checked.items() if c.score >= threshold and p[0] < p[1]),
                   key=lambda e: (-e[0], e[1]))
    for _, (a, b) in edges:
        ra, rb = uf.find(a), uf.find(b)
        if ra == rb:
            continue
        merged = members_of[ra] + members_of[rb]
        scores, first = None, _keeper(merged, rank)
        for kept in _keepers(merged, rank, kept_of.get(ra, members_of[ra][0]), kept_of.get(rb, members_of[rb][0]),
                             area):
            scores = score_to(kept, [m for m in merged if m != kept], need=threshold)
            if scores is not None and kept != first and not all(
                    c.inside >= WHOLE or KEEPER_CONTENT * content(m) <= content(kept) for m, c in scores.items()):
                scores = None  # a member shows more of the picture than it (not padding): it may not keep
            if scores is not None:
                break
        if scores is not None:
            uf.union(ra, rb)
            r = uf.find(ra)
            for old in (ra, rb):
                members_of.pop(old, None)
                kept_of.pop(old, None)
                scores_of.pop(old, None)
            members_of[r], kept_of[r], scores_of[r] = merged, kept, scores
    plans = [(kept_of[r], sorted(m), scores_of[r]) for r, m in members_of.items() if len(m) > 1]
    plans.sort(key=lambda p: p[1][0])

    width, height = col("width"), col("height")
    group = np.full(n, -1, np.int64)
    keep_flag = np.zeros(n, bool)
    score = np.zeros(n, np.float32)
    reason = np.array([""] * n, dtype=object)
    for g, (kept, members, scores) in enumerate(plans):
        keep_flag[kept] = True
        for m in members:
            group[m] = g
            if m == kept:
                score[m], reason[m] = 1.0, "kept"
                continue
            c = scores[m]
            score[m] = max(0.0, c.score) if c.method != "exact" else 1.0
            if c.method == "exact":
                reason[m] = "exact"
            elif not verify:
                reason[m] = "near"
            else:
                turned_q = abs(round(c.rotation / 90.0)) % 2 == 1
                dims_m = (height[m], width[m]) if turned_q else (width[m], height[m])
                reason[m] = reason_of(c, dims_m == (width[kept], height[kept]))
    out = pd.DataFrame({
        "group": group, "keep": keep_flag, "score": np.round(score, 4),
        "is_duplicate": (group >= 0) & ~keep_flag, "reason": reason,
    })
    counts["checked"] = verifier.compared if verifier is not None else 0
    counts["features"] = verifier.computed if verifier is not None else 0
    counts["pictures"] = len(verifier.seen) if verifier is not None else 0
    out.attrs["pairs"] = counts
    return out


def summary(result: "pd.DataFrame", sizes: Sequence[int] | None = None) -> dict[str, int]:  # noqa: F821
    """Counts for the CLI: items, groups, removable items and the bytes removing them would free."""
    dup = result["is_duplicate"].to_numpy()
    out = {"items": len(result), "groups": int(result["group"].max() + 1) if len(result) else 0,
           "removable": int(dup.sum()), "bytes": 0}
    if sizes is not None:
        out["bytes"] = int(np.asarray(sizes, dtype=np.int64)[dup].sum())
    return out


def duplicates_table(items: "pd.DataFrame", result: "pd.DataFrame") -> "pd.DataFrame":  # noqa: F821
    """The ``duplicates.csv`` rows: one per item in a group, keeper first, with where and why.

    Columns ``group,path,keep,score`` then ``reason`` (see ``find_duplicates``), ``frame``, ``window``
    (``x,y,w,h`` of a tile), ``width``, ``height`` and ``bytes`` where known.
    """
    import pandas as pd

    from ..items import window_text

    sel = np.flatnonzero(result["group"].to_numpy() >= 0)
    it = items.iloc[sel].reset_index(drop=True)
    res = result.iloc[sel].reset_index(drop=True)

    table = pd.DataFrame({
        "group": res["group"].astype(int), "path": it["path"], "keep": res["keep"].astype(bool),
        "score": res["score"].astype(float).round(4), "reason": res["reason"],
        "frame": it["frame"].astype(int) if "frame" in it else -1,
        "window": [window_text(r.x, r.y, r.w, r.h) for r in it.itertuples()] if "x" in it else "",
        "width": it["width"].astype(int) if "width" in it else 0,
        "height": it["height"].astype(int) if "height" in it else 0,
        "bytes": it["bytes"].astype("int64") if "bytes" in it else 0,
    })
    table["_k"] = ~table["keep"]
    table = table.sort_values(["group", "_k", "score", "path"], ascending=[True, True, False, True], kind="stable")
    return table.drop(columns="_k").reset_index(drop=True)
