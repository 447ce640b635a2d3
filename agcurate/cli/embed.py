"""``agcurate embed`` and ``agcurate models``."""

from __future__ import annotations

import typer

from .common import EmbedOptions, FpsOpt, PathsArg, command, console, embed_options, print_skipped


def register(app: typer.Typer) -> None:
    @command(app, "embed")
    @embed_options()
    def embed_cmd(paths: PathsArg = None, fps: FpsOpt = None, opts: EmbedOptions = None) -> None:
        """Embed images and video frames into the cached store (only new or changed files are encoded)."""
        from rich.markup import escape
        from rich.table import Table

        emb = opts.embed(paths, source_options=opts.sources(fps=fps), quiet=True)
        s = emb.stats
        table = Table(title=f"agcurate embed · {escape(emb.encoder.name)}", show_header=False)
        table.add_column(style="bold")
        table.add_column(justify="right")
        table.add_row("items found", f"{s.found:,}")
        table.add_row("newly encoded", f"{s.encoded:,}")
        table.add_row("taken from cache", f"{s.cached:,}")
        table.add_row("skipped as unreadable", f"{s.skipped:,}")
        if s.ignored:
            table.add_row("other files ignored", f"{s.ignored:,}")
        if s.encoded:
            table.add_row("encoding speed", f"{s.rate:,.1f} items/s")
        table.add_row("time", f"{s.seconds:,.1f} s")
        out = console()
        out.print(table)
        if s.encoded == 0:
            out.print("nothing new to encode: every item was already in the store")
        print_skipped(emb, out)
        out.print(f"store: {escape(str(emb.store_dir))}")

    @command(app, "models")
    def models_cmd() -> None:
        """List encoders: name, embedding dimension, input size, weights available offline."""
        from rich.markup import escape
        from rich.table import Table

        from ..encoders import list_encoders

        table = Table(title="agcurate encoders")
        for col in ("name", "dim", "input", "offline", "description"):
            table.add_column(col)
        for row in list_encoders():
            table.add_row(escape(row["name"]), str(row["dim"] or "-"), str(row["input_size"] or "-"),
                          "yes" if row["offline"] else "no", escape(row["description"]))
        out = console()
        out.print(table)
        out.print("Any timm:NAME or torchvision:NAME works (weights download once when online, or "
                  "--weights FILE), and file:CHECKPOINT loads an encoder saved by `agcurate pretrain`.")
