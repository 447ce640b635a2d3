"""``agcurate search``: the items of a collection most similar to query images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import DEFAULT_OUT, EmbedOptions, OutOpt, command, console, embed_options


def register(app: typer.Typer) -> None:
    @command(app, "search")
    @embed_options()
    def search_cmd(
        queries: Annotated[list[Path], typer.Argument(help="Query images, or folders of them.", show_default=False)],
        in_: Annotated[Optional[list[Path]], typer.Option(
            "--in", help="Collection to search (files or folders; repeatable). Omit to search the last "
                         "`agcurate embed` collection.")] = None,
        k: Annotated[int, typer.Option("-k", "--k", min=1, help="Matches per query.")] = 10,
        out: OutOpt = DEFAULT_OUT,
        opts: EmbedOptions = None,
    ) -> None:
        """Find the k most similar items in a collection for each query image; write matches.csv and
        search.html."""
        from rich.markup import escape
        from rich.table import Table

        from ..embedding import embed
        from ..ops.search import search
        from ..report import write_csv
        from ..report.pages import write_search_page

        coll = opts.embed(in_)
        # queries go through the collection's own encoder (also when --in was omitted)
        q = embed(queries, encoder=coll.encoder, device=opts.device, batch_size=opts.batch_size,
                  workers=opts.workers, store=opts.store, remember=False, backend=opts.backend)
        matches = search(q.vectors, coll.vectors, coll.items, k=k, query_keys=q.keys)
        matches["query"] = [q.paths[i] for i in matches["query_index"]]
        out = Path(out)
        csv_path = write_csv(matches[["query", "rank", "path", "score", "frame", "window"]], out / "matches.csv")
        html_path = write_search_page(out / "search.html", matches, q.items, coll.items, k=k)

        c = console()
        t = Table(title=f"agcurate search · {len(q)} queries in {len(coll):,} items")
        for col in ("query", "best match", "score"):
            t.add_column(col)
        for i, qp in enumerate(q.paths[:20]):
            best = matches[(matches["query_index"] == i) & (matches["rank"] == 1)]
            if len(best):
                t.add_row(escape(Path(qp).name), escape(Path(best["path"].iloc[0]).name), f"{best['score'].iloc[0]:.3f}")
            else:
                t.add_row(escape(Path(qp).name), "-", "-")
        c.print(t)
        for s in q.skipped[:5]:
            c.print(f"  query skipped {escape(s.path)}: {escape(s.reason)}")
        c.print(f"wrote {escape(str(csv_path))} and {escape(str(html_path))}")
