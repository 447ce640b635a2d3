"""Where and how the model runs: device choice, threads, precision and memory layout."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import AgcurateError, UsageError
from ..system import cpu_threads


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; an explicit ``cuda`` must exist."""
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but no CUDA GPU is available")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise UsageError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device



class ModelRunner:
    """Runs an encoder on uint8 NCHW batches (C = 3, or one channel per band of a band encoder) and
    returns L2-normalised float32 embeddings.

    CPU: channels_last, inference mode, all cores. CUDA: the same plus mixed precision (fp16
    autocast) and non-blocking copies from pinned memory; cuDNN's heuristics, not autotuning.
    """

    def __init__(self, encoder, device: str = "auto", threads: int | None = None):
        import torch

        self.device = torch.device(resolve_device(device))
        self.cuda = self.device.type == "cuda"
        if not self.cuda:
            torch.set_num_threads(threads or cpu_threads())
        # No cudnn.benchmark: it re-tunes every conv for each new batch size (3-9 s per size for
        # lite0 on an H100; partial batches from each decode worker bring several sizes per run)
        # and is no faster afterwards (15.3k img/s either way at batch 128).
        self.model = encoder.build().to(self.device).eval().to(memory_format=torch.channels_last)
        scale = 255.0
        self.mean = torch.tensor(encoder.mean, device=self.device).view(1, -1, 1, 1) * scale
        self.std = torch.tensor(encoder.std, device=self.device).view(1, -1, 1, 1) * scale
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


class OnnxRunner:
    """CPU inference through ONNX Runtime: the same network, exported once and cached on disk.

    Normalisation, pooling and L2 normalisation are part of the exported graph, so the runner
    takes the same uint8 NCHW batches as ``ModelRunner`` and returns the same vectors (max abs
    difference about 1e-5). On a 2-core CPU it is 2-3x faster than eager torch.
    """

    def __init__(self, encoder, onnx_path, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or cpu_threads()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between batches: the decode workers need those cycles
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.dim = encoder.dim

    def __call__(self, batch_uint8) -> np.ndarray:
        x = batch_uint8.numpy() if hasattr(batch_uint8, "numpy") else np.asarray(batch_uint8)
        return self.session.run(None, {self.input: np.ascontiguousarray(x, dtype=np.uint8)})[0]


def export_onnx(encoder, path) -> None:
    """Export encoder + normalisation + L2 norm to ONNX (uint8 NCHW in, unit vectors out), atomically."""
    import torch
    import torch.nn.functional as F

    class Wrapped(torch.nn.Module):
        def __init__(self, model, mean, std):
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255.0)
            self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255.0)

        def forward(self, x):
            feats = self.model((x.float() - self.mean) / self.std).flatten(1)
            return F.normalize(feats, dim=1)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = Wrapped(encoder.build().eval(), encoder.mean, encoder.std).eval()
    size = encoder.input_size
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(2, len(encoder.mean), size, size, dtype=torch.uint8),), str(tmp), dynamo=False,
                          input_names=["pixels"], output_names=["embedding"], opset_version=17,
                          dynamic_axes={"pixels": {0: "batch"}, "embedding": {0: "batch"}})
    os.replace(tmp, path)


def make_runner(encoder, device: str = "auto", backend: str = "auto", cache_dir=None, threads: int | None = None):
    """The fastest available runner: ONNX Runtime on CPU (exported once into ``cache_dir``, or
    ``$AGCURATE_ONNX_CACHE``), torch
    otherwise (CUDA, ``backend='torch'``, or when export / onnxruntime is unavailable)."""
    dev = resolve_device(device)
    backend = (backend or "auto").lower()
    if backend not in ("auto", "torch", "onnx"):
        raise UsageError(f"unknown backend {backend!r}: use auto, torch or onnx")
    if backend == "onnx" and dev != "cpu":
        raise UsageError("--backend onnx runs on the CPU only; use --device cpu, or --backend torch on CUDA")
    if dev == "cpu" and backend in ("auto", "onnx") and cache_dir is not None:
        onnx_path = Path(os.environ.get("AGCURATE_ONNX_CACHE") or cache_dir) / f"{encoder.slug}.onnx"
        try:
            if not onnx_path.exists():
                export_onnx(encoder, onnx_path)
            return OnnxRunner(encoder, onnx_path, threads)
        except Exception as exc:  # noqa: BLE001 - any export/runtime failure falls back to torch
            if backend == "onnx":
                raise AgcurateError(f"ONNX Runtime backend unavailable for {encoder.name}: {exc}") from exc
    return ModelRunner(encoder, dev, threads)
