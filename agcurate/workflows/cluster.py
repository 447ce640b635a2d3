"""``agcurate.cluster``: clusters and a 2-D map of a collection, and the HTML report."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..embedding.config import EmbedConfig
from ..errors import UsageError
from ..ops.cluster import REDUCTIONS
from .common import check_choice, check_range, embed_input, output_record, record_outputs


@dataclass
class ClusterResult:
    """``table`` holds the ``clusters.csv`` rows; ``clusters`` the op table (``cluster``,
    ``probability``, ``score`` = how representative of its cluster, ``rank`` within it, ``is_noise``,
    map coordinates), row for row with the items."""

    table: "pd.DataFrame"  # noqa: F821
    clusters: "pd.DataFrame"  # noqa: F821
    summary: dict
    embeddings: object
    csv: Path | None = None
    report: Path | None = None
    ignored: list[tuple[str, str]] = field(default_factory=list)  # side files the report left out, and why

    @property
    def params(self):
        """The settings the clustering used (``ops.cluster.ClusterParams``)."""
        return self.clusters.attrs["params"]


def cluster(paths: Iterable[str | os.PathLike] | None = None, *, min_cluster_size: int | None = None,
            min_samples: int | None = None, reduction: str = "umap", dims: int = 10, seed: int = 0,
            assign_noise: bool = False, report: bool = False, out: str | os.PathLike | None = None,
            config: EmbedConfig | None = None, progress: bool | None = None,
            on_embedded: Callable | None = None, on_phase: Callable[[str], None] | None = None,
            **options) -> ClusterResult:
    """Cluster the items under ``paths`` (None: the last embedded collection) and lay them out on a map.

    HDBSCAN on a seeded ``reduction`` (umap or pca) to ``dims`` dimensions; ``assign_noise`` puts
    noise items into their nearest cluster. With ``out`` ``clusters.csv`` is written there, and
    with ``report`` also ``report.html``. The steps after embedding (reducing, clustering, map,
    report) show as a status line on a terminal (``progress``) and are passed to ``on_phase(name)``.
    ``options``: ``EmbedConfig`` fields.
    """
    from ..ops.cluster import cluster as run_cluster
    from ..ops.cluster import clusters_csv, summary
    from ..progress import phase_status

    check_choice("--reduction", reduction, REDUCTIONS)
    check_range("--dims", dims, 3)
    check_range("--min-cluster-size", min_cluster_size, 2)
    check_range("--min-samples", min_samples, 1)
    if report and out is None:
        raise UsageError("report=True needs an out folder for report.html")
    cfg = EmbedConfig.make(config, **options)
    emb = embed_input(paths, cfg, progress=progress, on_embedded=on_embedded)
    steps = ["reducing", "clustering", "map"] + (["report"] if report else [])
    with phase_status(steps, "cluster", enabled=progress) as status:
        def phase(name: str) -> None:
            status(name)
            if on_phase is not None:
                on_phase(name)

        table = run_cluster(emb.vectors, min_cluster_size=min_cluster_size, min_samples=min_samples,
                            reduction=reduction, dims=dims, seed=seed, assign_noise=assign_noise,
                            on_phase=phase)
        result = ClusterResult(table=clusters_csv(table, emb.items), clusters=table, summary=summary(table),
                               embeddings=emb)
        if out is not None:
            if report:
                phase("report")
            write_outputs(result, Path(out), report=report)
    return result


def write_outputs(result: ClusterResult, out: Path, report: bool = False) -> None:
    """``clusters.csv`` (and with ``report`` the ``report.html`` map) under ``out``, recorded in
    ``out/outputs.json``. The report merges the ``duplicates.csv`` / ``outliers.csv`` there only when
    they were made from the same collection and encoder; ``result.ignored`` says which it left out."""
    from ..report import write_csv

    emb = result.embeddings
    record = output_record("cluster", emb)
    result.csv = write_csv(result.table, out / "clusters.csv")
    if report:
        from ..report.cluster import side_files, write_cluster_report

        side = side_files(out, emb.paths, record)
        result.ignored = side.ignored
        params = {"model": emb.encoder.name, **asdict(result.params)}
        result.report = write_cluster_report(out, emb.items, result.clusters, side=side, params=params)
    record_outputs(out, [result.csv, result.report], record)
