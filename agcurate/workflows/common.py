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
    """``UsageError`` for the first of ``paths`` that does not exist (before anything is embedded);
    a URL is looked up when it is listed (a missing one is reported there)."""
    from ..sources.remote import is_url

    for p in paths or ():
        if not is_url(p) and not Path(p).expanduser().exists():
            raise UsageError(f"{flag}: {p} does not exist")


def check_local_move(move_to, paths) -> None:
    """``UsageError`` when files would be moved to or from a URL (only local files are moved)."""
    from ..sources.remote import is_url

    if move_to is None:
        return
    remote = [str(p) for p in [move_to, *(paths or ())] if is_url(p)]
    if remote:
        raise UsageError(f"--move-to moves files on local disks only, not {remote[0]}: list the copies with "
                         "--out and move them with the object store's own tools")


def embed_input(paths, config, *, progress: bool | None = None, remember: bool = True,
                on_embedded: Callable | None = None, neighbor_index: bool = False, **kwargs):
    """``embed(paths)`` with ``config``, then ``on_embedded(emb)`` (the CLI prints a line there).

    ``neighbor_index``: the command runs kNN over all of these vectors (dedup, search, outliers), so
    a large collection gets the store's persistent ANN index attached (built or brought up to date);
    other commands skip that work."""
    from ..embedding import embed

    emb = embed(None if paths is None else list(paths), config=config, progress=progress, remember=remember,
                **kwargs)
    if neighbor_index:
        from .neighbor_index import attach_store_index

        attach_store_index(emb)
    if on_embedded is not None:
        on_embedded(emb)
    return emb


def output_record(command: str, emb, **extra) -> dict:
    """What ``outputs.json`` says about files a command made from ``emb``: the collection (its resolved
    input paths, item count and item options) and the encoder. The cluster report compares it with
    its own to merge only side files of the same collection and encoder."""
    from dataclasses import asdict

    return {"command": command, "inputs": [str(p) for p in emb.inputs], "encoder": emb.encoder.name,
            "encoder_id": emb.encoder.id, "items": len(emb),
            "source_options": asdict(emb.source_options) if emb.source_options is not None else {}, **extra}


def record_outputs(out: str | os.PathLike, written: Iterable[str | os.PathLike | None], record: dict) -> None:
    """Record ``record`` in ``out/outputs.json`` for each written file (paths under ``out``; None skipped)."""
    from ..report.outputs import record_outputs as record_in_manifest

    out = Path(out)
    names = []
    for p in written:
        if p is None:
            continue
        p = Path(p)
        try:
            names.append(p.relative_to(out).as_posix() + ("/" if p.is_dir() else ""))
        except ValueError:
            names.append(p.name)
    if names:
        record_in_manifest(out, names, record)
