"""Outlier scoring: how little each item belongs to its collection (or to a clean reference).

Outliers often come as a group of look-alikes (10% clouded tiles resemble each other), so a small
neighbourhood sees them as ordinary. The default method combines evidence that survives that:

* ``knn``: mean cosine distance to the ``k`` nearest neighbours, with ``k`` larger than a plausible
  outlier group (15% of the collection, 5-100);
* ``lof``: local outlier factor (scikit-learn, on the same neighbour graph) at that ``k``;
* cheap per-item signals: brightness, saturation, sharpness (blur), no-data share and, for
  multi-band rasters, the spectral cloud/snow signals (``sig_cloud``, ``sig_snow``, ...).

Every component is calibrated into a robust z-score (median and MAD of the collection, or of the
reference with ``reference``), clipped at 0 on the ordinary side; the final ``score`` is the
root-mean-square of the embedding evidence (mean of knn and lof) and of the strongest signal, so one
overwhelming signal (a white cloud tile) or a clear embedding outlier (an off-topic picture) both
surface, and scores on the same scale as the components. An item is an outlier when its score is at
least ``threshold`` (default 3.5), or when it is among the top ``contamination`` share.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_THRESHOLD = 3.5
METHODS = ("auto", "knn", "lof", "signals", "iforest")
PCA_ABOVE = 20_000  # beyond this many items, neighbours are searched on 128 PCA dimensions

# signal column -> (side, floor of its scale): "high" = only large values are outlying, "both" = either
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
    """Neighbourhood size: 15% of the collection, at least 5 and at most 100 (and below ``n``)."""
    return max(1, min(n - 1, max(5, min(100, round(0.15 * n)))))


def robust_z(values: np.ndarray, ref: np.ndarray | None = None, side: str = "high",
             floor: float = 1e-6) -> np.ndarray:
    """(x - median) / scale, scale = max(1.4826 MAD, 1.2533 mean abs. deviation, floor) of ``ref``.

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
    scale = max(1.4826 * float(np.median(dev)), 1.2533 * float(dev.mean()), floor)
    z = (x - med) / scale
    z = np.abs(z) if side == "both" else np.maximum(-z if side == "low" else z, 0.0)
    return np.nan_to_num(z, nan=0.0)


