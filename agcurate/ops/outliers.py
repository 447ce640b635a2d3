"""Outlier scoring: how little each item belongs to its collection (or to a clean reference).

Outliers often come as a group of look-alikes (10% clouded tiles resemble each other), so a small
neighbourhood sees them as ordinary. The default method (``auto``) combines evidence that survives that:

* ``knn``: mean cosine distance to the ``k`` nearest neighbours, ``k`` larger than a plausible outlier
  group (30% of the collection, 5-100);
* ``mcd``: robust Mahalanobis distance in PCA projections (12 and 16 dimensions, averaged) of the
  embeddings (scikit-learn's minimum covariance determinant, fitted on the densest 75%): a small
  group of look-alikes lies off the robust ellipsoid of the majority even when its members are
  close to each other;
* per-item signals: brightness, saturation, sharpness (blur) and no-data share for any image, and
  for multi-band rasters the spectral cloud/snow signals (``sig_cloud``, ``sig_haze``,
  ``sig_whiteness``, ``sig_snow``, ...), taken jointly as one robust Mahalanobis distance
  (``spectral``), since they are physical and correlated.

Every component is calibrated into a robust z-score (median and MAD of the collection, or of the
reference with ``reference``), clipped at 0 on the ordinary side. The score is the embedding
evidence (the larger of ``knn_z`` and ``mcd_z``: an isolated odd item or a group off the majority)
plus the signal evidence beyond 2 (the strongest pixel
signal, or the spectral distance and no-data share for multi-band input): ordinary variation in
brightness does not move the ranking, a white cloud or a snow field does. ``lof_z`` (local outlier
factor at the same ``k``) is reported as a column. An item is an outlier when its score is at least
``threshold`` (default 5), or when it is among the top ``contamination`` share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEFAULT_THRESHOLD = 5.0  # best mean F1 of the flags on the benchmark sets (0.81; 3.5 gave 0.73) and on
                         # the held-out EuroSAT pairs (0.70; 3.5 gave 0.61): benchmarks/outliers_quality.py
SIGNAL_SLACK = 2.0  # signal z-scores count only beyond this many robust standard deviations
METHODS = ("auto", "knn", "lof", "mcd", "signals", "iforest")
PCA_ABOVE = 5_000  # beyond this many items, neighbours are searched on 64 PCA dimensions
FIT_ROWS = 5_000  # PCA is fitted on at most this many (seeded) rows
SAMPLE_BASE = 5_000  # beyond this many items, neighbours are searched in a seeded sample of this size
MCD_FIT_ROWS = 2_000  # the robust covariance is fitted on at most this many (seeded) rows
MCD_DIMS = (12, 16)  # PCA sizes for the robust Mahalanobis distance (fewer for small collections)

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


def robust_z(values: np.ndarray, ref: np.ndarray | None = None, side: str = "high",
             floor: float = 1e-6) -> np.ndarray:
    """(x - median) / scale of ``ref`` (Iglewicz-Hoaglin): scale = 1.4826 MAD, or 1.2533 x mean absolute
    deviation where MAD is 0, and never below ``floor``.

    ``side="high"`` keeps only large values (clipped at 0), ``"low"`` only small ones, ``"both"`` the
    absolute deviation.
    NaN (signal absent for an item) scores 0.
    """
    x = np.asarray(values, dtype=np.float64)
    r = x if ref is None else np.asarray(ref, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return np.zeros_like(x)
    med = float(np.median(r))
    dev = np.abs(r - med)
    mad = float(np.median(dev))
    scale = max(1.4826 * mad if mad > 0 else 1.2533 * float(dev.mean()), floor)
    z = (x - med) / scale
    z = np.abs(z) if side == "both" else np.maximum(-z if side == "low" else z, 0.0)
    return np.nan_to_num(z, nan=0.0)


def _pca(base: np.ndarray, dims: int, seed: int):
    """PCA fitted on at most ``FIT_ROWS`` seeded rows of ``base`` (eigen-decomposition of the covariance)."""
    from sklearn.decomposition import PCA

    rows = base
    if len(base) > FIT_ROWS:
        rows = base[np.random.default_rng(seed).choice(len(base), FIT_ROWS, replace=False)]
    solver = "covariance_eigh" if len(rows) > base.shape[1] else "full"
    return PCA(n_components=min(dims, len(rows), base.shape[1]), svd_solver=solver, random_state=seed).fit(rows)


def reduce_vectors(vectors: np.ndarray, reference: np.ndarray | None = None, seed: int = 0):
    """PCA to 64 dimensions for large collections (fit on the reference when given), re-normalised;
    small collections and short vectors are returned unchanged."""
    base = vectors if reference is None else reference
    if len(base) <= PCA_ABOVE or vectors.shape[1] <= 64:
        return vectors, reference
    pca = _pca(base, 64, seed)

    def tr(a):
        out = pca.transform(a).astype(np.float32)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    return tr(vectors), (None if reference is None else tr(reference))


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
    qs, qi = knn(base, k + 1, queries=queries)
    pos = np.full(len(queries), -1, np.int64)
    pos[sample] = np.arange(len(sample))
    is_self = qi == pos[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)  # else drop the (k+1)-th
    keep = np.ones_like(qi, dtype=bool)
    keep[np.arange(len(qi)), drop] = False
    dist = np.clip(1.0 - qs[keep].reshape(len(qi), k), 0.0, 2.0)
    ids = qi[keep].reshape(len(qi), k)
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


def robust_distance(fit: np.ndarray, query: np.ndarray | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Robust Mahalanobis distances (MinCovDet on the densest 75% of ``fit``): of ``fit`` and of ``query``.

    The covariance is fitted on at most ``MCD_FIT_ROWS`` seeded rows of ``fit`` (FastMCD is slow on
    large inputs); it falls back to a shrunk covariance (Ledoit-Wolf) when the robust fit is singular.
    """
    import warnings

    from sklearn.covariance import LedoitWolf, MinCovDet

    rows = fit
    if len(fit) > MCD_FIT_ROWS:
        rows = fit[np.random.default_rng(seed).choice(len(fit), MCD_FIT_ROWS, replace=False)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est = MinCovDet(support_fraction=0.75, random_state=seed).fit(rows)
        except (ValueError, np.linalg.LinAlgError):
            est = LedoitWolf().fit(rows)
        d_fit = np.sqrt(np.maximum(est.mahalanobis(fit), 0))
        d_q = d_fit if query is None else np.sqrt(np.maximum(est.mahalanobis(query), 0))
    return d_fit, d_q


def mcd_component(vectors: np.ndarray, reference: np.ndarray | None = None, seed: int = 0) -> np.ndarray | None:
    """Calibrated robust Mahalanobis distance of each item in PCA projections of the embeddings.

    One projection per size in ``MCD_DIMS`` (capped at a tenth of the collection), each fitted on
    the reference when given; their robust z-scores are averaged. None for tiny collections.
    """
    base = vectors if reference is None else reference
    cap = min(len(base) // 10, base.shape[1])
    dims_list = sorted({min(d, cap) for d in MCD_DIMS})
    if cap < 2:
        return None
    pca = _pca(base, max(dims_list), seed)
    proj_base = pca.transform(base)
    proj = proj_base if reference is None else pca.transform(vectors)
    zs = []
    for dims in dims_list:
        if reference is None:
            d, _ = robust_distance(proj[:, :dims], None, seed)
            zs.append(robust_z(d, None, "high", 1e-3))
        else:
            d_ref, d = robust_distance(proj_base[:, :dims], proj[:, :dims], seed)
            zs.append(robust_z(d, d_ref, "high", 1e-3))
    return np.mean(zs, axis=0)


def _spectral(sig, ref_sig, cols: list[str], seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """One robust distance over the spectral signals, standardised by median and IQR of the base."""
    base = sig[cols] if ref_sig is None else ref_sig[cols]
    med = base.median()
    iqr = (base.quantile(0.75) - base.quantile(0.25)).clip(lower=1e-3)

    def std(df):
        return ((df[cols].fillna(med) - med) / iqr).to_numpy(dtype=np.float64)

    if ref_sig is None:
        d, _ = robust_distance(std(sig), None, seed)
        return d, None
    d_ref, d = robust_distance(std(ref_sig), std(sig), seed)
    return d, d_ref


def score_outliers(vectors: np.ndarray, items, *, method: str = "auto", k: int | None = None,
                   contamination: float | None = None, threshold: float | None = None,
                   reference_vectors: np.ndarray | None = None, reference_items=None,
                   seed: int = 0) -> "pd.DataFrame":  # noqa: F821
    """Score items (rows of ``vectors``/``items``) for how little they belong; most outlying first.

    Returns one row per item: ``path, score, is_outlier, rank, window`` then the calibrated
    components (``knn_z``, ``mcd_z``, ``lof_z``, ``<signal>_z``, ``spectral_z``), the raw ``knn``/``lof``
    values and the signals. With ``reference_vectors`` (and ``reference_items``) items are scored
    against that clean collection instead of against each other (novelty detection).
    """
    import pandas as pd

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if contamination is not None and not 0 < contamination < 1:
        raise ValueError("contamination must lie between 0 and 1")
    vectors = np.asarray(vectors, np.float32)
    n = len(vectors)
    novelty = reference_vectors is not None
    ref_vec = None if not novelty else np.asarray(reference_vectors, np.float32)
    sig = signal_frame(items)
    ref_sig = signal_frame(reference_items) if novelty and reference_items is not None else None
    if ref_sig is not None:
        common = [c for c in sig.columns if c in ref_sig.columns]
        sig, ref_sig = sig[common], ref_sig[common]
    n_base = len(ref_vec) if novelty else n
    k = default_k(n_base) if k is None else max(1, min(k, n_base - 1))

    comps: dict[str, np.ndarray] = {}
    raw: dict[str, np.ndarray] = {}
    if method in ("auto", "knn", "lof", "mcd"):
        vectors, ref_vec = reduce_vectors(vectors, ref_vec, seed)
    if method in ("auto", "knn", "lof") and n_base >= 2:
        nb = neighbour_components(vectors, k, ref_vec, seed)
        for name in ("knn", "lof"):
            if method in ("auto", name):
                raw[name] = nb[name]
                comps[f"{name}_z"] = robust_z(nb[name], nb.get(f"ref_{name}"), "high", 1e-3)
    if method in ("auto", "mcd"):
        m = mcd_component(vectors, ref_vec, seed)
        if m is not None:
            comps["mcd_z"] = m
    if method in ("auto", "signals"):
        for name in sig.columns:
            side, floor = SIGNALS[name]
            ref = None if ref_sig is None else ref_sig[name].to_numpy()
            comps[f"{name}_z"] = robust_z(sig[name].to_numpy(), ref, side, floor)
        spec = [c for c in sig.columns if c.startswith("sig_")]
        if spec and (n_base > 3 * len(spec) + 3):
            d, d_ref = _spectral(sig, ref_sig, spec, seed)
            comps["spectral_z"] = robust_z(d, d_ref, "high", 1e-3)
    if method == "iforest":
        r, rr = _iforest(vectors, sig, ref_vec, ref_sig, seed)
        raw["iforest"] = r
        comps["iforest_z"] = robust_z(r, rr, "high", 1e-3)

    score = _combine(comps, method, n)
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
    for name, z in comps.items():
        out[name] = np.round(z, 4)
    for name, v in raw.items():
        out[name] = np.round(v, 6)
    for name in sig.columns:
        col = "sharpness" if name == "log_sharpness" else name
        out[col] = items[col].to_numpy()
    out["key"] = items["key"].to_numpy() if "key" in items.columns else out["path"]
    out = out.iloc[np.lexsort((out["key"].to_numpy(), -np.round(score, 6)))].reset_index(drop=True)
    out.insert(3, "rank", np.arange(1, n + 1))
    return out


EMBEDDING_COMPONENTS = ("knn_z", "mcd_z")


def _combine(comps: dict[str, np.ndarray], method: str, n: int) -> np.ndarray:
    """One score: embedding evidence (max of knn_z and mcd_z) + signal evidence beyond SIGNAL_SLACK.

    Signal evidence is the strongest pixel signal; with spectral signals (multi-band rasters) it is
    the joint spectral distance or the no-data share, whichever is stronger.
    """
    if not comps:
        return np.zeros(n)
    if method != "auto":
        keys = [c for c in comps if c == f"{method}_z"] or list(comps)
        if method == "signals":
            return _signal_evidence(comps, n)
        return np.mean([comps[c] for c in keys], axis=0)
    emb = [comps[c] for c in EMBEDDING_COMPONENTS if c in comps]
    score = np.max(emb, axis=0) if emb else np.zeros(n)
    return score + np.maximum(_signal_evidence(comps, n) - SIGNAL_SLACK, 0.0)


def _signal_evidence(comps: dict[str, np.ndarray], n: int) -> np.ndarray:
    if "spectral_z" in comps:
        keys = ["spectral_z", "nodata_z"]
    else:
        keys = [c for c in comps if c not in EMBEDDING_COMPONENTS and c not in ("lof_z", "iforest_z")]
    vals = [comps[c] for c in keys if c in comps]
    return np.max(vals, axis=0) if vals else np.zeros(n)


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

    rows = [{"path": r["path"], "window": r["window"], "score": np.nan, "is_outlier": True,
             "reason": r["reason"], "key": r["key"] or r["path"]} for r in nodata]
    out = scored.copy()
    if "reason" not in out.columns:
        out.insert(5, "reason", "")
    if not rows:
        return out
    rows.sort(key=lambda r: (r["path"], [int(v) for v in r["window"].split(",")[1::-1] if v]))  # path, y, x
    extra = pd.DataFrame(rows)
    out = pd.concat([extra, out], ignore_index=True)[out.columns]
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
