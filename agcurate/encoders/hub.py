"""Encoders from timm and torchvision: their own download and cache when online, or ``--weights FILE``."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UnknownModelError, WeightsUnavailableError
from .base import IMAGENET_MEAN, IMAGENET_STD, Encoder, file_digest


def build_skeleton(arch: str):
    """An architecture without weights and without classifier, from ``timm:NAME`` / ``torchvision:NAME``."""
    kind, _, name = arch.partition(":")
    if kind == "timm":
        import timm

        try:
            return timm.create_model(name, pretrained=False, num_classes=0)
        except RuntimeError as exc:
            raise UnknownModelError(f"timm has no model {name!r}") from exc
    if kind == "torchvision":
        from torchvision.models import get_model

        try:
            return strip_head(get_model(name, weights=None))
        except ValueError as exc:
            raise UnknownModelError(f"torchvision has no model {name!r}") from exc
    raise UnknownModelError(f"unknown architecture {arch!r} (expected timm:NAME or torchvision:NAME)")


def strip_head(model):
    """Replace a torchvision classifier (``fc``, ``classifier``, ``heads``, ``head``) with identity."""
    import torch.nn as nn

    for attr in ("fc", "classifier", "heads", "head"):
        if isinstance(getattr(model, attr, None), nn.Module):
            setattr(model, attr, nn.Identity())
            return model
    raise UnknownModelError(f"cannot find the classifier of {type(model).__name__} to remove it")


def _feature_dim(model, size: int) -> int:
    import torch

    with torch.inference_mode():
        return int(model.eval()(torch.zeros(1, 3, size, size)).reshape(1, -1).shape[1])


def _load_file_state(model, weights: str) -> None:
    import torch

    state = torch.load(weights, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise WeightsUnavailableError(f"{weights}: {len(missing)} tensors missing, e.g. {missing[0]}")


def timm_encoder(name: str, weights: str | None = None, image_size: int | None = None) -> Encoder:
    import timm

    if not timm.is_model(name.split(".")[0]):
        raise UnknownModelError(f"timm has no model {name!r} (see timm.list_models())")
    cfg = timm.get_pretrained_cfg(name) if timm.is_model_pretrained(name) else None
    cfg_d = cfg.to_dict() if cfg is not None else {}
    size = image_size or int(cfg_d.get("input_size", (3, 224, 224))[-1])
    mean = tuple(cfg_d.get("mean", IMAGENET_MEAN))
    std = tuple(cfg_d.get("std", IMAGENET_STD))
    if weights:
        wid, offline = "file-" + file_digest(weights), True
    else:
        wid = "timm-" + str(cfg_d.get("hf_hub_id") or cfg_d.get("url") or cfg_d.get("tag") or "none")
        offline = _timm_cached(cfg_d)

    def build():
        try:
            if weights:
                model = timm.create_model(name, pretrained=False, num_classes=0)
                _load_file_state(model, weights)
            else:
                model = timm.create_model(name, pretrained=True, num_classes=0)
        except (OSError, RuntimeError, ValueError) as exc:
            raise WeightsUnavailableError(
                f"weights for timm:{name} are not cached and could not be downloaded ({exc.__class__.__name__});"
                " connect once or pass --weights FILE") from exc
        return model.eval()

    dim = int(timm.create_model(name, pretrained=False, num_classes=0).num_features)
    return Encoder(name=f"timm:{name}", dim=dim, input_size=size, mean=mean, std=std, weights_id=wid,
                   build=build, offline=offline, description="timm " + name)


def _timm_cached(cfg: dict) -> bool:
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache

            for fname in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
                if isinstance(try_to_load_from_cache(hub_id, fname), str):
                    return True
        except ImportError:
            pass
    url = cfg.get("url")
    return bool(url) and _torch_hub_has(url)


def _torch_hub_has(url: str) -> bool:
    import torch

    return (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)).exists()


def torchvision_encoder(name: str, weights: str | None = None, image_size: int | None = None) -> Encoder:
    from torchvision.models import get_model, get_model_weights, list_models

    if name not in list_models():
        raise UnknownModelError(f"torchvision has no model {name!r}")
    default = get_model_weights(name).DEFAULT
    tf = default.transforms()
    size = image_size or int(getattr(tf, "crop_size", [224])[0])
    mean = tuple(getattr(tf, "mean", IMAGENET_MEAN))
    std = tuple(getattr(tf, "std", IMAGENET_STD))
    if weights:
        wid, offline = "file-" + file_digest(weights), True
    else:
        wid, offline = f"torchvision-{default}", _torch_hub_has(default.url)

    def build():
        try:
            if weights:
                model = get_model(name, weights=None)
                _load_file_state(model, weights)
            else:
                model = get_model(name, weights=default)
        except (OSError, RuntimeError) as exc:
            raise WeightsUnavailableError(
                f"weights for torchvision:{name} are not cached and could not be downloaded"
                f" ({exc.__class__.__name__}); connect once or pass --weights FILE") from exc
        return strip_head(model).eval()

    dim = _feature_dim(strip_head(get_model(name, weights=None)), size)
    return Encoder(name=f"torchvision:{name}", dim=dim, input_size=size, mean=mean, std=std,
                   weights_id=wid, build=build, offline=offline, description=f"torchvision {name} ({default})")
