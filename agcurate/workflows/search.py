"""``agcurate.search``: the items of a collection most similar to query images."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..embedding.config import EmbedConfig
from ..errors import UsageError
from .common import check_exists, check_range, embed_input, output_record, record_outputs

CSV_COLUMNS = ["query", "rank", "path", "score", "frame", "window"]


@dataclass
class SearchResult:
    """``table`` holds the ``matches.csv`` rows; ``matches`` the same rows with the query's and the
    match's positions (``query_index``, ``index``), ``is_match`` and item ``key``."""

    table: "pd.DataFrame"  # noqa: F821
    matches: "pd.DataFrame"  # noqa: F821
    queries: object      # Embeddings of the queries
    collection: object   # Embeddings of the collection searched
    k: int
    csv: Path | None = None
    html: Path | None = None


def search(queries: Iterable[str | os.PathLike], collection: Iterable[str | os.PathLike] | None = None, *,
           k: int = 10, out: str | os.PathLike | None = None, config: EmbedConfig | None = None,
           progress: bool | None = None, on_embedded: Callable | None = None, **options) -> SearchResult:
    """The ``k`` items of ``collection`` (None: the last embedded collection) most similar to each of
    ``queries`` (image files or folders). Queries go through the collection's own encoder. With
    ``out`` ``matches.csv`` and ``search.html`` are written there. ``options``: ``EmbedConfig`` fields.
    """
    from ..embedding import embed
    from ..ops.search import search as run_search
    from ..sources import SourceOptions

    queries = list([queries] if isinstance(queries, (str, os.PathLike)) else queries)  # paths or URLs
    if not queries:
        raise UsageError("give at least one query image")
    check_exists("query", queries)
    check_exists("--in", collection)
    check_range("-k", k, 1)
    cfg = EmbedConfig.make(config, **options)
    coll = embed_input(collection, cfg, progress=progress, on_embedded=on_embedded, neighbor_index=True)
    # queries are whole images through the collection's own encoder (also when PATH was omitted)
    q = embed(queries, config=cfg, encoder=coll.encoder, source_options=SourceOptions(), progress=progress,
              remember=False)
    matches = run_search(q.vectors, coll.vectors, coll.items, k=k, query_keys=q.keys)
    matches["query"] = [q.paths[i] for i in matches["query_index"]]
    result = SearchResult(table=matches[CSV_COLUMNS], matches=matches, queries=q, collection=coll, k=k)
    if out is not None:
        write_outputs(result, Path(out))
    return result


def write_outputs(result: SearchResult, out: Path) -> None:
    """``matches.csv`` and ``search.html`` under ``out``, recorded in ``out/outputs.json`` (the
    collection searched, and the queries)."""
    from ..report import write_csv
    from ..report.search import write_search_page

    result.csv = write_csv(result.table, out / "matches.csv")
    result.html = write_search_page(out / "search.html", result.matches, result.queries.items,
                                    result.collection.items, k=result.k)
    record_outputs(out, [result.csv, result.html],
                   output_record("search", result.collection, queries=list(result.queries.inputs)))
