"""``agcurate pretrain``: self-supervised domain pretraining of an encoder on unlabeled images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import DeviceOpt, PathsArg, StoreOpt, StretchOpt, TileOpt, command, console

MethodOpt = Annotated[str, typer.Option("--method", help="simclr (contrastive; large batches) or dino "
                                                         "(self-distillation; works with small batches).")]
InitOpt = Annotated[str, typer.Option("--init", help="Starting weights: lite0 (ImageNet), scratch (random lite0; "
                                                     "scratch:timm:NAME for another net) or any --model value.")]


def register(app: typer.Typer) -> None:
    @command(app, "pretrain")
    def pretrain_cmd(
        paths: PathsArg = None,
        method: MethodOpt = "simclr",
        init: InitOpt = "lite0",
        epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the data.")] = 10,
        batch_size: Annotated[Optional[int], typer.Option(
            "--batch-size", min=2, help="Images per step (default 256 on CUDA, 64 on CPU).")] = None,
        image_size: Annotated[Optional[int], typer.Option(
            "--image-size", min=16, help="Training crop size (default 224 on CUDA, 128 on CPU).")] = None,
        embed_size: Annotated[Optional[int], typer.Option(
            "--embed-size", min=16, help="Input size saved in model.pt for embedding (default: the "
                                         "initial encoder's, 224 for lite0).")] = None,
        device: DeviceOpt = "auto",
        out: Annotated[Path, typer.Option("--out", "-o", help="The trained encoder (backbone only).")] = Path("model.pt"),
        temperature: Annotated[float, typer.Option("--temperature", min=0.01,
                                                   help="NT-Xent temperature (SimCLR).")] = 0.2,
        lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate (AdamW, warm-up then cosine).")] = 1e-3,
        workers: Annotated[Optional[int], typer.Option(
            "--workers", min=0, help="Decode/augment worker processes (default: up to 4 on CPU, 8 on CUDA; 0 = in-process).")] = None,
        pairs: Annotated[Optional[Path], typer.Option(
            "--pairs", help="CSV of two paths per row: two images of one object form the positive pair "
                            "(e.g. RGB and RGB-NIR of one plant) instead of two augmentations.")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint of an interrupted run.")] = False,
        checkpoint: Annotated[Optional[Path], typer.Option(
            "--checkpoint", help="Training checkpoint written every epoch (default: OUT.ckpt); removed "
                                 "when the run finishes unless --keep-checkpoint.")] = None,
        keep_checkpoint: Annotated[bool, typer.Option(
            "--keep-checkpoint", help="Keep the training checkpoint (model, heads, optimizer) after a "
                                      "finished run; an interrupted run always keeps it for --resume.")] = False,
        seed: Annotated[int, typer.Option("--seed", help="Seed of initial heads, sampling and augmentations.")] = 0,
        local_views: Annotated[int, typer.Option("--local-views", min=0, help="Small crops per image (dino).")] = 2,
        threads: Annotated[Optional[int], typer.Option(
            "--threads", min=1, help="CPU threads (default: the cores other processes leave idle, at least 1).")] = None,
        store: StoreOpt = None,
        bands: Annotated[Optional[str], typer.Option(
            "--bands", help="Raster bands to train on: all (or 4 or more, by name or 1-based index) trains an "
                            "encoder that sees every band; 1 or 3 bands a picture (default: true colour).")] = None,
        stretch: StretchOpt = None,
        tile: TileOpt = None,
    ) -> None:
        """Self-supervised pretraining (SimCLR or DINO) on unlabeled images; writes an encoder for --model file:OUT."""
        from rich.markup import escape
        from rich.table import Table

        from ..training.train import PretrainConfig
        from ..workflows.pretrain import pretrain

        note = console(stderr=True)
        cfg = PretrainConfig(method=method, init=init, epochs=epochs, batch_size=batch_size, image_size=image_size,
                             embed_size=embed_size, lr=lr, temperature=temperature, local_views=local_views,
                             seed=seed, device=device, workers=workers, threads=threads, bands=bands,
                             stretch=stretch, tile=tile)
        res = pretrain(paths or None, out, cfg, pairs=pairs, resume=resume, checkpoint=checkpoint, store=store,
                       log=lambda msg: note.print(escape(msg)), keep_checkpoint=keep_checkpoint)
        table = Table(title=f"agcurate pretrain · {method} from {escape(init)}", show_header=False)
        table.add_column(style="bold")
        table.add_column(justify="right")
        table.add_row("images" if not pairs else "pairs", f"{res.n_items:,}")
        table.add_row("device", res.device)
        if res.bands:
            table.add_row("bands", f"{len(res.bands)}: {','.join(res.bands)}")
        table.add_row("epochs", f"{res.start_epoch} -> {res.epochs_done}" if res.start_epoch else str(res.epochs_done))
        if res.history:
            table.add_row("loss first -> last epoch", f"{res.history[0]['loss']:.4f} -> {res.history[-1]['loss']:.4f}")
            rates = [h["images_per_s"] for h in res.history[res.start_epoch:]] or [0]
            table.add_row("speed", f"{sum(rates) / len(rates):,.1f} images/s")
        table.add_row("skipped as unreadable", f"{len(res.skipped):,}")
        table.add_row("time", f"{res.seconds:,.1f} s")
        o = console()
        o.print(table)
        for s in res.skipped[:5]:
            o.print(f"  skipped {escape(s.path)}: {escape(s.reason)}")
        o.print(f"encoder: {escape(str(res.out))} (use --model file:{escape(str(res.out))})")
        if res.checkpoint is not None:
            o.print(f"checkpoint: {escape(str(res.checkpoint))} (kept: --resume continues it; delete it when done)")
        else:
            o.print("training checkpoint removed (--keep-checkpoint keeps it)")
