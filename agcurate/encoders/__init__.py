"""Encoder registry: ``lite0`` (default, offline), ``lite0-ml`` (offline), ``timm:NAME``, ``torchvision:NAME``, ``file:PATH``."""

from __future__ import annotations

from pathlib import Path

from ..errors import UnknownModelError
from .base import Encoder
from .checkpoint import CHECKPOINT_FORMAT, read_checkpoint, save_encoder

DEFAULT_MODEL = "lite0"
SUGGESTED = ["lite0", "lite0-ml", "timm:resnet50.a1_in1k", "timm:vit_small_patch14_dinov2.lvd142m",
             "torchvision:resnet50", "torchvision:efficientnet_b0"]

__all__ = ["CHECKPOINT_FORMAT", "DEFAULT_MODEL", "Encoder", "get_encoder", "list_encoders",
           "read_checkpoint", "save_encoder"]


def get_encoder(name: str = DEFAULT_MODEL, weights: str | None = None,
                image_size: int | None = None) -> Encoder:
    """Resolve a ``--model`` value to an encoder (nothing is downloaded until it is built)."""
    if weights and not Path(weights).is_file():
        raise UnknownModelError(f"--weights {weights}: no such file")
    if name in ("lite0", "lite0-ml"):
        from .lite0 import lite0_encoder

        return lite0_encoder(image_size, multilevel=name == "lite0-ml")
    kind, sep, rest = name.partition(":")
    if sep and kind == "timm":
        from .hub import timm_encoder

        return timm_encoder(rest, weights, image_size)
    if sep and kind == "torchvision":
        from .hub import torchvision_encoder

        return torchvision_encoder(rest, weights, image_size)
    if sep and kind == "file":
        from .checkpoint import file_encoder

        return file_encoder(rest, image_size)
    if Path(name).is_file():
        from .checkpoint import file_encoder

        return file_encoder(name, image_size)
    raise UnknownModelError(
        f"unknown model {name!r}: use lite0, lite0-ml, timm:NAME, torchvision:NAME or file:CHECKPOINT")


def list_encoders(extra: list[str] | None = None) -> list[dict]:
    """Name, embedding dimension, input size and offline availability of known encoders."""
    rows = []
    for name in SUGGESTED + list(extra or []):
        try:
            enc = get_encoder(name)
            rows.append({"name": name, "dim": enc.dim, "input_size": enc.input_size,
                         "offline": enc.offline, "description": enc.description})
        except Exception as exc:  # noqa: BLE001 - listing must survive a broken optional entry
            rows.append({"name": name, "dim": None, "input_size": None, "offline": False,
                         "description": f"unavailable: {exc}"})
    return rows
