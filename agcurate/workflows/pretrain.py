"""``agcurate.pretrain``: self-supervised domain pretraining, with its options checked before any work."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ..embedding.config import check_device, with_options
from ..errors import UsageError
from ..sources.base import SourceOptions
from ..training.train import PretrainConfig, PretrainResult
from .common import check_choice, check_exists, check_range

INITS = "lite0 (ImageNet), scratch, scratch:timm:NAME or any --model value"


def check_config(cfg: PretrainConfig) -> None:
    """Cheap checks of a training configuration (names and ranges), before any image is read."""
    from ..training.methods import METHODS

    check_choice("--method", cfg.method, METHODS)
    check_range("--epochs", cfg.epochs, 1)
    check_range("--batch-size", cfg.batch_size, 2)
    check_range("--image-size", cfg.image_size, 16)
    check_range("--embed-size", cfg.embed_size, 16)
    check_range("--lr", cfg.lr, 0.0)
    check_range("--temperature", cfg.temperature, 0.01)
    check_range("--local-views", cfg.local_views, 0)
    check_range("--workers", cfg.workers, 0)
    check_range("--threads", cfg.threads, 1)
    check_device((cfg.device or "auto").strip().lower())
    SourceOptions(tile=cfg.tile, bands=cfg.bands, stretch=cfg.stretch)  # --tile, --bands, --stretch syntax
    init = cfg.init
    if not (init in ("lite0", "scratch") or init.startswith("scratch:")):
        from ..encoders import get_encoder

        try:
            get_encoder(init)
        except Exception as exc:  # noqa: BLE001 - any resolution failure is a bad --init
            raise UsageError(f"--init {init!r}: {exc} (use {INITS})") from None


def pretrain(paths: Iterable[str | os.PathLike] | None = None, out: str | os.PathLike = "model.pt",
             config: PretrainConfig | None = None, *, pairs: str | os.PathLike | None = None,
             resume: bool = False, checkpoint: str | os.PathLike | None = None,
             store: str | os.PathLike | None = None, progress: bool | None = None,
             log: Callable[[str], None] | None = None, on_epoch_end: Callable[[dict], None] | None = None,
             keep_checkpoint: bool = False, **options) -> PretrainResult:
    """Train an encoder self-supervised (SimCLR or DINO) on the images under ``paths`` (None: the last
    embedded collection) and save the backbone as ``out`` (use it as ``--model file:OUT``).

    ``config`` is a ``PretrainConfig``; ``options`` are its fields (``epochs``, ``method``,
    ``batch_size``...) put on top. ``pairs``: a CSV of two paths per row used as positive pairs.
    ``resume`` continues from ``checkpoint`` (default ``OUT.ckpt``), written after every epoch and
    removed when the run finishes unless ``keep_checkpoint``.
    """
    from ..training.train import pretrain as train

    # a copy: training fills in the device defaults (batch and image size) on its config
    cfg = with_options(dataclasses.replace(config) if config else PretrainConfig(), "pretraining", **options)
    check_config(cfg)
    check_exists("--pairs", [pairs] if pairs is not None else None)
    return train(None if paths is None else [Path(p) for p in paths], Path(out), cfg, pairs=pairs,
                 resume=resume, checkpoint=checkpoint, store=store, progress=progress, log=log,
                 on_epoch_end=on_epoch_end, keep_checkpoint=keep_checkpoint)
