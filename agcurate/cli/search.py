"""``agcurate search``: the items of a collection most similar to query images."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..items import display_path
from .common import DEFAULT_OUT, OutOpt, command, common_folder, console, embed_options, embedded_note


def register(app: typer.Typer) -> None:
    @command(app, "search")
    @embed_options()
    def search_cmd(
        queries: Annotated[list[str], typer.Argument(help="Query images, or folders of them (paths or URLs).", show_default=False)],
        in_: Annotated[Optional[list[str]], typer.Option(
            "--in", help="Collection to search (files or folders; repeatable). Omit to search the last "
                         "`agcurate embed` collection.")] = None,
        k: Annotated[int, typer.Option("-k", "--k", min=1, help="Matches per query.")] = 10,
        out: OutOpt = DEFAULT_OUT,
        config=None,
    ) -> None:
        """Find the k most similar items in a collection for each query image; write matches.csv and
        search.html."""
        from rich.markup import escape
        from rich.table import Table

        from ..report.html import count
        from ..workflows.search import search

        res = search(queries, in_, k=k, out=out, config=config, on_embedded=embedded_note)
        q, coll, matches, csv_path, html_path = res.queries, res.collection, res.matches, res.csv, res.html
        c = console()
        t = Table(title=f"agcurate search · {count(len(q), 'query')} in {count(len(coll), 'item')}")
        for col in ("query", "best match", "score"):
            t.add_column(col, overflow="fold")  # a long path wraps, never cut
        q_base, c_base = common_folder(q.inputs), common_folder(coll.inputs)
        for i, qp in enumerate(q.paths[:20]):
            best = matches[(matches["query_index"] == i) & (matches["rank"] == 1)]
            if len(best):
                t.add_row(escape(display_path(qp, q_base)), escape(display_path(best["path"].iloc[0], c_base)),
                          f"{best['score'].iloc[0]:.3f}")
            else:
                t.add_row(escape(display_path(qp, q_base)), "-", "-")
        if c_base:
            c.print(f"matches relative to {escape(c_base)}")
        c.print(t)
        for s in q.skipped[:5]:
            c.print(f"  query skipped {escape(s.path)}: {escape(s.reason)}")
        c.print(f"wrote {escape(str(csv_path))} and {escape(str(html_path))}")
