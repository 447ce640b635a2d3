"""agcurate: curate image, video and satellite collections with embeddings.

Importing the package is cheap; heavy libraries load when a function needs them.

>>> import agcurate
>>> emb = agcurate.embed(["examples/images"])          # doctest: +SKIP
>>> emb.vectors.shape, emb.items["path"][0]            # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import AgcurateError, NoUsableInputError  # noqa: E402  (cheap, no heavy imports)

__all__ = ["AgcurateError", "NoUsableInputError", "__version__", "embed", "get_encoder"]


def __getattr__(name: str):
    if name == "embed":
        from .embedding import embed

        return embed
    if name == "get_encoder":
        from .encoders import get_encoder

        return get_encoder
    raise AttributeError(f"module 'agcurate' has no attribute {name!r}")
