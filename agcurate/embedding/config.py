"""``EmbedConfig``: every setting that decides how a collection is embedded, checked once.

Built from CLI flags or keyword arguments, validated on construction (cheap checks only: names,
ranges and syntax, no file is read and no library is loaded), then passed down unchanged to
discovery, the runners and the store. Every command that embeds takes the same settings.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, fields
from pathlib import Path

from ..encoders import DEFAULT_MODEL
from ..errors import UsageError
from ..sources.base import SourceOptions, at_least

DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("auto", "torch", "onnx")
ENGINES = ("local", "ray")
DECODES = ("auto", "cpu", "gpu")  # where JPEGs are decoded (``embedding.gpu_decode``)


@dataclass(frozen=True)
class EmbedConfig:
    """How to embed: encoder, where it runs, how inputs become items, where vectors are kept.

    ``None`` means "the default for this machine or this input": batch 32 on CPU / 128 on CUDA,
    decode workers up to 4 / 8, the model's input size, no tiling, true-colour bands, the fixed
    stretch of the data type, 2 video samples per second, ``~/.cache/agcurate``, all cores.
    """

    model: str = DEFAULT_MODEL
    weights: Path | None = None
    device: str = "auto"
    backend: str = "auto"
    batch_size: int | None = None
    workers: int | None = None
    image_size: int | None = None
    tile: int | None = None
    stride: int | None = None
    bands: str | None = None
    stretch: str | None = None
    fps: float | None = None
    store: Path | None = None
    threads: int | None = None
    engine: str = "local"         # local: this process and its decode workers; ray: Ray Data
    address: str | None = None    # the Ray cluster (--engine ray); None: a running or a local one
    decode: str = "auto"          # JPEG decode: gpu (on CUDA: nvjpeg via torchvision), cpu (workers), auto

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise in place once, then never again
        set_(self, "device", (self.device or "auto").strip().lower())
        set_(self, "backend", (self.backend or "auto").strip().lower())
        set_(self, "engine", (self.engine or "local").strip().lower())
        set_(self, "decode", (self.decode or "auto").strip().lower())
        if self.weights is not None:
            set_(self, "weights", Path(self.weights))
        if self.store is not None:
            from .location import store_path

            set_(self, "store", store_path(self.store))  # a URL stays a URL
        self.validate()

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def make(cls, config: EmbedConfig | None = None, **options) -> EmbedConfig:
        """``config`` (or the defaults) with the keyword ``options`` that are not None put in.

        An unknown option name is a usage error, so a typo does not silently do nothing.
        """
        return with_options(config if config is not None else cls(), "embedding", **options)

    # -- validation ----------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``UsageError`` naming the option and the accepted values when a setting is invalid."""
        if not self.model or not str(self.model).strip():
            raise UsageError("--model is empty; use lite0, lite0-ml, timm:NAME, torchvision:NAME or file:CHECKPOINT")
        check_device(self.device)
        if self.backend not in BACKENDS:
            raise UsageError(f"--backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.backend == "onnx" and self.device.startswith("cuda"):
            raise UsageError("--backend onnx runs on the CPU only; use --device cpu, or --backend torch on CUDA")
        if self.engine not in ENGINES:
            raise UsageError(f"--engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.address and self.engine != "ray":
            raise UsageError("--address names a Ray cluster; give it with --engine ray")
        if self.decode not in DECODES:
            raise UsageError(f"--decode {self.decode!r} is not one of {', '.join(DECODES)}")
        if self.decode == "gpu" and (self.device == "cpu" or self.engine != "local"):
            raise UsageError("--decode gpu decodes JPEGs on a CUDA device with --engine local; "
                             f"not with --device {self.device} --engine {self.engine}: use --decode cpu or auto")
        at_least("--batch-size", self.batch_size, 1)
        at_least("--workers", self.workers, 0)
        at_least("--image-size", self.image_size, 16)
        at_least("--threads", self.threads, 1)
        if self.weights is not None and not self.weights.is_file():
            raise UsageError(f"--weights {self.weights}: no such file")
        SourceOptions(tile=self.tile, stride=self.stride, bands=self.bands, stretch=self.stretch, fps=self.fps)

    # -- what the layers below need ------------------------------------------------------------------
    def source_options(self, **extra):
        """``SourceOptions`` of the tile/band/stretch/fps settings; None when none is set (and no
        ``extra``), so a run without PATH reuses the options of the last ``embed``."""
        own = {"tile": self.tile, "stride": self.stride, "bands": self.bands, "stretch": self.stretch,
               "fps": self.fps}
        if all(v is None for v in own.values()) and not extra:
            return None
        return SourceOptions(**own, **extra)

    def store_root(self) -> Path:
        """The store folder: ``store``, else ``$AGCURATE_STORE``, else the user's cache folder."""
        from .store import resolve_store_root

        return resolve_store_root(self.store)

    def onnx_cache(self) -> Path:
        """Where exported ONNX graphs are kept: ``<store>/onnx``, or a local folder for a store behind
        a URL (``$AGCURATE_ONNX_CACHE`` overrides it in the runner)."""
        from .location import local_cache

        return local_cache(self.store_root()) / "onnx"

    def encoder(self):
        """The encoder these settings name (resolved, not built: no weights are loaded)."""
        from ..encoders import get_encoder

        return get_encoder(self.model, weights=str(self.weights) if self.weights else None,
                           image_size=self.image_size)


def check_device(device: str) -> None:
    """``UsageError`` unless ``device`` (normalised: stripped, lower case) is auto, cpu, cuda or cuda:N."""
    if device not in DEVICES and not re.fullmatch(r"cuda:\d+", device):
        raise UsageError(f"--device {device!r} is not one of {', '.join(DEVICES)} (or cuda:N)")


def with_options(base, what: str, **options):
    """The dataclass ``base`` with the keyword ``options`` that are not None put in (``replace``, so
    its checks run again). An unknown name is a usage error, so a typo does not silently do nothing."""
    names = {f.name for f in fields(base)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise UsageError(f"unknown {what} option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(names))}")
    given = {k: v for k, v in options.items() if v is not None}
    return dataclasses.replace(base, **given) if given else base
