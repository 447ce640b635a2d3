"""Quality issues: absolute, per item, independent of the rest of the collection.

Each issue turns one physical measure of the item (a signal computed while decoding, see
``embedding.signals`` and ``sources.raster.spectral_signals``) into

* ``<issue>_score``: 0-1, the calibrated probability that the item has the issue, a logistic
  ``1 / (1 + exp(-(m - t) / s))`` of the measure ``m`` (``(t - m) / s`` where low is bad), with the
  threshold ``t`` and scale ``s`` fitted on labelled real data (``benchmarks/outliers_quality.py
  --calibrate``);
* ``is_<issue>``: ``<issue>_score >= 0.5``, i.e. the measure beyond ``t``.

Multi-band (calibrated reflectance) input uses spectral tests: ``cloud`` the share of bright, white
pixels that pass the haze-optimised test (with NIR, also dimmer ones above 0.1 whose spectrum stays as
flat into NIR: shadowed and grey cloud; water and vegetation are far from flat there), ``haze`` (thin
cloud / haze) the dark-object value (5th percentile of each pixel's darkest band among the visible and
NIR: haze lifts the darkest pixels of every band, while water, however turbid and bright in the visible,
stays dark in NIR; clear Sentinel-2 L1C stays below ~0.07 with its Rayleigh path radiance), or the
cirrus band (B10) where present, ``snow`` the share of pixels with NDSI > 0.4 (needs a SWIR band).
RGB-only input uses heuristics, named as such in the ``basis`` column:
``cloud`` the share of bright (from grey 0.6, fully from 0.8), neutral (white or grey) pixels, so bright
coloured surfaces such as turbid water or sand do not count, times 1 - the share of vivid pixels among
the rest (a cloud dims and greys what it does not cover, while a white lab background sits beside a vivid
object in focus; room walls and bare soil are mostly dimmer); its threshold is set for precision on mixed
content (RGB cannot tell cloud from snow: a snow field is reported as cloud), ``haze`` the veil: the
darkest pixels' darkest channel (the floor of He et al.'s 2009 dark channel), so the lift must reach
every pixel of the picture (a veil lifts every pixel; one dark object anywhere, a shadow or a tyre in a
grey room or car park, rules it out, where the dark channel's mean reads white backgrounds, sky and
bright fields as haze); its threshold is set for precision on mixed content (photos, video frames,
land-cover tiles), so faint veils on dark scenes are missed, while bright fields or dense roofs with no
dark patch of their own can read as veiled.
Every item, either way: ``nodata``
(share of pixels without data), ``dark`` (mean brightness), ``overexposed`` (share of clipped pixels),
``blurry`` (Crete-Roffet blur metric at 128 px thumbnail size), ``flat`` (grey standard deviation, low
information: calm open water reads as flat too). Where a measure is absent (an old store row) the issue
is NaN and not flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ISSUES = ("cloud", "haze", "snow", "nodata", "dark", "overexposed", "blurry", "flat")
ISSUE_WORDS = {"cloud": "cloud", "haze": "thin cloud / haze", "snow": "snow / ice", "nodata": "no data",
               "dark": "dark", "overexposed": "over-exposed", "blurry": "blurry", "flat": "low information",
               "novel": "unusual content"}


@dataclass(frozen=True)
class Test:
    """One measure of an issue: signal column, direction (``high``: large values are bad) and basis."""

    column: str
    side: str
    basis: str  # "spectral" or "rgb heuristic" or "pixels"


# issue -> tests in order of preference; the first whose column is present for an item is used
TESTS: dict[str, tuple[Test, ...]] = {
    "cloud": (Test("sig_cloud", "high", "spectral"), Test("cloud_white", "high", "rgb heuristic")),
    "haze": (Test("sig_cirrus", "high", "spectral"), Test("sig_dark_object", "high", "spectral"),
             Test("veil", "high", "rgb heuristic")),
    "snow": (Test("sig_snow", "high", "spectral"),),
    "nodata": (Test("nodata", "high", "pixels"),),
    "dark": (Test("brightness", "low", "pixels"),),
    "overexposed": (Test("clipped", "high", "pixels"),),
    "blurry": (Test("blur", "high", "pixels"),),
    "flat": (Test("contrast", "low", "pixels"),),
}

# (threshold t, scale s) per signal column: fitted on all labelled benchmark sets by
# ``benchmarks/outliers_quality.py --calibrate`` (its leave-one-set-out figures say how they transfer)
CALIBRATION: dict[str, tuple[float, float]] = {
    "sig_cloud": (0.0552, 0.0206),
    "cloud_white": (0.352, 0.0438),  # best worse-of-two of precision and recall over all sets' items
    "sig_cirrus": (0.012, 0.003),  # no labelled data: Sen2Cor's thin-cirrus reflectance, literature scale
    "sig_dark_object": (0.0725, 0.00711),
    "veil": (0.438, 0.0309),  # best worse-of-two of precision and recall over all sets' items
    "sig_snow": (0.488, 0.289),
    "nodata": (0.109, 0.0137),
    "brightness": (0.176, 0.0193),
    "clipped": (0.760, 0.0346),
    "blur": (0.512, 0.0237),
    "contrast": (0.0155, 0.0054),
}


def measure_frame(items) -> "pd.DataFrame":  # noqa: F821
    """The signal columns the issue tests use, as float64 (NaN where absent)."""
    import pandas as pd

    cols = {t.column for tests in TESTS.values() for t in tests}
    out = pd.DataFrame(index=range(len(items)))
    for c in sorted(cols):
        if c in items.columns:
            out[c] = pd.to_numeric(items[c], errors="coerce").to_numpy(dtype=np.float64)
        else:
            out[c] = np.nan
    return out


def test_logit(values: np.ndarray, test: Test, calibration: dict[str, tuple[float, float]]) -> np.ndarray:
    """Log-odds of the issue from one measure: ``(m - t) / s`` (``(t - m) / s`` for low-is-bad)."""
    t, s = calibration[test.column]
    z = (np.asarray(values, np.float64) - t) / s
    return -z if test.side == "low" else z


def issue_logits(items, calibration: dict[str, tuple[float, float]] | None = None
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per issue, the log-odds of every item (NaN where no test applies) and the basis used.

    An item takes the tests of the first basis in ``TESTS[issue]`` whose measure it has (spectral
    before RGB heuristics), the strongest where there are several (cirrus and the haze transform).
    """
    cal = {**CALIBRATION, **(calibration or {})}
    m = measure_frame(items)
    n = len(m)
    logits: dict[str, np.ndarray] = {}
    basis: dict[str, np.ndarray] = {}
    for issue, tests in TESTS.items():
        lg = np.full(n, np.nan)
        bs = np.full(n, "", dtype=object)
        for kind in dict.fromkeys(t.basis for t in tests):  # spectral before RGB heuristics
            zs = [test_logit(m[t.column].to_numpy(), t, cal) for t in tests if t.basis == kind]
            z = np.max(np.where(np.isfinite(zs), zs, -np.inf), axis=0)  # strongest test of this basis
            take = np.isnan(lg) & np.isfinite(z)
            lg[take] = z[take]
            bs[take] = kind
        logits[issue] = lg
        basis[issue] = bs
    return logits, basis


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, stable for large |x|; NaN stays NaN."""
    from scipy.special import expit

    return expit(np.asarray(x, np.float64))


def quality_table(items, calibration: dict[str, tuple[float, float]] | None = None) -> "pd.DataFrame":  # noqa: F821
    """``<issue>_score`` (0-1) and ``is_<issue>`` per item, the log-odds as ``<issue>_logit``, and
    ``basis``: "spectral" where cloud and haze came from spectral tests, "rgb heuristic" where from RGB."""
    import pandas as pd

    logits, basis = issue_logits(items, calibration)
    out = pd.DataFrame(index=range(len(items)))
    out["basis"] = np.where(basis["cloud"] == "", basis["haze"], basis["cloud"])
    for issue in ISSUES:
        lg = logits[issue]
        out[f"{issue}_score"] = sigmoid(lg)
        out[f"is_{issue}"] = np.nan_to_num(lg, nan=-np.inf) >= 0
        out[f"{issue}_logit"] = lg
    return out


def pr_cut(x: np.ndarray, y: np.ndarray) -> float:
    """The cut on ``x`` (large = positive) whose flags ``x >= cut`` have the best worse-of-two of
    precision and recall on labelled items (the break-even point: flags are judged by both); among
    equally good cuts, the midpoint of the widest gap between consecutive distinct values (so cleanly
    separated classes get a threshold in the middle of the gap between them, not at either edge)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, vals = precision_recall_curve(y, x)  # vals: distinct values of x, increasing
    worse = np.minimum(precision[:-1], recall[:-1])
    lo = np.concatenate([[vals[0] - 1.0], vals[:-1]])  # cut between the previous value and this one
    best = np.flatnonzero(worse >= worse.max() - 1e-12)
    best = best[best > 0] if (best > 0).any() else best
    i = best[np.argmax(vals[best] - lo[best])]
    return float((vals[i] + lo[i]) / 2)


