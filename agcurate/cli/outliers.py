"""``agcurate outliers``: score every item for how little it belongs, flag outliers, CSV + gallery."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..items import display_path
from .common import DEFAULT_OUT, OutOpt, PathsArg, command, common_folder, console, embed_options, embedded_note

MethodOpt = Annotated[str, typer.Option("--method", help="auto (quality issues + embedding novelty), signals (quality issues only), knn, lof, mcd or iforest (novelty only).")]
ContaminationOpt = Annotated[Optional[float], typer.Option("--contamination", min=0.0, max=1.0, help="Flag this share of items (the most outlying), e.g. 0.05.")]
ThresholdOpt = Annotated[Optional[float], typer.Option("--threshold", help="Flag items whose score is at least T (default 0; the score is the log-odds of an issue or of unusual content).")]
ReferenceOpt = Annotated[Optional[str], typer.Option("--reference", help="A known-clean collection (folder, file or URL): score PATH against it (novelty detection).")]
KOpt = Annotated[Optional[int], typer.Option("--k", min=1, help="One neighbourhood size for novelty (default: 5, 15 and 30% of the collection, at most 100).")]


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
        """Flag quality issues (cloud, haze, snow, no data, dark, over-exposed, blur, flat) and unusual items; writes outliers.csv + .html."""
        from rich.markup import escape
        from rich.table import Table

        from ..ops.quality import ISSUE_WORDS
        from ..report.outliers import issue_text
        from ..workflows.outliers import outliers

        res = outliers(paths or None, method=method, contamination=contamination, threshold=threshold,
                       reference=reference, k=k, out=out, config=config, on_embedded=embedded_note)
        scored, rule, csv_path, html = res.scored, res.rule, res.csv, res.html
        flagged = scored[scored["is_outlier"]]
        table = Table(title=f"agcurate outliers · {len(flagged)} of {len(scored)} flagged ({escape(rule)})")
        for col in ("rank", "score", "item", "issue"):  # fold: a long path wraps, never cut
            table.add_column(col, justify="right" if col in ("rank", "score") else "left", overflow="fold")
        base = common_folder(res.embeddings.inputs)
        for r in flagged.head(15).to_dict("records"):
            name = display_path(r["path"], base) + (f" [{r['window']}]" if r["window"] else "")
            ev = issue_text(r, ISSUE_WORDS)
            table.add_row(str(r["rank"]), "" if r["score"] != r["score"] else f"{r['score']:.2f}",
                          escape(name), escape(str(ev)))
        con = console()
        if base and len(flagged):
            con.print(f"paths relative to {escape(base)}")
        con.print(table)
        if len(flagged) > 15:
            con.print(f"... and {len(flagged) - 15} more")
        if "basis" in scored.columns and (scored["basis"] == "rgb heuristic").any():
            con.print("cloud and haze of RGB-only items come from RGB heuristics (bright neutral share, "
                      "dark-channel veil); multi-band input gets spectral tests")
        counts = _issue_counts(scored)
        if counts:
            con.print("flagged issues: " + ", ".join(f"{w} {n}" for w, n in counts.items()))
        if res.unmeasured:
            con.print(f"[yellow]{res.unmeasured} items could not be decoded to measure their quality (file moved "
                      "or unreadable); their quality issues are left empty[/yellow]")
        con.print(f"wrote {escape(str(csv_path))} and {escape(str(html))}")


def _issue_counts(scored) -> dict[str, int]:
    """How many items have each issue (in words), most common first."""
    from collections import Counter

    from ..ops.quality import ISSUE_WORDS
    from ..report.outliers import issue_list

    c = Counter(w for r in scored.to_dict("records") for w in issue_list(r, ISSUE_WORDS))
    return dict(c.most_common())
