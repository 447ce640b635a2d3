"""``agcurate outliers``: score every item for how little it belongs, flag outliers, CSV + gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..items import display_path
from .common import DEFAULT_OUT, OutOpt, PathsArg, command, common_folder, console, embed_options, embedded_note

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
        config=None,
    ) -> None:
        """Flag items that do not belong (clouds, snow, no-data, blur, off-topic); writes outliers.csv + .html."""
        from rich.markup import escape
        from rich.table import Table

        from ..workflows.outliers import outliers

        res = outliers(paths or None, method=method, contamination=contamination, threshold=threshold,
                       reference=reference, k=k, out=out, config=config, on_embedded=embedded_note)
        scored, rule, csv_path, html = res.scored, res.rule, res.csv, res.html
        flagged = scored[scored["is_outlier"]]
        table = Table(title=f"agcurate outliers · {len(flagged)} of {len(scored)} flagged ({escape(rule)})")
        for col in ("rank", "score", "item", "strongest evidence"):  # fold: a long path wraps, never cut
            table.add_column(col, justify="right" if col in ("rank", "score") else "left", overflow="fold")
        comp_cols = [c for c in scored.columns if c.endswith("_z")]
        base = common_folder(res.embeddings.inputs)
        for r in flagged.head(15).to_dict("records"):
            name = display_path(r["path"], base) + (f" [{r['window']}]" if r["window"] else "")
            ev = r["reason"] or max(comp_cols, key=lambda c: r[c] if r[c] == r[c] else -1)[:-2] if comp_cols else ""
            table.add_row(str(r["rank"]), "" if r["score"] != r["score"] else f"{r['score']:.2f}",
                          escape(name), escape(str(ev)))
        con = console()
        if base and len(flagged):
            con.print(f"paths relative to {escape(base)}")
        con.print(table)
        if len(flagged) > 15:
            con.print(f"... and {len(flagged) - 15} more")
        con.print(f"wrote {escape(str(csv_path))} and {escape(str(html))}")
