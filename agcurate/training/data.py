"""Training data: items (or positive pairs of items) decoded and augmented in DataLoader workers."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import AgcurateError, NoUsableInputError
from ..items import Item
from ..sources import Skipped, SourceOptions, discover, get_sources, read_group
from .augment import Views, to_view_input


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """Rows of two image paths (relative ones are taken from the CSV's folder); a header is skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise AgcurateError(f"cannot read pairs file {path}: {exc.strerror or exc}") from exc
    base = path.resolve().parent
    pairs: list[tuple[str, str]] = []
    for n, row in enumerate(csv.reader(text.splitlines())):
        cells = [c.strip() for c in row if c.strip()]
        if not cells:
            continue
        if len(cells) < 2:
            raise AgcurateError(f"{path}, line {n + 1}: expected two paths, got {len(cells)} column(s)")
        a, b = (Path(c).expanduser() for c in cells[:2])
        a, b = (p if p.is_absolute() else base / p for p in (a, b))
        if n == 0 and not a.exists() and not b.exists():
            continue  # a header line
        pairs.append((str(a.resolve()), str(b.resolve())))
    if not pairs:
        raise NoUsableInputError(f"{path} lists no pairs of paths")
    return pairs


def pair_items(pairs: Sequence[tuple[str, str]], opts: SourceOptions) -> tuple[list[tuple[Item, Item]], list[Skipped]]:
    """Resolve each pair's two files to one item each (the first item of a video or raster)."""
    found = discover(sorted({p for pair in pairs for p in pair}), opts)
    first: dict[str, Item] = {}
    for it in found.items:
        first.setdefault(it.path, it)
    skipped = list(found.skipped)
    out = []
    for a, b in pairs:
        if a in first and b in first:
            out.append((first[a], first[b]))
        else:
            missing = a if a not in first else b
            if not any(s.path == missing for s in skipped):
                skipped.append(Skipped(missing, "not a readable image (pair dropped)"))
    return out, skipped


class ViewsDataset(torch.utils.data.Dataset):
    """Each entry is one item, or a pair of items of the same object; returns its list of views.

    Pixels come through the same sources as ``embed`` (``read_group``), so anything that can be
    embedded can be trained on. A multi-band source may hand its bands in ``Decoded.bands``; they
    are used instead of the RGB rendering when present.
    """

    def __init__(self, entries: Sequence[tuple[Item, ...]], opts: SourceOptions, views: Views, size: int):
        self.entries = list(entries)
        self.opts = opts
        self.views = views
        self.size = size
        self._sources = None

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int):
        if self._sources is None:
            self._sources = get_sources(min_side=self.size)
        images = []
        for item in self.entries[i]:
            pixels, error = decode_pixels(item, self.opts, self._sources, 2 * self.size)
            if pixels is None:
                return {"views": None, "error": (item.path, error)}
            images.append(to_view_input(pixels))
        return {"views": self.views(images), "error": None}


def decode_pixels(item: Item, opts: SourceOptions, sources, max_short_side: int):
    """(pixels H x W x C, None) or (None, reason); large images shrink to ``max_short_side``."""
    try:
        dec = next(iter(read_group([item], opts, sources)))
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop training
        return None, f"cannot decode: {exc}"
    pixels = getattr(dec, "bands", None)
    if pixels is None:
        pixels = dec.rgb
    if pixels is None:
        return None, dec.error or "cannot decode"
    h, w = pixels.shape[:2]
    short = min(h, w)
    if short > max_short_side:
        from ..encoders.bands import resize_bands

        f = max_short_side / short
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        pixels = resize_bands(pixels, (max(1, round(w * f)), max(1, round(h * f))))
    return pixels, None


def collate_views(batch: list[dict]) -> dict:
    """Stack each view over the batch; entries that failed to decode are listed, not stacked."""
    good = [b["views"] for b in batch if b["views"] is not None]
    failed = [b["error"] for b in batch if b["views"] is None]
    views = [torch.stack([g[k] for g in good]) for k in range(len(good[0]))] if good else []
    return {"views": views, "n": len(good), "failed": failed}


def seed_worker(_worker_id: int) -> None:
    """Decode workers: one thread each, numpy/random seeded from torch (lightly draws from numpy)."""
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
