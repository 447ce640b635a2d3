"""Outlier scoring: quality issues (absolute) and novelty (relative), fused without clipping.

Curators ask two questions, answered apart and then combined:

* **quality issues** (``ops.quality``): cloud, thin cloud / haze, snow, no data, dark, over-exposed,
  blurry, low information; each a calibrated ``<issue>_score`` (0-1) and ``is_<issue>``, per item,
  independent of the rest of the collection;
* **novelty** (``ops.novelty``): how little an item belongs to the collection (or to a clean
  reference) in embedding space, kNN distance at several neighbourhood sizes and a robust
  Mahalanobis (density) view, as ``novelty_score`` (interquartile ranges beyond the upper quartile of
  the collection's own evidence, ``novelty.fence_z``) and ``is_novel``.

``score`` is the log-odds that an item has some issue or does not belong: every piece of evidence is
turned into calibrated log-odds and fused as a noisy-OR (``fuse_logits``), which never clips, so
weak evidence still ranks above none and items tie only when identical. An item is an outlier when
its score is at least ``threshold`` (default 0: more likely than not), or when it is among the top
``contamination`` share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .novelty import (FIT_ROWS, MCD_DIMS, MCD_FIT_ROWS, PCA_ABOVE, SAMPLE_BASE, fence_z,  # noqa: F401
                      mcd_component, reduce_vectors, robust_distance, robust_z, sampled_neighbours)

DEFAULT_THRESHOLD = 0.0  # score is a log-odds: flag items more likely than not to have an issue or be novel
METHODS = ("auto", "knn", "lof", "mcd", "signals", "iforest")

# signal column -> (side, floor of its scale): "high" = only large values are outlying, "low" = only
# small ones, "both" = either
SIGNALS: dict[str, tuple[str, float]] = {
    "brightness": ("both", 0.03),
    "saturation": ("both", 0.03),
    "log_sharpness": ("both", 0.25),
    "nodata": ("high", 0.05),
    "sig_cloud": ("high", 0.05),
    "sig_snow": ("high", 0.05),
    "sig_vis_reflectance": ("both", 0.02),
    "sig_haze": ("high", 0.02),
    "sig_whiteness": ("low", 0.05),
    "sig_ndsi": ("high", 0.05),
}


def default_k(n: int) -> int:
    """Neighbourhood size: 30% of the collection, at least 5 and at most 100 (and below ``n``)."""
    return max(1, min(n - 1, max(5, min(100, round(0.3 * n)))))


def _graph(dist: np.ndarray, ids: np.ndarray, n_cols: int, with_self: bool = False):
    """A sparse distance graph (rows: queries, columns: base items) for scikit-learn's precomputed mode;
    ``with_self`` adds each row's own zero distance, which scikit-learn expects for the fitted items."""
    from scipy.sparse import csr_matrix

    if with_self:
        rows = np.arange(len(ids))[:, None]
        dist, ids = np.hstack([np.zeros_like(dist[:, :1]), dist]), np.hstack([rows, ids])
    n, k = ids.shape
    # tiny offset: explicit zero distances (exact duplicates) must stay stored entries
    return csr_matrix((dist.ravel() + 1e-9, ids.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n_cols))


