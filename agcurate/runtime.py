"""Where and how the model runs: device choice, threads, precision and memory layout."""

from __future__ import annotations

import os

import numpy as np

from .errors import AgcurateError


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; an explicit ``cuda`` must exist."""
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AgcurateError("--device cuda was asked for, but no CUDA GPU is available")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise AgcurateError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


def cpu_threads() -> int:
    """Cores this process may use (respects CPU affinity / container limits); ``$AGCURATE_THREADS`` overrides."""
    env = os.environ.get("AGCURATE_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class ModelRunner:
    """Runs an encoder on uint8 NCHW batches and returns L2-normalised float32 embeddings.

    CPU: channels_last, inference mode, all cores. CUDA: the same plus mixed precision (fp16
    autocast) and non-blocking copies from pinned memory.
    """

    def __init__(self, encoder, device: str = "auto"):
        import torch

        self.device = torch.device(resolve_device(device))
        self.cuda = self.device.type == "cuda"
        if not self.cuda:
            torch.set_num_threads(cpu_threads())
        else:
            torch.backends.cudnn.benchmark = True
        self.model = encoder.build().to(self.device).eval().to(memory_format=torch.channels_last)
        scale = 255.0
        self.mean = torch.tensor(encoder.mean, device=self.device).view(1, 3, 1, 1) * scale
        self.std = torch.tensor(encoder.std, device=self.device).view(1, 3, 1, 1) * scale
        self.dim = encoder.dim

    def __call__(self, batch_uint8) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            x = batch_uint8.to(self.device, non_blocking=self.cuda).float()
            x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
            if self.cuda:
                with torch.autocast("cuda", dtype=torch.float16):
                    feats = self.model(x)
            else:
                feats = self.model(x)
            feats = F.normalize(feats.float().flatten(1), dim=1)
        return feats.cpu().numpy()
