"""Saved encoders (``file:model.pt``): a backbone, its preprocessing and how it was made."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import WeightsUnavailableError
from .base import Encoder, file_digest

CHECKPOINT_FORMAT = "agcurate-encoder/1"
TRAINING_FORMAT = "agcurate-pretrain/1"  # a training checkpoint (model + heads + optimizer), not an encoder


def save_encoder(path: str | os.PathLike, backbone, *, arch: str, dim: int, input_size: int,
                 mean, std, config: dict | None = None, bands=None, stretch: str | None = None) -> Path:
    """Write a backbone-only checkpoint (no projection head) that ``--model file:PATH`` loads.

    ``arch`` names the architecture as ``timm:NAME`` or ``torchvision:NAME`` with the classifier
    removed; the file is written to a temporary name and renamed, so a crash leaves no half file.
    ``bands`` (and ``stretch``) record the raster bands of a band encoder (its stem takes one channel
    per band, normalised by the per-band ``mean``/``std``); an encoder without them takes RGB.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT, "arch": arch, "dim": int(dim), "input_size": int(input_size),
        "mean": [float(m) for m in mean], "std": [float(s) for s in std],
        "config": dict(config or {}),
        "bands": list(bands) if bands else None, "stretch": stretch,
        "state_dict": {k: v.detach().cpu() for k, v in backbone.state_dict().items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load and validate a checkpoint written by ``save_encoder``."""
    payload = load_torch_file(path)
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt == CHECKPOINT_FORMAT:
        return payload
    if fmt == TRAINING_FORMAT:
        raise WeightsUnavailableError(
            f"{path} is a training checkpoint of `agcurate pretrain`, not an encoder: use the encoder it "
            "wrote (--out, model.pt), or export one with agcurate.training.export_checkpoint")
    raise WeightsUnavailableError(
        f"{path} is a torch checkpoint but not an agcurate encoder (those are written by `agcurate pretrain`); "
        "for weights of a timm or torchvision model use --model timm:NAME or torchvision:NAME with --weights FILE")


def load_torch_file(path: str | os.PathLike):
    """``torch.load`` (tensors only, on the CPU) with a one-line error that says what the file is instead.

    torch's own errors for a file of another kind are cryptic (a text file gives ``KeyError: 101``).
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise WeightsUnavailableError(f"no such checkpoint: {path}") from exc
    except OSError as exc:
        raise WeightsUnavailableError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise WeightsUnavailableError(f"{path} is not an agcurate or torch checkpoint ({_what_it_is(path, exc)})") \
            from exc


def _what_it_is(path, exc: Exception) -> str:
    """A few words on a file ``torch.load`` refused, from its first bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return "cannot be read"
    if not head:
        return "it is empty"
    if head.startswith(b"PK\x03\x04"):
        first = (str(exc).splitlines() or [""])[0].split(". ")[0]
        return f"a zip archive torch cannot read: truncated? {first}".rstrip()
    if head[:1] == b"\x80":
        return "a pickle with objects other than tensors, or a damaged one; torch loads tensors only"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:  # a cut multi-byte character at the end is still text
        text = head[:err.start].decode("utf-8") if err.start > len(head) - 4 else ""
    if text and all(c.isprintable() or c in "\t\r\n" for c in text):
        return "it is a text file"
    return "torch.load cannot read it"


def file_encoder(path: str, image_size: int | None = None) -> Encoder:
    from .hub import build_skeleton

    path = str(Path(path).expanduser().resolve())
    payload = read_checkpoint(path)

    from .bands import with_channels

    bands = tuple(payload.get("bands") or ()) or None
    channels = len(payload["mean"])

    def build():
        model = with_channels(build_skeleton(payload["arch"]), channels)
        model.load_state_dict(read_checkpoint(path)["state_dict"])
        return model.eval()

    what = f" on {len(bands)} bands ({','.join(bands)})" if bands else ""
    return Encoder(
        name=f"file:{path}", dim=int(payload["dim"]), input_size=image_size or int(payload["input_size"]),
        mean=tuple(payload["mean"]), std=tuple(payload["std"]), weights_id="file-" + file_digest(path),
        build=build, offline=True, description=f"checkpoint of {payload['arch']}{what}",
        bands=bands, stretch=payload.get("stretch"),
    )
