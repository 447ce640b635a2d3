"""Saved encoders (``file:model.pt``): a backbone, its preprocessing and how it was made."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import AgcurateError, WeightsUnavailableError
from .base import Encoder, file_digest

CHECKPOINT_FORMAT = "agcurate-encoder/1"


def save_encoder(path: str | os.PathLike, backbone, *, arch: str, dim: int, input_size: int,
                 mean, std, config: dict | None = None) -> Path:
    """Write a backbone-only checkpoint (no projection head) that ``--model file:PATH`` loads.

    ``arch`` names the architecture as ``timm:NAME`` or ``torchvision:NAME`` with the classifier
    removed; the file is written to a temporary name and renamed, so a crash leaves no half file.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT, "arch": arch, "dim": int(dim), "input_size": int(input_size),
        "mean": [float(m) for m in mean], "std": [float(s) for s in std],
        "config": dict(config or {}),
        "state_dict": {k: v.detach().cpu() for k, v in backbone.state_dict().items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load and validate a checkpoint written by ``save_encoder``."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise WeightsUnavailableError(f"no such checkpoint: {path}") from exc
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise WeightsUnavailableError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise AgcurateError(f"{path} is not an agcurate encoder checkpoint (expected {CHECKPOINT_FORMAT})")
    return payload


def file_encoder(path: str, image_size: int | None = None) -> Encoder:
    from .hub import build_skeleton

    path = str(Path(path).expanduser().resolve())
    payload = read_checkpoint(path)

    def build():
        model = build_skeleton(payload["arch"])
        model.load_state_dict(read_checkpoint(path)["state_dict"])
        return model.eval()

    return Encoder(
        name=f"file:{path}", dim=int(payload["dim"]), input_size=image_size or int(payload["input_size"]),
        mean=tuple(payload["mean"]), std=tuple(payload["std"]), weights_id="file-" + file_digest(path),
        build=build, offline=True, description=f"checkpoint of {payload['arch']}",
    )
