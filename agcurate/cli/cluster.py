"""``agcurate cluster``: clusters, a 2-D map and (with ``--report``) the HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (DEFAULT_OUT, OutOpt, PathsArg, command, console, embed_options, embedded_note,
                     key_value_table)

MinClusterSizeOpt = Annotated[Optional[int], typer.Option(
    "--min-cluster-size", min=2, help="Smallest group called a cluster (default: about sqrt(items), at least 5).")]
ReportOpt = Annotated[bool, typer.Option("--report/--no-report", help="Also write DIR/report.html (map, galleries, duplicates, outliers).")]
ReductionOpt = Annotated[str, typer.Option("--reduction", help="Space HDBSCAN clusters in: umap (default) or pca.")]
DimsOpt = Annotated[int, typer.Option("--dims", min=3, help="Dimensions of that space.")]
MinSamplesOpt = Annotated[Optional[int], typer.Option("--min-samples", min=1, help="HDBSCAN min_samples (default 3).")]
AssignNoiseOpt = Annotated[bool, typer.Option("--assign-noise", help="Put every noise item into the cluster of its nearest clustered neighbours.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (same seed and input give the same clusters.csv).")]


def register(app: typer.Typer) -> None:
    @command(app, "cluster")
    @embed_options()
    def cluster_cmd(
        paths: PathsArg = None,
        min_cluster_size: MinClusterSizeOpt = None,
        report: ReportOpt = False,
        out: OutOpt = DEFAULT_OUT,
        reduction: ReductionOpt = "umap",
        dims: DimsOpt = 10,
        min_samples: MinSamplesOpt = None,
        assign_noise: AssignNoiseOpt = False,
        seed: SeedOpt = 0,
        config=None,
    ) -> None:
        """Group the collection into clusters and lay it out on a map; writes clusters.csv (+ report.html)."""
        from rich.markup import escape

        from ..workflows.cluster import cluster

        res = cluster(paths or None, min_cluster_size=min_cluster_size, min_samples=min_samples,
                      reduction=reduction, dims=dims, seed=seed, assign_noise=assign_noise, report=report,
                      out=out, config=config, on_embedded=embedded_note)
        emb, csv_path, report_path = res.embeddings, res.csv, res.report
        s = res.summary
        p = res.params
        con = console()
        con.print(key_value_table(f"agcurate cluster · {emb.encoder.name}", [
            ("items", f"{s['items']:,}"), ("clusters", f"{s['clusters']:,}"),
            ("noise", f"{s['noise']:,} ({100 * s['noise_share']:.1f}%)"),
            ("min cluster size", f"{p.min_cluster_size}"), ("clustered in", f"{p.reduction} {p.dims}-D")]))
        if s["sizes"]:
            shown = ", ".join(f"{i}: {n:,}" for i, n in enumerate(s["sizes"][:20]))
            more = f" ... ({len(s['sizes']) - 20} more)" if len(s["sizes"]) > 20 else ""
            con.print(f"cluster sizes: {shown}{more}")
        con.print(f"wrote {escape(str(csv_path))}")
        if report_path is not None:
            con.print(f"wrote {escape(str(report_path))}")
        for name, why in res.ignored:  # side files of another collection or encoder
            con.print(f"{escape(report_path.name)} leaves out {escape(name)}: {escape(why)}")