def fit_test(values: np.ndarray, labels: np.ndarray, side: str, objective: str = "balanced"
             ) -> tuple[float, float]:
    """(threshold, scale) of a one-measure logistic model fitted on labelled items.

    The measure is standardised by its spread before fitting a class-balanced logistic regression (L2
    penalty C=1), so perfectly separated classes still get a finite scale and a threshold inside the
    gap between them (a graceful rule: not at the edge of either class as seen in the calibration
    data). ``objective="pr"`` takes the threshold with the best worse-of-two of precision and recall
    instead (``pr_cut``), for evidence whose classes overlap (novelty), where the balanced threshold
    trades precision away when positives are rare; the scale still comes from the logistic fit.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(values, np.float64)
    y = np.asarray(labels, int)
    ok = np.isfinite(x)
    x, y = x[ok], y[ok]
    sign = -1.0 if side == "low" else 1.0
    centre, spread = float(np.mean(x)), float(np.std(x)) or 1.0
    xs = sign * (x - centre) / spread
    lr = LogisticRegression(class_weight="balanced", C=1.0).fit(xs[:, None], y)
    w, b = max(float(lr.coef_[0, 0]), 1e-3), float(lr.intercept_[0])
    cut = pr_cut(xs, y) if objective == "pr" else -b / w
    return centre + sign * cut * spread, spread / w
