"""``agcurate outliers``: score every item for how little it belongs, flag outliers, CSV + gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import DEFAULT_OUT, EmbedOptions, OutOpt, PathsArg, command, console, embed_options

MethodOpt = Annotated[str, typer.Option("--method", help="auto (kNN + LOF at large k + pixel/spectral signals), knn, lof, signals or iforest.")]
ContaminationOpt = Annotated[Optional[float], typer.Option("--contamination", min=0.0, max=1.0, help="Flag this share of items (the most outlying), e.g. 0.05.")]
ThresholdOpt = Annotated[Optional[float], typer.Option("--threshold", help="Flag items whose score is at least T (default 5; scores are robust z-scores).")]
ReferenceOpt = Annotated[Optional[Path], typer.Option("--reference", help="A known-clean collection: score PATH against it (novelty detection).")]
KOpt = Annotated[Optional[int], typer.Option("--k", min=1, help="Neighbourhood size (default 15% of the collection, 5-100).")]


def register(app: typer.Typer) -> None:
    @command(app, "outliers")
    @embed_options()
    def outliers_cmd(
        paths: PathsArg = None,
        method: MethodOpt = "auto",
        contamination: ContaminationOpt = None,
        threshold: ThresholdOpt = None,
        reference: ReferenceOpt = None,
        k: KOpt = None,
        out: OutOpt = DEFAULT_OUT,
        opts: EmbedOptions = None,
    ) -> None:
        """Flag items that do not belong (clouds, snow, no-data, blur, off-topic); writes outliers.csv + .html."""
        from rich.markup import escape
        from rich.table import Table

        from ..errors import AgcurateError
        from ..ops.outliers import DEFAULT_THRESHOLD, METHODS, csv_frame, score_outliers, with_nodata_tiles
        from ..report.html import write_csv
        from ..report.outliers import write_outliers_report

        if contamination is not None and threshold is not None:
            raise AgcurateError("give either --contamination or --threshold, not both")
        if method not in METHODS:
            raise AgcurateError(f"unknown --method {method!r}; choose from {', '.join(METHODS)}")
        if contamination is not None and not 0 < contamination < 1:
            raise AgcurateError("--contamination must lie between 0 and 1 (e.g. 0.05)")
        emb = opts.embed(paths)
        ref = None
        if reference is not None:
            ref = opts.embed([reference], remember=False, quiet=True)
        scored = score_outliers(emb.vectors, emb.items, method=method, k=k, contamination=contamination,
                                threshold=threshold, reference_vectors=None if ref is None else ref.vectors,
                                reference_items=None if ref is None else ref.items)
        scored = with_nodata_tiles(scored, emb.skipped)
        out.mkdir(parents=True, exist_ok=True)
        csv_path = write_csv(csv_frame(scored), out / "outliers.csv")
        rule = (f"top {contamination:g} share" if contamination is not None
                else f"score >= {threshold if threshold is not None else DEFAULT_THRESHOLD:g}")
        mode = f"against reference {reference}" if reference is not None else "against the collection itself"
        base = str(Path(emb.inputs[0])) if len(emb.inputs) == 1 and Path(emb.inputs[0]).is_dir() else None
        html = write_outliers_report(scored, {it.key: it for it in emb.to_items()}, out / "outliers.html",
                                     method=method, rule=rule, model=emb.encoder.name, mode=mode,
                                     skipped=emb.skipped, base=base)
        flagged = scored[scored["is_outlier"]]
        table = Table(title=f"agcurate outliers · {len(flagged)} of {len(scored)} flagged ({escape(rule)})")
        for col in ("rank", "score", "item", "strongest evidence"):
            table.add_column(col, justify="right" if col in ("rank", "score") else "left")
        comp_cols = [c for c in scored.columns if c.endswith("_z")]
        for r in flagged.head(15).to_dict("records"):
            name = r["path"] + (f" [{r['window']}]" if r["window"] else "")
            ev = r["reason"] or max(comp_cols, key=lambda c: r[c] if r[c] == r[c] else -1)[:-2] if comp_cols else ""
            table.add_row(str(r["rank"]), "" if r["score"] != r["score"] else f"{r['score']:.2f}",
                          escape(name), escape(str(ev)))
        con = console()
        con.print(table)
        if len(flagged) > 15:
            con.print(f"... and {len(flagged) - 15} more")
        con.print(f"wrote {escape(str(csv_path))} and {escape(str(html))}")
