"""``agcurate embed`` and ``agcurate models``."""

from __future__ import annotations

import typer

from .common import PathsArg, command, console, embed_options, key_value_table, print_skipped


def register(app: typer.Typer) -> None:
    @command(app, "embed")
    @embed_options()
    def embed_cmd(paths: PathsArg = None, config=None) -> None:
        """Embed images and video frames into the cached store (only new or changed files are encoded)."""
        from rich.markup import escape

        from ..embedding import embed

        emb = embed(paths or None, config=config)
        s = emb.stats
        rows = [("items found", f"{s.found:,}"), ("newly encoded", f"{s.encoded:,}"),
                ("taken from cache", f"{s.cached:,}"), ("skipped as unreadable", f"{s.skipped:,}")]
        if s.ignored:
            rows.append(("other files ignored", f"{s.ignored:,}"))
        if s.encoded:  # the loop's speed, as the progress bar shows it; the model build apart
            rows.append(("encoding speed (after start-up)", f"{s.rate:,.1f} items/s"))
            rows.append(("start-up (model load)", f"{s.startup_seconds:,.1f} s"))
        rows.append(("time", f"{s.seconds:,.1f} s"))
        table = key_value_table(f"agcurate embed · {emb.encoder.name}", rows)
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
        for col in ("name", "dim", "input", "offline", "description"):  # fold: long names wrap, never cut
            table.add_column(col, overflow="fold")
        for row in list_encoders():
            table.add_row(escape(row["name"]), str(row["dim"] or "-"), str(row["input_size"] or "-"),
                          "yes" if row["offline"] else "no", escape(row["description"]))
        out = console()
        out.print(table)
        out.print("Any timm:NAME or torchvision:NAME works (weights download once when online, or "
                  "--weights FILE), and file:CHECKPOINT loads an encoder saved by `agcurate pretrain`.")
