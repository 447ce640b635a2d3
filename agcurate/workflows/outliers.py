"""``agcurate.outliers``: score every item for how little it belongs, flag outliers, CSV + gallery."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..embedding.config import EmbedConfig
from ..errors import UsageError
from ..ops.outliers import DEFAULT_THRESHOLD, METHODS
from .common import check_choice, check_exists, check_range, embed_input, output_record, record_outputs


@dataclass
class OutliersResult:
    """``table`` holds the ``outliers.csv`` rows (``path,score,is_outlier,rank`` first); ``scored``
    the same rows with the internal item ``key``; ``reference`` the reference collection's
    embeddings when one was given."""

    table: "pd.DataFrame"  # noqa: F821
    scored: "pd.DataFrame"  # noqa: F821
    embeddings: object
    method: str
    rule: str
    mode: str
    reference: object = None
    unmeasured: int = 0  # items whose quality could not be measured (older store rows, file gone)
    csv: Path | None = None
    html: Path | None = None

    @property
    def flagged(self) -> "pd.DataFrame":  # noqa: F821
        return self.scored[self.scored["is_outlier"]]


def nodata_rows(skipped) -> list[dict]:
    """The tiles skipped for holding mostly no-data, as rows for ``ops.outliers.with_nodata_tiles``."""
    from ..sources.tiling import NODATA_REASON

    rows = []
    for s in skipped:
        if s.reason.startswith(NODATA_REASON):
            window = s.key.split("#window=", 1)[1].split("#", 1)[0] if "#window=" in s.key else ""
            rows.append({"path": s.path, "window": window, "reason": s.reason, "key": s.key})
    return rows


def fill_quality_signals(emb, progress: bool | None = None) -> tuple["pd.DataFrame", int]:  # noqa: F821
    """``emb.items`` with the quality signals that rows embedded by an older agcurate lack (or measured
    by another version of them), computed by decoding those items again (nothing is encoded, the store
    is not changed); also returns how many such items could not be decoded (their quality issues stay
    unmeasured: NaN, not flagged)."""
    from ..embedding.signals import QUALITY_SIGNALS, QUALITY_VERSION, quality_signals
    from ..progress import progress_bar
    from ..sources import read_group

    items = emb.items.copy()
    for col in (*QUALITY_SIGNALS, "quality_v"):
        if col not in items.columns:
            items[col] = np.nan
    missing = np.flatnonzero((items["quality_v"] != QUALITY_VERSION).to_numpy())
    if not len(missing):
        return items, 0
    all_items = emb.to_items()
    groups: dict[str, list[int]] = {}
    for i in missing:
        groups.setdefault(all_items[i].group, []).append(int(i))
    row_of = {all_items[i].key: i for i in missing}
    failed = 0
    with progress_bar(len(missing), "measuring quality of older store rows", enabled=progress) as bar:
        for members in groups.values():
            for dec in read_group([all_items[i] for i in members], emb.source_options):
                i = row_of.get(dec.item.key)
                if i is None:
                    continue
                if dec.rgb is None:
                    failed += 1
                else:
                    for k, v in quality_signals(dec.rgb, dec.nodata).items():
                        items.at[i, k] = v
                    for k, v in dec.signals.items():
                        col = k if k.startswith("sig_") else f"sig_{k}"
                        if col not in items.columns:
                            items[col] = np.nan
                        items.at[i, col] = float(v)
                bar.advance(1)
    return items, failed


def outliers(paths: Iterable[str | os.PathLike] | None = None, *, method: str = "auto",
             contamination: float | None = None, threshold: float | None = None,
             reference: str | os.PathLike | None = None, k: int | None = None,
             out: str | os.PathLike | None = None, config: EmbedConfig | None = None,
             progress: bool | None = None, on_embedded: Callable | None = None,
             **options) -> OutliersResult:
    """Score the items under ``paths`` (None: the last embedded collection) for how little they belong.

    ``method``: auto (quality issues + embedding novelty), signals (quality issues only), knn, lof, mcd
    or iforest (novelty only). Flags the top ``contamination`` share, or the items scoring at least
    ``threshold`` (default 0: the score is the log-odds of an issue or of unusual content). With
    ``reference`` novelty is measured against that known-clean collection. With ``out``
    ``outliers.csv`` and ``outliers.html`` are written there. ``options``: ``EmbedConfig`` fields.
    """
    from ..ops.outliers import csv_frame, score_outliers, with_nodata_tiles

    check_choice("--method", method, METHODS)
    if contamination is not None and threshold is not None:
        raise UsageError("give either --contamination or --threshold, not both")
    if contamination is not None and not 0 < contamination < 1:
        raise UsageError(f"--contamination must lie between 0 and 1 (e.g. 0.05), not {contamination}")
    check_range("--k", k, 1)
    check_exists("--reference", [reference] if reference is not None else None)
    cfg = EmbedConfig.make(config, **options)
    emb = embed_input(paths, cfg, progress=progress, on_embedded=on_embedded, neighbor_index=True)
    ref = None
    if reference is not None:
        ref = embed_input([reference], cfg, progress=progress, remember=False, neighbor_index=True)
    items, unmeasured = fill_quality_signals(emb, progress)
    ref_items = None
    if ref is not None:
        ref_items, _ = fill_quality_signals(ref, progress)
    scored = score_outliers(emb.vectors, items, method=method, k=k, contamination=contamination,
                            threshold=threshold, reference_vectors=None if ref is None else ref.vectors,
                            reference_items=ref_items)
    scored = with_nodata_tiles(scored, nodata_rows(emb.skipped))
    rule = (f"top {contamination:g} share" if contamination is not None
            else f"score >= {threshold if threshold is not None else DEFAULT_THRESHOLD:g}")
    mode = f"against reference {reference}" if reference is not None else "against the collection itself"
    result = OutliersResult(table=csv_frame(scored), scored=scored, embeddings=emb, method=method, rule=rule,
                            mode=mode, reference=ref, unmeasured=unmeasured)
    if out is not None:
        write_outputs(result, Path(out))
    return result


def write_outputs(result: OutliersResult, out: Path) -> None:
    """``outliers.csv`` and the ``outliers.html`` gallery under ``out``, recorded in ``out/outputs.json``."""
    from ..report import write_csv
    from ..ops.quality import ISSUE_WORDS
    from ..report.outliers import write_outliers_report

    emb = result.embeddings
    out.mkdir(parents=True, exist_ok=True)
    result.csv = write_csv(result.table, out / "outliers.csv")
    base = str(Path(emb.inputs[0])) if len(emb.inputs) == 1 and Path(emb.inputs[0]).is_dir() else None
    result.html = write_outliers_report(result.scored, {it.key: it for it in emb.to_items()},
                                        out / "outliers.html", method=result.method, rule=result.rule,
                                        model=emb.encoder.name, mode=result.mode, skipped=emb.skipped,
                                        base=base, issue_words=ISSUE_WORDS)
    extra = {"reference": list(result.reference.inputs)} if result.reference is not None else {}
    record_outputs(out, [result.csv, result.html], output_record("outliers", emb, **extra))
