"""The decode side of embedding: a torch IterableDataset run in DataLoader worker processes.

Each worker takes whole groups (one file, all its frames or tiles), decodes them once, resizes
to the encoder's input and computes the cheap pixel signals, so the model never waits on JPEG
decode. Imported only when something is encoded (it imports torch).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
import os
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..items import Item
from ..system import opencv_threads
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
    item); failed items travel as rows with their error and are reported, not stacked.

    With GPU decode, JPEG files travel as bytes (``jpegs``: (position in ``rows``, ``JpegBlob``)),
    their bytes joined into one tensor for the same single transfer; ``cpu_at`` gives the positions
    of the decoded ``pixels`` in ``rows``, which keep the batch's order.
    """
    good = [r for r in batch if r["pixels"] is not None or r.get("jpeg") is not None]
    decoded = [r for r in good if r["pixels"] is not None]
    jpegs = [(i, r["jpeg"]) for i, r in enumerate(good) if r["pixels"] is None]
    if jpegs:
        joined = torch.from_numpy(np.concatenate([np.asarray(b.data) for _, b in jpegs]))
        offset = 0
        for _, b in jpegs:
            n = len(b.data)
            b.data = joined[offset:offset + n]
            offset += n
    return {
        "pixels": torch.stack([r["pixels"] for r in decoded]) if decoded else None,
        "rows": [r["row"] for r in good],
        "cpu_at": [i for i, r in enumerate(good) if r["pixels"] is not None],
        "jpegs": jpegs,
        "failed": [(r["row"], r["error"]) for r in batch if r["pixels"] is None and r.get("jpeg") is None],
        "n": len(batch),
    }


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
    """Decoded, resized items as uint8 CHW tensors with their store row; groups split across workers.

    With ``jpeg_bytes`` (GPU decode) a plain JPEG photo is not decoded here: it is yielded as a
    ``JpegBlob`` (its bytes and header) for the device to decode; everything else is decoded as usual.
    """

    def __init__(self, items: Sequence[Item], opts: SourceOptions, size: int, bands: Sequence[str] | None = None,
                 jpeg_bytes: bool = False):
        super().__init__()
        self.items = list(items)
        self.opts = opts
        self.size = size
        self.bands = list(bands) if bands else None  # a band encoder: its pixels are the raster bands
        self.jpeg_bytes = jpeg_bytes and not self.bands
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
            if self.jpeg_bytes and len(members) == 1:
                from .gpu_decode import read_jpeg

                blob = read_jpeg(members[0], self.size)
                if blob is not None:
                    yield {"row": item_row(members[0]), "pixels": None, "jpeg": blob, "error": None}
                    continue
            by_key = {it.key: it for it in members}
            for dec in read_group(members, self.opts, sources):
                yield decoded_answer(dec, item_row(by_key.get(dec.item.key, dec.item)), self.size, self.bands)


def decoded_answer(dec, row: dict, size: int, bands: Sequence[str] | None = None) -> dict:
    """What a worker yields for one decoded item: its pixels and completed row, or its error."""
    if dec.rgb is None:
        return {"row": row, "pixels": None, "error": dec.error or "cannot decode"}
    try:
        return {"row": row, "pixels": prepare_pixels(dec, row, size, bands), "error": None}
    except Exception as exc:  # noqa: BLE001 - one broken item must not stop the run
        return {"row": row, "pixels": None, "error": f"cannot prepare pixels: {exc}"}


def prepare_pixels(dec, row: dict, size: int, bands: Sequence[str] | None = None) -> torch.Tensor:
    """Fill ``row`` with the item's signals, hashes and size; return the encoder input (uint8 CHW)."""
    small = resize_square(dec.rgb, size)
    describe_pixels(row, dec.rgb, small, dec.nodata, dec.signals)
    row["pixel_hash"] = pixel_hash(dec.rgb)
    row["content_hash"] = dec.content_hash
    w, h = dec.size if dec.size else (dec.rgb.shape[1], dec.rgb.shape[0])
    row["width"], row["height"] = int(w), int(h)
    if bands:
        small = band_pixels(dec, bands, size)
    return torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1)))


def describe_pixels(row: dict, rgb: np.ndarray, small: np.ndarray, nodata=None, signals=None) -> None:
    """Put the pixel signals of ``rgb`` (and its encoder-size copy ``small``) into ``row``."""
    row.update(pixel_signals(rgb, small, nodata))
    row.update({k if k.startswith("sig_") else f"sig_{k}": float(v) for k, v in (signals or {}).items()})


def describe_device_decoded(row: dict, quality: np.ndarray, small: np.ndarray, nodata_share: float) -> None:
    """The signals of a device-decoded JPEG, from host copies at quality and encoder size (HWC);
    the no-data share was measured on the device, on the image at the CPU path's decode scale."""
    describe_pixels(row, quality, small)
    row["nodata"] = float(nodata_share)


def cpu_fallback(size: int) -> Callable[[dict, object], dict]:
    """``fallback(row, blob)`` for ``BatchDecoder``: decode a JPEG the device refused with the CPU
    path's decoder, and answer as a decode worker would (the same pixels, row and error text)."""
    from ..errors import SourceError
    from ..sources.base import Decoded
    from ..sources.images import decode_image

    def fallback(row: dict, blob) -> dict:
        item = Item(path=row["path"])
        data = np.asarray(blob.data).tobytes()
        try:
            rgb, wh = decode_image(data, size)
        except SourceError as exc:
            return {"row": row, "pixels": None, "error": str(exc)}
        return decoded_answer(Decoded(item, rgb=rgb, size=wh, content_hash=blob.content_hash), row, size)

    return fallback


def band_pixels(dec, bands: Sequence[str], size: int) -> np.ndarray:
    """A band encoder's input: the item's selected bands resized to ``size`` (H, W, C uint8)."""
    from ..encoders.bands import resize_bands

    px = getattr(dec, "bands", None)
    if px is None or px.shape[2] != len(bands):
        have = f"{px.shape[2]} bands" if px is not None else "a picture, no raster bands"
        raise ValueError(f"the encoder takes {len(bands)} bands ({','.join(bands)}), this item gives {have}")
    return resize_bands(px, size)
