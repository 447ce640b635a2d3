"""Keyframe selection: one sharp frame per distinct thing a video shows, nothing shown twice.

A pure function of per-frame embeddings (in time order) and the frames' sharpness; it knows
nothing about files, models or HTML.
"""

from __future__ import annotations

DEFAULT_THRESHOLD = 0.75  # cosine similarity at or above which two frames show the same thing
LAYOUT_THRESHOLD = 0.5    # a repeat must also look alike in a tiny grey thumbnail (same framing)
LOOK_MIN_S = 1.0          # a new look of an untracked stretch lasts at least this long (a swing is no new look)


def select_keyframes(vectors: "np.ndarray", items: "pd.DataFrame",  # noqa: F821
                     threshold: float = DEFAULT_THRESHOLD, layout: "np.ndarray | None" = None,  # noqa: F821
                     layout_threshold: float = LAYOUT_THRESHOLD) -> "pd.DataFrame":  # noqa: F821
    """Pick keyframes from one video's sampled frames.

    ``vectors``: L2-normalised embeddings, one row per frame of ``items`` (columns ``frame``,
    ``time_s`` and optionally ``sharpness``). Steps:

    1. Runs: consecutive frames stay in one run while each is at least ``threshold`` similar to
       the run's mean (a cut or a slow drift away from what the run shows starts a new run).
    2. Candidate per run: among the run's frames that stand for it (at least ``threshold`` similar
       to its mean and within ``(1 - threshold) / 2`` of the most central frame), the sharpest one
       (variance of the Laplacian), so a blurred frame is not kept when a sharp one exists.
    3. Repeats: a run whose frames are (by their median) at least ``threshold`` similar to any
       keyframe kept so far (not just the previous one) shows nothing new and keeps no frame.
       With ``layout`` (one L2-normalised, mean-removed tiny thumbnail per frame) the repeat must
       also be seen in the pixels: some frame of the run at least ``layout_threshold`` correlated
       with that keyframe. Global embeddings call two different fields of the same crop "the
       same"; a shot that really returns shows the same framing.

    Returns one row per input row (same order) with ``segment`` (run id, in time order), ``shot``
    (the segment whose keyframe stands for this one: repeats point to the earlier segment),
    ``repeat`` (the segment shows something already kept), ``keep`` (this frame is a keyframe) and
    ``score``: for a keyframe, its cosine distance to the most similar other keyframe (how much it
    adds); for any other frame, its cosine distance to the most similar keyframe (what dropping
    it loses).
    """
    import numpy as np
    import pandas as pd

    n = len(items)
    out = pd.DataFrame({"frame": items["frame"].to_numpy(), "time_s": items["time_s"].to_numpy()})
    if n == 0:
        for col, dtype in (("segment", int), ("shot", int), ("is_repeat", bool), ("is_keyframe", bool), ("score", float)):
            out[col] = pd.Series(dtype=dtype)
        return out
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    order = np.argsort(items["frame"].to_numpy(), kind="stable")
    sharp = (items["sharpness"].to_numpy(dtype=np.float64) if "sharpness" in items
             else np.zeros(n, np.float64))
    sharp = np.nan_to_num(sharp, nan=0.0)

    # 1. runs of similar consecutive frames
    segment = np.empty(n, np.int64)
    runs: list[list[int]] = []
    acc = None
    for i in order:
        if acc is not None:
            mean = acc / max(np.linalg.norm(acc), 1e-12)
            if float(v[i] @ mean) < threshold:
                acc = None
        if acc is None:
            runs.append([])
            acc = np.zeros(v.shape[1], np.float64)
        runs[-1].append(int(i))
        acc += v[i]
        segment[i] = len(runs) - 1

    # 2. the sharpest frame among those that represent the run (similar to its mean)
    candidates = []
    for members in runs:
        m = np.array(members)
        mean = v[m].sum(0)
        mean /= max(np.linalg.norm(mean), 1e-12)
        closeness = v[m] @ mean
        # frames that stand for the run: similar to its mean and not much less central than the
        # most central one (so a long pan is represented from its middle, not its edge)
        floor = max(threshold, float(closeness.max()) - (1.0 - threshold) / 2)
        pool = np.flatnonzero(closeness >= floor)
        best = pool[np.lexsort((-closeness[pool], -sharp[m[pool]]))[0]]  # sharpest, then most central
        candidates.append(int(m[best]))

    # 3. drop runs that repeat a kept keyframe: most of the run's frames (median) are at least
    #    ``threshold`` similar to one keyframe kept before (any of them, not just the previous one)
    cand = np.array(candidates)
    shot = np.arange(len(runs))
    kept_runs: list[int] = []
    lay = None if layout is None else np.asarray(layout, dtype=np.float32)
    for r, members in enumerate(runs):
        if kept_runs:
            sims = np.median(v[members] @ v[cand[kept_runs]].T, axis=0)
            ok = sims >= threshold
            if lay is not None and ok.any():
                ok &= (lay[members] @ lay[cand[kept_runs]].T).max(axis=0) >= layout_threshold
            if ok.any():
                shot[r] = kept_runs[int(np.argmax(np.where(ok, sims, -np.inf)))]
                continue
        kept_runs.append(r)
    keep = np.zeros(n, bool)
    keep[cand[kept_runs]] = True
    out["segment"] = segment
    out["shot"] = shot[segment]
    out["is_repeat"] = shot[segment] != segment
    out["is_keyframe"] = keep
    out["score"] = distance_scores(v, keep)
    return out


