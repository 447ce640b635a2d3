"""agcurate: curate image, video and satellite collections with embeddings.

Importing the package is cheap; heavy libraries load when a function needs them. Every command
has a Python twin that returns the tables its CSVs hold:

>>> import agcurate
>>> emb = agcurate.embed(["examples/images"])                       # doctest: +SKIP
>>> agcurate.dedup(["examples/images"]).table                       # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import AgcurateError, NoUsableInputError, UsageError  # noqa: E402  (cheap, no heavy imports)

# public name -> (module, attribute), imported on first use
_LAZY = {
    "embed": ("agcurate.embedding.encode", "embed"),
    "EmbedConfig": ("agcurate.embedding.config", "EmbedConfig"),
    "Embeddings": ("agcurate.embedding.encode", "Embeddings"),
    "get_encoder": ("agcurate.encoders", "get_encoder"),
    "dedup": ("agcurate.workflows.dedup", "dedup"),
    "frames": ("agcurate.workflows.frames", "frames"),
    "outliers": ("agcurate.workflows.outliers", "outliers"),
    "cluster": ("agcurate.workflows.cluster", "cluster"),
    "search": ("agcurate.workflows.search", "search"),
    "probe": ("agcurate.workflows.probe", "probe"),
    "pretrain": ("agcurate.workflows.pretrain", "pretrain"),
    "PretrainConfig": ("agcurate.training.train", "PretrainConfig"),
}

__all__ = ["AgcurateError", "NoUsableInputError", "UsageError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'agcurate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
