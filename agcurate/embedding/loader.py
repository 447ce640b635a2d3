"""The decode side of embedding: a torch IterableDataset run in DataLoader worker processes.

Each worker takes whole groups (one file, all its frames or tiles), decodes them once, resizes
to the encoder's input and computes the cheap pixel signals, so the model never waits on JPEG
decode. Imported only when something is encoded (it imports torch).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
import os
from collections.abc import Sequence

import numpy as np
import torch

from ..items import Item
from .signals import pixel_hash, pixel_signals, resize_square
from ..sources import SourceOptions, get_sources, read_group


def item_row(item: Item) -> dict:
    """Store columns that describe an item (signals and hashes are added after decoding)."""
    x, y, w, h = item.window if item.window is not None else (-1, -1, -1, -1)
    return {"key": item.key, "path": item.path, "kind": item.kind, "frame": item.frame,
            "time_s": item.time_s, "x": x, "y": y, "w": w, "h": h, "variant": item.variant,
            "fingerprint": item.fingerprint, "meta": json.dumps(item.meta) if item.meta else ""}


def collate_rows(batch: list[dict]) -> dict:
    """Stack a batch's pixels into one uint8 tensor (one shared-memory transfer per batch, not per
    item); failed items travel as rows with their error and are reported, not stacked."""
    good = [r for r in batch if r["pixels"] is not None]
    return {
        "pixels": torch.stack([r["pixels"] for r in good]) if good else None,
        "rows": [r["row"] for r in good],
        "failed": [(r["row"], r["error"]) for r in batch if r["pixels"] is None],
        "n": len(batch),
    }


def opencv_threads(n: int) -> int:
    """Set OpenCV's thread count and return the previous one (1 before forking decode workers)."""
    import cv2

    prev = cv2.getNumThreads()
    cv2.setNumThreads(n)
    return prev


@contextmanager
def fork_safe_opencv(n_workers: int):
    """While forked DataLoader workers may start, keep OpenCV single-threaded in this process.

    OpenCV's thread pool does not survive ``fork()``: a worker forked after the parent used it
    hangs in its first OpenCV call. Restores the previous thread count afterwards.
    """
    prev = opencv_threads(1) if n_workers else None
    try:
        yield
    finally:
        if prev is not None:
            opencv_threads(prev)


def worker_init(_worker_id: int, nice: int = 0) -> None:
    """One thread per decode worker, at lower priority: the cores belong to the model.

    On CPU the workers run at ``nice`` 19, so they decode while the model's threads wait between
    batches instead of preempting one of them (a descheduled intra-op thread stalls the others):
    measured on 2 cores, end-to-end rose from 0.68 to 0.80 of model-only throughput.
    ``$AGCURATE_WORKER_NICE`` overrides.
    """
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    nice = int(os.environ.get("AGCURATE_WORKER_NICE", nice))
    if nice > 0:
        try:
            os.nice(nice)
        except OSError:
            pass


class DecodeDataset(torch.utils.data.IterableDataset):
    """Decoded, resized items as uint8 CHW tensors with their store row; groups split across workers."""

    def __init__(self, items: Sequence[Item], opts: SourceOptions, size: int, bands: Sequence[str] | None = None):
        super().__init__()
        self.items = list(items)
        self.opts = opts
        self.size = size
        self.bands = list(bands) if bands else None  # a band encoder: its pixels are the raster bands
        groups: dict[str, list[int]] = {}
        for i, it in enumerate(self.items):
            groups.setdefault(it.group, []).append(i)
        self.groups = list(groups.values())

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, n = (info.id, info.num_workers) if info is not None else (0, 1)
        sources = get_sources(min_side=self.size)
        for g in range(wid, len(self.groups), n):
            members = [self.items[i] for i in self.groups[g]]
            by_key = {it.key: it for it in members}
            for dec in read_group(members, self.opts, sources):
                row = item_row(by_key.get(dec.item.key, dec.item))
                if dec.rgb is None:
                    yield {"row": row, "pixels": None, "error": dec.error or "cannot decode"}
                    continue
                try:
                    yield {"row": row, "pixels": self._prepare(dec, row), "error": None}
                except Exception as exc:  # noqa: BLE001 - one broken item must not stop the run
                    yield {"row": row, "pixels": None, "error": f"cannot prepare pixels: {exc}"}

    def _prepare(self, dec, row: dict) -> torch.Tensor:
        small = resize_square(dec.rgb, self.size)
        row.update(pixel_signals(dec.rgb, small, dec.nodata))
        row.update({k if k.startswith("sig_") else f"sig_{k}": float(v) for k, v in dec.signals.items()})
        row["pixel_hash"] = pixel_hash(dec.rgb)
        row["content_hash"] = dec.content_hash
        w, h = dec.size if dec.size else (dec.rgb.shape[1], dec.rgb.shape[0])
        row["width"], row["height"] = int(w), int(h)
        if self.bands:
            small = band_pixels(dec, self.bands, self.size)
        return torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1)))


def band_pixels(dec, bands: Sequence[str], size: int) -> np.ndarray:
    """A band encoder's input: the item's selected bands resized to ``size`` (H, W, C uint8)."""
    from ..encoders.bands import resize_bands

    px = getattr(dec, "bands", None)
    if px is None or px.shape[2] != len(bands):
        have = f"{px.shape[2]} bands" if px is not None else "a picture, no raster bands"
        raise ValueError(f"the encoder takes {len(bands)} bands ({','.join(bands)}), this item gives {have}")
    return resize_bands(px, size)