def distance_scores(v: "np.ndarray", keep: "np.ndarray") -> "np.ndarray":  # noqa: F821
    """Cosine distance of each frame to the nearest keyframe other than itself (1.0 when none)."""
    import numpy as np

    from .neighbors import knn

    kept = np.flatnonzero(keep)
    score = np.ones(len(v), np.float64)
    if len(kept) == 0:
        return score
    sims, ids = knn(v[kept], k=min(2, len(kept)), queries=v)
    for i in range(len(v)):
        for s, j in zip(sims[i], ids[i]):
            if j >= 0 and kept[j] != i:
                score[i] = 1.0 - float(s)
                break
    return np.clip(score, 0.0, 2.0)


def look_changes(vectors: "np.ndarray", sharpness: "np.ndarray", kept: "np.ndarray",  # noqa: F821
                 times: "np.ndarray | None" = None, threshold: float = DEFAULT_THRESHOLD,  # noqa: F821
                 layout: "np.ndarray | None" = None, min_s: float = LOOK_MIN_S) -> list[int]:  # noqa: F821
    """Frames to add to a stretch whose camera motion could not be measured (a swinging, blurred
    walk): where its look changes, as ``select_keyframes`` sees it (runs of similar embeddings, the
    sharpest representative frame of each, runs that repeat an earlier one dropped, ``layout`` as
    there), for runs that last at least ``min_s`` seconds (a swing that shows something else for a
    moment is no new look). ``vectors``, ``sharpness``, ``times``: the stretch's frames in time
    order (``times`` default: 1 s apart); ``kept``: which of them are keyframes already (a run, or a
    run it repeats, that has one adds none). Returns indices into the stretch."""
    import numpy as np
    import pandas as pd

    n = len(vectors)
    if n == 0:
        return []
    t = np.arange(n, dtype=np.float64) if times is None else np.asarray(times, np.float64)
    step = float(np.median(np.diff(t))) if n > 1 else 0.0
    items = pd.DataFrame({"frame": np.arange(n), "time_s": t, "sharpness": np.asarray(sharpness, np.float64)})
    runs = select_keyframes(vectors, items, threshold=threshold, layout=layout)
    seg = runs["segment"].to_numpy()
    lasts = {r: t[seg == r].max() - t[seg == r].min() + step for r in np.unique(seg)}
    has = set(runs["shot"].to_numpy()[np.asarray(kept, bool)])  # runs (or what they repeat) already kept
    return [int(i) for i in np.flatnonzero(runs["is_keyframe"].to_numpy())
            if runs["shot"].iat[i] not in has and lasts[seg[i]] >= min_s]
