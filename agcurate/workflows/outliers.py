"""``agcurate.outliers``: score every item for how little it belongs, flag outliers, CSV + gallery."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

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


def outliers(paths: Iterable[str | os.PathLike] | None = None, *, method: str = "auto",
             contamination: float | None = None, threshold: float | None = None,
             reference: str | os.PathLike | None = None, k: int | None = None,
             out: str | os.PathLike | None = None, config: EmbedConfig | None = None,
             progress: bool | None = None, on_embedded: Callable | None = None,
             **options) -> OutliersResult:
    """Score the items under ``paths`` (None: the last embedded collection) for how little they belong.

    ``method``: auto (kNN + LOF + pixel/spectral signals), knn, lof, signals or iforest. Flags the
    top ``contamination`` share, or the items scoring at least ``threshold`` (default 5). With
    ``reference`` the items are scored against that known-clean collection (novelty). With ``out``
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
    emb = embed_input(paths, cfg, progress=progress, on_embedded=on_embedded)
    ref = None
    if reference is not None:
        ref = embed_input([reference], cfg, progress=progress, remember=False)
    scored = score_outliers(emb.vectors, emb.items, method=method, k=k, contamination=contamination,
                            threshold=threshold, reference_vectors=None if ref is None else ref.vectors,
                            reference_items=None if ref is None else ref.items)
    scored = with_nodata_tiles(scored, nodata_rows(emb.skipped))
    rule = (f"top {contamination:g} share" if contamination is not None
            else f"score >= {threshold if threshold is not None else DEFAULT_THRESHOLD:g}")
    mode = f"against reference {reference}" if reference is not None else "against the collection itself"
    result = OutliersResult(table=csv_frame(scored), scored=scored, embeddings=emb, method=method, rule=rule,
                            mode=mode, reference=ref)
    if out is not None:
        write_outputs(result, Path(out))
    return result


def write_outputs(result: OutliersResult, out: Path) -> None:
    """``outliers.csv`` and the ``outliers.html`` gallery under ``out``, recorded in ``out/outputs.json``."""
    from ..report import write_csv
    from ..report.outliers import write_outliers_report

    emb = result.embeddings
    out.mkdir(parents=True, exist_ok=True)
    result.csv = write_csv(result.table, out / "outliers.csv")
    base = str(Path(emb.inputs[0])) if len(emb.inputs) == 1 and Path(emb.inputs[0]).is_dir() else None
    result.html = write_outliers_report(result.scored, {it.key: it for it in emb.to_items()},
                                        out / "outliers.html", method=result.method, rule=result.rule,
                                        model=emb.encoder.name, mode=result.mode, skipped=emb.skipped,
                                        base=base)
    extra = {"reference": list(result.reference.inputs)} if result.reference is not None else {}
    record_outputs(out, [result.csv, result.html], output_record("outliers", emb, **extra))