def neighbour_components(vectors: np.ndarray, k: int, reference: np.ndarray | None = None,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Raw kNN distance (mean cosine distance to ``k`` nearest) and LOF of every item, plus the
    same for the reference items (leave-one-out) when ``reference`` is given, for calibration.

    Beyond ``SAMPLE_BASE`` base items, neighbours are searched in a seeded sample of that size with
    ``k`` scaled by the sampling rate (an estimate of the same neighbourhood at a fraction of the
    cost); sampled items leave themselves out. Large collections should be passed through
    ``reduce_vectors`` first.
    """
    from sklearn.neighbors import LocalOutlierFactor

    from .neighbors import knn

    vec = np.asarray(vectors, np.float32)
    ref = None if reference is None else np.asarray(reference, np.float32)
    full = vec if ref is None else ref
    sample = None
    if len(full) > SAMPLE_BASE:
        sample = np.sort(np.random.default_rng(seed).choice(len(full), SAMPLE_BASE, replace=False))
        k = max(5, round(k * SAMPLE_BASE / len(full)))
    base = full if sample is None else full[sample]
    k = max(1, min(k, len(base) - 1))
    sims, ids = knn(base, k)
    dist_b = np.clip(1.0 - sims, 0.0, 2.0)
    lof = LocalOutlierFactor(n_neighbors=k, metric="precomputed", novelty=True)
    lof.fit(_graph(dist_b, ids, len(base), with_self=True))
    base_knn, base_lof = dist_b.mean(axis=1), -lof.negative_outlier_factor_
    out: dict[str, np.ndarray] = {}
    if ref is None and sample is None:
        return {"knn": base_knn, "lof": base_lof}
    if ref is not None:
        out["ref_knn"], out["ref_lof"] = base_knn, base_lof
        if sample is not None:  # calibrate on the full reference: its items scored against the sample
            out["ref_knn"], out["ref_lof"] = _against(full, base, k, lof, knn, sample)
        qs, qi = knn(base, k, queries=vec)
        dist_q = np.clip(1.0 - qs, 0.0, 2.0)
        out["knn"] = dist_q.mean(axis=1)
        out["lof"] = -lof.score_samples(_graph(dist_q, qi, len(base)))
        return out
    out["knn"], out["lof"] = _against(vec, base, k, lof, knn, sample)
    return out


def _against(queries: np.ndarray, base: np.ndarray, k: int, lof, knn, sample: np.ndarray):
    """kNN distance and LOF of ``queries`` against the sampled ``base``; rows of ``queries`` that are
    in the sample (positions ``sample``) leave themselves out."""
    dist, ids = sampled_neighbours(queries, base, k, sample)
    return dist.mean(axis=1), -lof.score_samples(_graph(dist, ids, len(base)))


def signal_frame(items) -> "pd.DataFrame":  # noqa: F821
    """The per-item signals that outlier scoring uses (log of sharpness), NaN where absent."""
    import pandas as pd

    df = pd.DataFrame(index=range(len(items)))
    for name in SIGNALS:
        src = "sharpness" if name == "log_sharpness" else name
        if src in items.columns:
            col = pd.to_numeric(items[src], errors="coerce").to_numpy(dtype=np.float64)
            df[name] = np.log1p(np.maximum(col, 0)) if name == "log_sharpness" else col
    return df.dropna(axis=1, how="all")


def _iforest(vectors: np.ndarray, sig, ref_vectors, ref_sig, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest

    fit_v = vectors if ref_vectors is None else ref_vectors
    fit_s = sig if ref_sig is None else ref_sig
    nc = max(1, min(16, fit_v.shape[1], len(fit_v) - 1))
    pca = PCA(n_components=nc, random_state=seed).fit(fit_v)
    med, iqr = fit_s.median(), (fit_s.quantile(0.75) - fit_s.quantile(0.25)).replace(0, 1.0)

    def feats(v, s):
        return np.hstack([pca.transform(v), ((s - med) / iqr).fillna(0).to_numpy()])

    forest = IsolationForest(n_estimators=200, random_state=seed).fit(feats(fit_v, fit_s))
    raw = -forest.score_samples(feats(vectors, sig))
    ref_raw = None if ref_vectors is None else -forest.score_samples(feats(ref_vectors, ref_sig))
    return raw, ref_raw


MIN_NOVELTY_ITEMS = 10  # novelty needs at least this many items (or reference items) to compare with
# novelty_z (fence scale, ``novelty.fence_z``) -> log-odds (z - t) / s; threshold maximising F1, fitted by
# outliers_quality.py --calibrate (Tukey's outer fence, 3, is the prior used where no labels are left)
NOVELTY_CALIBRATION = (2.66, 0.419)


DAMP = 4.0  # log-odds beyond this grow only logarithmically when fused


def damp(logit: np.ndarray) -> np.ndarray:
    """``DAMP * asinh(logit / DAMP)``: unchanged near 0, logarithmic far out, strictly increasing.

    A measure far beyond its threshold is no more certain than one well beyond it (the calibration
    data end there), so one extreme measure cannot drown every other piece of evidence.
    """
    return DAMP * np.arcsinh(logit / DAMP)


def fuse_logits(logits: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Log-odds that at least one piece of evidence holds (noisy-OR of independent probabilities).

    Each input is first damped (``damp``). Strictly increasing in every input and never saturating:
    for strong evidence it behaves like the
    sum of softplus(logit), for weak evidence like log-sum-exp of the logits, so an item with weak
    evidence still ranks above a clean one (no clipping). NaN inputs (issue not measurable) are skipped.
    """
    from scipy.special import logsumexp

    mats = [damp(np.asarray(x, np.float64)) for x in logits]
    if not mats:
        return np.zeros(n)
    m = np.vstack(mats)
    have = np.isfinite(m)
    soft = np.where(have, np.logaddexp(0.0, np.where(have, m, 0.0)), 0.0)
    log_clean = -soft.sum(axis=0)  # log P(no evidence holds)
    with np.errstate(divide="ignore"):
        out = np.log(-np.expm1(log_clean)) - log_clean
    weak = log_clean > -1e-9  # every input strongly negative: log1p-accurate form
    if weak.any():
        out[weak] = logsumexp(np.where(have[:, weak], m[:, weak], -np.inf), axis=0)
    out[~have.any(axis=0)] = -np.inf
    return out


def _novelty(method: str, vectors: np.ndarray, ref_vec: np.ndarray | None, items, reference_items,
             k: int | None, seed: int) -> dict[str, np.ndarray]:
    """The embedding evidence for ``method``: components (fence scores, ``novelty.fence_z``) and ``novelty_z``."""
    from .novelty import knn_distances, novelty_components

    n_base = len(ref_vec) if ref_vec is not None else len(vectors)
    if n_base < MIN_NOVELTY_ITEMS:  # too few to say what is usual: novelty not measured
        return {"novelty_z": np.full(len(vectors), np.nan)}
    if method == "auto" and k is None:
        return novelty_components(vectors, ref_vec, seed)
    k = default_k(n_base) if k is None else max(1, min(k, n_base - 1))
    vec, ref = reduce_vectors(vectors, ref_vec, seed)
    comps: dict[str, np.ndarray] = {}
    if method in ("auto", "knn"):
        d, d_ref = knn_distances(vec, [k], ref, seed)
        comps["knn_z"] = fence_z(d[k], None if d_ref is None else d_ref[k])
    if method in ("auto", "mcd"):
        m = mcd_component(vec, ref, seed)
        if m is not None:
            comps["mcd_z"] = m
    if method == "lof":
        nb = neighbour_components(vec, k, ref, seed)
        comps["lof_z"] = fence_z(nb["lof"], nb.get("ref_lof"))
    if method == "iforest":
        sig = signal_frame(items)
        ref_sig = signal_frame(reference_items) if ref is not None and reference_items is not None else None
        if ref_sig is not None:
            common = [c for c in sig.columns if c in ref_sig.columns]
            sig, ref_sig = sig[common], ref_sig[common]
        r, rr = _iforest(vectors, sig, ref_vec, ref_sig if ref_vec is not None else None, seed)
        comps["iforest_z"] = fence_z(r, rr)
    comps["novelty_z"] = np.max(list(comps.values()), axis=0) if comps else np.zeros(len(vectors))
    return comps


def score_outliers(vectors: np.ndarray, items, *, method: str = "auto", k: int | None = None,
                   contamination: float | None = None, threshold: float | None = None,
                   reference_vectors: np.ndarray | None = None, reference_items=None,
                   seed: int = 0, calibration: dict | None = None) -> "pd.DataFrame":  # noqa: F821
    """Score items (rows of ``vectors``/``items``) for quality issues and novelty; most outlying first.

    Returns one row per item: ``path, score, is_outlier, rank, window, issues`` then
    ``<issue>_score``/``is_<issue>`` for every quality issue (``ops.quality``), ``novelty_score``
    (fence score of the embedding evidence, ``ops.novelty.fence_z``) and ``is_novel``, the components and
    the measures. ``score`` is the log-odds that the item has some issue or does not belong (noisy-OR
    of the calibrated evidence, ``fuse_logits``): 0 = even odds, every item strictly ordered.
    ``method``: auto (quality + novelty), signals (quality only), knn, lof, mcd or iforest (novelty by
    that method only). With ``reference_vectors`` novelty is measured against that clean collection.
    ``calibration`` overrides thresholds: signal column -> (t, s), ``"novelty"`` -> (t, s).
    """
    import pandas as pd

    from .quality import ISSUE_WORDS, ISSUES, quality_table

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if contamination is not None and not 0 < contamination < 1:
        raise ValueError("contamination must lie between 0 and 1")
    vectors = np.asarray(vectors, np.float32)
    n = len(vectors)
    cal = dict(calibration or {})
    nov_t, nov_s = cal.pop("novelty", NOVELTY_CALIBRATION)
    ref_vec = None if reference_vectors is None else np.asarray(reference_vectors, np.float32)

    quality = quality_table(items, cal)
    comps = {} if method == "signals" else _novelty(method, vectors, ref_vec, items, reference_items, k, seed)
    evidence = [] if method not in ("auto", "signals") else [quality[f"{i}_logit"].to_numpy() for i in ISSUES]
    nov_logit = None
    if "novelty_z" in comps:
        nov_logit = (comps["novelty_z"] - nov_t) / nov_s
        evidence.append(nov_logit)
    score = fuse_logits(evidence, n)

    out = pd.DataFrame({"path": items["path"].to_numpy(), "score": np.round(score, 6)})
    if contamination is not None:
        n_out = int(math.ceil(contamination * n))
        order = np.lexsort((np.arange(n), -score))
        flag = np.zeros(n, bool)
        flag[order[:n_out]] = True
    else:
        flag = score >= (DEFAULT_THRESHOLD if threshold is None else threshold)
    out["is_outlier"] = flag
    out["window"] = _windows(items)
    named = {i: quality[f"is_{i}"].to_numpy() for i in ISSUES}
    if nov_logit is not None:
        named["novel"] = np.nan_to_num(nov_logit, nan=-np.inf) >= 0
    words = np.full(n, "", dtype=object)
    for i, f in named.items():  # "cloud, thin cloud / haze": one pass per issue, not per item
        words = np.where(f, np.where(words == "", ISSUE_WORDS[i], words + ", " + ISSUE_WORDS[i]), words)
    out["issues"] = words
    out["basis"] = quality["basis"].to_numpy()
    for issue in ISSUES:
        out[f"{issue}_score"] = np.round(quality[f"{issue}_score"].to_numpy(), 4)
        out[f"is_{issue}"] = quality[f"is_{issue}"].to_numpy()
    if nov_logit is not None:
        out["novelty_score"] = np.round(comps["novelty_z"], 4)
        out["is_novel"] = named["novel"]
        for name, z in comps.items():
            if name != "novelty_z":
                out[name] = np.round(z, 4)
    for col in items.columns:
        if col in MEASURES or col.startswith("sig_"):
            out[col] = pd.to_numeric(items[col], errors="coerce").to_numpy()
    out["key"] = items["key"].to_numpy() if "key" in items.columns else out["path"]
    out = out.iloc[np.lexsort((out["key"].to_numpy(), -score))].reset_index(drop=True)
    out.insert(3, "rank", np.arange(1, n + 1))
    return out


MEASURES = ("brightness", "saturation", "sharpness", "nodata", "white_share", "cloud_white", "clipped", "dark_channel",
            "veil", "contrast", "blur")


def _windows(items) -> np.ndarray:
    if "x" not in items.columns:
        return np.full(len(items), "", dtype=object)
    x, y, w, h = (items[c].to_numpy() for c in ("x", "y", "w", "h"))
    return np.array(["" if xi < 0 else f"{xi},{yi},{wi},{hi}" for xi, yi, wi, hi in zip(x, y, w, h)],
                    dtype=object)


def with_nodata_tiles(scored: "pd.DataFrame", nodata: Sequence[dict]) -> "pd.DataFrame":  # noqa: F821
    """Put tiles skipped for no-data first: flagged, no score, with the reason.

    ``nodata`` holds one ``{"path", "window", "reason", "key"}`` per such tile. They were never
    embedded, so they have no score; they are still outliers for a curator.
    """
    import pandas as pd

    from .quality import ISSUE_WORDS

    rows = [{"path": r["path"], "window": r["window"], "score": np.nan, "is_outlier": True,
             "reason": r["reason"], "key": r["key"] or r["path"], "issues": ISSUE_WORDS["nodata"],
             "is_nodata": True} for r in nodata]
    out = scored.copy()
    if "reason" not in out.columns:
        out.insert(5, "reason", "")
    if not rows:
        return out
    rows.sort(key=lambda r: (r["path"], [int(v) for v in r["window"].split(",")[1::-1] if v]))  # path, y, x
    extra = pd.DataFrame(rows)
    out = pd.concat([extra, out], ignore_index=True)[out.columns]
    for col in [c for c in out.columns if c.startswith("is_")]:
        out[col] = out[col].fillna(False).astype(bool)
    out["rank"] = np.arange(1, len(out) + 1)
    out["reason"] = out["reason"].fillna("")
    return out


def csv_frame(scored: "pd.DataFrame") -> "pd.DataFrame":  # noqa: F821
    """What ``outliers.csv`` holds: ``path,score,is_outlier,rank`` first, ``window``/``reason`` only
    when some item has one, then components and signals (the internal ``key`` dropped)."""
    out = scored.drop(columns=["key"], errors="ignore")
    for col in ("window", "reason"):
        if col in out.columns and not out[col].fillna("").astype(bool).any():
            out = out.drop(columns=[col])
    return out
