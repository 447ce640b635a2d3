"""``agcurate embed`` and ``agcurate models``."""

from __future__ import annotations

import typer

from ..encoders import DEFAULT_MODEL
from .common import (BackendOpt, BandsOpt, BatchOpt, DeviceOpt, FpsOpt, ImageSizeOpt, ModelOpt, PathsArg,
                     StoreOpt, StretchOpt, StrideOpt, TileOpt, WeightsOpt, WorkersOpt, command, console,
                     print_skipped, source_options)


def register(app: typer.Typer) -> None:
    @command(app, "embed")
    def embed_cmd(
        paths: PathsArg = None,
        model: ModelOpt = DEFAULT_MODEL,
        weights: WeightsOpt = None,
        device: DeviceOpt = "auto",
        batch_size: BatchOpt = None,
        workers: WorkersOpt = None,
        image_size: ImageSizeOpt = None,
        store: StoreOpt = None,
        tile: TileOpt = None,
        stride: StrideOpt = None,
        bands: BandsOpt = None,
        stretch: StretchOpt = None,
        backend: BackendOpt = "auto",
        fps: FpsOpt = None,
    ) -> None:
        """Embed images and video frames into the cached store (only new or changed files are encoded)."""
        from rich.markup import escape
        from rich.table import Table

        from ..embedding import embed

        emb = embed(paths or None, model, device=device, batch_size=batch_size, workers=workers,
                    image_size=image_size, store=store, weights=str(weights) if weights else None,
                    source_options=source_options(tile, stride, bands, stretch, fps=fps), backend=backend)
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