def _reduce(vectors: np.ndarray, reference: np.ndarray | None, seed: int):
    """PCA to 128 dimensions for large collections (fit on the reference when given), re-normalised."""
    base = vectors if reference is None else reference
    if len(base) <= PCA_ABOVE or vectors.shape[1] <= 128:
        return vectors, reference
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    fit_rows = base[rng.choice(len(base), size=min(len(base), 20_000), replace=False)]
    pca = PCA(n_components=128, svd_solver="randomized", random_state=seed).fit(fit_rows)

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
    same for the reference items (leave-one-out) when ``reference`` is given, for calibration."""
    from sklearn.neighbors import LocalOutlierFactor

    from ..neighbors import knn

    vec, ref = _reduce(np.asarray(vectors, np.float32), None if reference is None else
                       np.asarray(reference, np.float32), seed)
    base = vec if ref is None else ref
    k = max(1, min(k, len(base) - 1))
    sims, ids = knn(base, k)
    dist_b = np.clip(1.0 - sims, 0.0, 2.0)
    out: dict[str, np.ndarray] = {}
    lof = LocalOutlierFactor(n_neighbors=k, metric="precomputed", novelty=ref is not None)
    graph_b = _graph(dist_b, ids, len(base), with_self=True)
    if ref is None:
        lof.fit(graph_b)
        out["knn"] = dist_b.mean(axis=1)
        out["lof"] = -lof.negative_outlier_factor_
        return out
    lof.fit(graph_b)
    out["ref_knn"] = dist_b.mean(axis=1)
    out["ref_lof"] = -lof.negative_outlier_factor_
    qs, qi = knn(base, k, queries=vec)
    dist_q = np.clip(1.0 - qs, 0.0, 2.0)
    out["knn"] = dist_q.mean(axis=1)
    out["lof"] = -lof.score_samples(_graph(dist_q, qi, len(base)))
    return out


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


def score_outliers(vectors: np.ndarray, items, *, method: str = "auto", k: int | None = None,
                   contamination: float | None = None, threshold: float | None = None,
                   reference_vectors: np.ndarray | None = None, reference_items=None,
                   seed: int = 0) -> "pd.DataFrame":  # noqa: F821
    """Score items (rows of ``vectors``/``items``) for how little they belong; most outlying first.

    Returns one row per item: ``path, score, is_outlier, rank, window`` then the calibrated
    components (``knn_z``, ``lof_z``, ``<signal>_z``), the raw ``knn``/``lof`` values and the
    signals. With ``reference_vectors`` (and ``reference_items``) items are scored against that
    clean collection instead of against each other (novelty detection).
    """
    import pandas as pd

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if contamination is not None and not 0 < contamination < 1:
        raise ValueError("contamination must lie between 0 and 1")
    n = len(vectors)
    novelty = reference_vectors is not None
    sig = signal_frame(items)
    ref_sig = signal_frame(reference_items) if novelty and reference_items is not None else None
    if ref_sig is not None:
        common = [c for c in sig.columns if c in ref_sig.columns]
        sig, ref_sig = sig[common], ref_sig[common]
    n_base = len(reference_vectors) if novelty else n
    k = default_k(n_base) if k is None else max(1, min(k, n_base - 1))

    comps: dict[str, np.ndarray] = {}
    raw: dict[str, np.ndarray] = {}
    if method in ("auto", "knn", "lof") and n_base >= 2:
        nb = neighbour_components(vectors, k, reference_vectors, seed)
        for name in ("knn", "lof"):
            if method in ("auto", name):
                raw[name] = nb[name]
                comps[f"{name}_z"] = robust_z(nb[name], nb.get(f"ref_{name}"), "high", 1e-3)
    if method in ("auto", "signals"):
        for name in sig.columns:
            side, floor = SIGNALS[name]
            ref = None if ref_sig is None else ref_sig[name].to_numpy()
            comps[f"{name}_z"] = robust_z(sig[name].to_numpy(), ref, side, floor)
    if method == "iforest":
        r, rr = _iforest(np.asarray(vectors, np.float32), sig, reference_vectors, ref_sig, seed)
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
    out = out.iloc[np.lexsort((out["key"].to_numpy(), -score))].reset_index(drop=True)
    out.insert(3, "rank", np.arange(1, n + 1))
    return out


def _combine(comps: dict[str, np.ndarray], method: str, n: int) -> np.ndarray:
    """One score from calibrated components: RMS of embedding evidence and the strongest signal."""
    if not comps:
        return np.zeros(n)
    emb = [comps[c] for c in ("knn_z", "lof_z", "iforest_z") if c in comps]
    sig = [v for c, v in comps.items() if c not in ("knn_z", "lof_z", "iforest_z")]
    if method != "auto":
        return np.mean(emb or sig, axis=0)
    parts = []
    if emb:
        parts.append(np.mean(emb, axis=0))
    if sig:
        parts.append(np.max(sig, axis=0))
    return np.sqrt(np.mean(np.square(parts), axis=0))


def _windows(items) -> np.ndarray:
    if "x" not in items.columns:
        return np.full(len(items), "", dtype=object)
    x, y, w, h = (items[c].to_numpy() for c in ("x", "y", "w", "h"))
    return np.array(["" if xi < 0 else f"{xi},{yi},{wi},{hi}" for xi, yi, wi, hi in zip(x, y, w, h)],
                    dtype=object)


def with_nodata_tiles(scored: "pd.DataFrame", skipped) -> "pd.DataFrame":  # noqa: F821
    """Put tiles skipped for no-data (``Skipped`` entries) first: flagged, no score, with the reason.

    They were never embedded, so they have no score; they are still outliers for a curator.
    """
    import pandas as pd

    from ..sources.tiling import NODATA_REASON

    rows = []
    for s in skipped:
        if not s.reason.startswith(NODATA_REASON):
            continue
        window = s.key.split("#window=", 1)[1].split("#", 1)[0] if "#window=" in s.key else ""
        rows.append({"path": s.path, "window": window, "score": np.nan, "is_outlier": True,
                     "reason": s.reason, "key": s.key or s.path})
    out = scored.copy()
    if "reason" not in out.columns:
        out.insert(5, "reason", "")
    if not rows:
        return out
    extra = pd.DataFrame(rows).sort_values("key", kind="stable")
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
