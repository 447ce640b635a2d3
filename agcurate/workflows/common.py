"""What every workflow shares: option checks that raise ``UsageError`` and the embedding step."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..errors import UsageError


def check_choice(flag: str, value: str, choices: Sequence[str]) -> None:
    """``UsageError`` naming ``flag`` and the accepted values when ``value`` is not one of them."""
    if value not in choices:
        raise UsageError(f"{flag} {value!r} is not one of {', '.join(choices)}")


def check_range(flag: str, value: float | None, low: float | None = None, high: float | None = None) -> None:
    """``UsageError`` when ``value`` is given and outside ``[low, high]`` (NaN included)."""
    if value is None:
        return
    if (low is not None and not value >= low) or (high is not None and not value <= high):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise UsageError(f"{flag} must lie in [{lo}, {hi}], not {value}")


def check_exists(flag: str, paths: Iterable[str | os.PathLike] | None) -> None:
    """``UsageError`` for the first of ``paths`` that does not exist (before anything is embedded)."""
    for p in paths or ():
        if not Path(p).expanduser().exists():
            raise UsageError(f"{flag}: {p} does not exist")


def embed_input(paths, config, *, progress: bool | None = None, remember: bool = True,
                on_embedded: Callable | None = None, **kwargs):
    """``embed(paths)`` with ``config``, then ``on_embedded(emb)`` (the CLI prints a line there)."""
    from ..embedding import embed

    emb = embed(None if paths is None else list(paths), config=config, progress=progress, remember=remember,
                **kwargs)
    if on_embedded is not None:
        on_embedded(emb)
    return emb
