"""Pieces every command shares: option types, error handling, the embedding step and printing."""

from __future__ import annotations

import functools
import inspect
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..encoders import DEFAULT_MODEL
from ..errors import AgcurateError

DEFAULT_OUT = Path("agcurate-out")


class _State:
    debug = bool(os.environ.get("AGCURATE_DEBUG"))


STATE = _State()

PathsArg = Annotated[  # str, not Path: a URL (s3://bucket/photos) must keep its double slash
    Optional[list[str]],
    typer.Argument(help="Image files or folders (recursive), or URLs fsspec opens (s3://..., gs://...). "
                        "Omit to reuse the last `agcurate embed` collection.",
                   show_default=False),
]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Encoder: lite0, lite0-ml, timm:NAME, torchvision:NAME or file:CHECKPOINT.")]
WeightsOpt = Annotated[Optional[Path], typer.Option("--weights", help="Weights file for a timm:/torchvision: model (no download).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Images per model call (default 32 on CPU, 128 on CUDA).")]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", min=0, help="Decode worker processes (default: up to 4 on CPU, 8 on CUDA; 0 = decode in-process).")]
ImageSizeOpt = Annotated[Optional[int], typer.Option("--image-size", min=16, help="Encoder input size in pixels (default: the model's).")]
StoreOpt = Annotated[Optional[str], typer.Option("--store", envvar="AGCURATE_STORE", help="Embedding store folder or URL, e.g. s3://bucket/agcurate (default ~/.cache/agcurate).")]
BackendOpt = Annotated[str, typer.Option("--backend", help="auto (ONNX Runtime on CPU, torch on CUDA), torch or onnx.")]
FpsOpt = Annotated[Optional[float], typer.Option(
    "--fps", min=0.0, help="Video frames sampled per second of video (default 2; 0 = every frame).")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for CSV and HTML outputs.")]
TileOpt = Annotated[Optional[int], typer.Option("--tile", min=8, help="Cut images and rasters into SIZE x SIZE tiles, each its own item.")]
StrideOpt = Annotated[Optional[int], typer.Option("--stride", min=1, help="Step between tiles in pixels (default: the tile size; smaller overlaps).")]
BandsOpt = Annotated[Optional[str], typer.Option("--bands", help="Raster bands to show the encoder, by name or 1-based index: B04,B03,B02 or 3,2,1 (default: true colour); all (or 4 or more bands) gives the encoder every band.")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for the model (default: all cores; $AGCURATE_THREADS).")]
EngineOpt = Annotated[str, typer.Option("--engine", help="Where encoding runs: local (this machine) or ray (Ray Data: decode tasks, encoder actors; pip install 'agcurate[ray]').")]
AddressOpt = Annotated[Optional[str], typer.Option("--address", help="Ray cluster to use with --engine ray (e.g. ray://HEAD:10001 or auto; default: a local Ray).")]
DecodeOpt = Annotated[str, typer.Option("--decode", help="Where JPEGs are decoded: auto (on the GPU when the model runs on CUDA), cpu (decode workers) or gpu (torchvision/nvjpeg; needs CUDA).")]
StretchOpt = Annotated[Optional[str], typer.Option("--stretch", help="Clip range LO,HI that scales raster values to 8 bits (default: 0,3000 for 16-bit, 0,0.3 for float).")]


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def command(app: typer.Typer, name: str | None = None, **kwargs):
    """Register a command whose library errors become one line on stderr and an exit code."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kw):
            from rich.markup import escape

            try:
                return fn(*args, **kw)
            except AgcurateError as exc:
                if STATE.debug:
                    raise
                console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
                raise typer.Exit(exc.exit_code) from None
            except OSError as exc:  # a disk, permission or vanished-file failure while working
                if STATE.debug:
                    raise
                console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                console(stderr=True).print("interrupted: finished chunks are kept in the store")
                raise typer.Exit(130) from None

        app.command(name, **kwargs)(wrapper)
        return fn

    return deco


_MODEL_FLAG = (("model", ModelOpt, DEFAULT_MODEL),)
_EMBED_FLAGS = (("weights", WeightsOpt, None), ("device", DeviceOpt, "auto"), ("backend", BackendOpt, "auto"),
                ("batch_size", BatchOpt, None), ("workers", WorkersOpt, None), ("image_size", ImageSizeOpt, None),
                ("tile", TileOpt, None), ("stride", StrideOpt, None), ("bands", BandsOpt, None),
                ("stretch", StretchOpt, None), ("fps", FpsOpt, None), ("store", StoreOpt, None),
                ("threads", ThreadsOpt, None), ("engine", EngineOpt, "local"), ("address", AddressOpt, None),
                ("decode", DecodeOpt, "auto"))


def embed_options(model: bool = True):
    """Give a command the embedding flags every embedding command shares (``--model`` ...
    ``--threads``); the command receives them as one validated ``config: EmbedConfig``. With
    ``model=False`` the command declares its own ``--model`` (``probe`` takes several)."""
    flags = (_MODEL_FLAG if model else ()) + _EMBED_FLAGS

    def deco(fn):
        sig = inspect.signature(fn, eval_str=True)  # typer needs the Annotated objects, not strings
        own = [p for p in sig.parameters.values() if p.name != "config"]
        extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
                 for name, ann, default in flags]

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            from ..embedding.config import EmbedConfig

            shared = {name: kwargs.pop(name) for name, _, _ in flags if name in kwargs}
            return fn(*args, config=EmbedConfig(**shared), **kwargs)

        wrapper.__signature__ = sig.replace(parameters=own + extra)
        wrapper.__annotations__ = {**{p.name: p.annotation for p in own}, **{name: ann for name, ann, _ in flags}}
        return wrapper

    return deco


def embedded_note(emb, with_model: bool = False) -> None:
    """One line on stderr about the embedding step (and the first skipped files)."""
    from ..report.html import count

    note = console(stderr=True)
    s = emb.stats
    if with_model:
        note.print(f"{count(len(emb), 'item')} with {emb.encoder.name} ({s.encoded} newly encoded, "
                   f"{s.cached} from cache, {s.skipped} skipped)")
    else:
        note.print(f"{count(len(emb), 'item')} ({s.encoded} newly encoded, {s.cached} from cache, "
                   f"{s.skipped} skipped) with {emb.encoder.name}")
    print_skipped(emb, note, limit=5)


def key_value_table(title: str, rows: list[tuple[str, str]]):
    """A two-column rich table (bold label, right-aligned value) for a command's summary."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in rows:
        table.add_row(label, value)
    return table


def common_folder(inputs) -> str | None:
    """The deepest folder holding every input (a file counts as its folder); None when that is the
    file-system root or the inputs share nothing. Tables show paths relative to it
    (``items.display_path``): the part that tells files apart, not a prefix every row shares."""
    from ..sources.remote import is_url

    inputs = [str(p) for p in inputs or ()]
    if inputs and all(is_url(p) for p in inputs):
        return url_folder(inputs)
    folders = [p if Path(p).is_dir() else os.path.dirname(p) for p in inputs]
    folders = [f for f in folders if f]
    if not folders:
        return None
    try:
        base = os.path.commonpath(folders)
    except ValueError:  # relative and absolute mixed, or other drives
        return None
    return base if base and Path(base).parent != Path(base) else None


def url_folder(urls) -> str | None:
    """``common_folder`` of URLs: the longest shared run of whole path parts, with the scheme (a URL
    whose name has a suffix counts as a file, the rest as folders); None for mixed schemes."""
    import posixpath

    schemes = {u.split("://", 1)[0] for u in urls}
    if len(schemes) != 1:
        return None
    rests = [u.split("://", 1)[1].rstrip("/") for u in urls]
    folders = [posixpath.dirname(r) if posixpath.splitext(r)[1] else r for r in rests]
    base = posixpath.commonpath(folders) if all(folders) else ""
    return f"{schemes.pop()}://{base}" if base else None


SHOWN_WINDOWS = 6  # windows / frames listed on one skipped line


def print_skipped(emb, out, limit: int = 10) -> None:
    """Print what was skipped: one line per file and reason, the tiles or frames of a file skipped
    for one reason (no-data tiles...) on a single line with their windows, at most ``limit`` lines."""
    if not emb.skipped:
        return
    from rich.markup import escape

    groups = group_skipped(emb.skipped)
    for path, reason, kind, where in groups[:limit]:
        out.print(f"  skipped {escape(path)}{escape(_where_list(kind, where))}: {escape(reason)}")
    rest = sum(max(len(where), 1) for _, _, _, where in groups[limit:])
    if rest:
        out.print(f"  ... and {rest} more")
    if emb.store_dir is not None:
        out.print(f"  full list: {emb.store_dir / 'skipped.csv'}")


def group_skipped(skipped) -> list[tuple[str, str, str, list[str]]]:
    """``(path, reason, kind, where)`` per file, reason and kind (``tile``, ``frame`` or ``""`` for a
    whole file), in first-seen order; ``where`` lists the windows (``x,y,w,h``) or frame numbers."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for s in skipped:
        kind, where = _where(s.path, s.key)
        groups.setdefault((s.path, s.reason, kind), [])
        if where:
            groups[(s.path, s.reason, kind)].append(where)
    return [(p, r, k, w) for (p, r, k), w in groups.items()]


def _where(path: str, key: str) -> tuple[str, str]:
    """``("tile", "x,y,w,h")``, ``("frame", "N")`` or ``("", "")`` from an item key."""
    tail = key[len(path):] if key.startswith(path) else ""
    for part in tail.split("#"):
        if part.startswith("window="):
            return "tile", part[len("window="):]
        if part.startswith("frame="):
            return "frame", part[len("frame="):]
    return "", ""


def _where_list(kind: str, where: list[str]) -> str:
    if not kind or not where:
        return ""
    if len(where) == 1:
        return f", {kind} {where[0]}"
    shown = " · ".join(where[:SHOWN_WINDOWS])
    more = f" and {len(where) - SHOWN_WINDOWS} more" if len(where) > SHOWN_WINDOWS else ""
    return f", {len(where)} {kind}s ({shown}{more})"
