"""JPEG decode on the model's device (``--decode gpu``): workers only read bytes, the GPU decodes.

On CUDA the model outruns the CPU decode workers by an order of magnitude (lite0 alone 13k img/s on
an H100, end to end 0.7-2k img/s with 8 workers). With GPU decode the workers read plain JPEG files
as bytes and parse their header (``read_jpeg``); the main process decodes each batch with
``torchvision.io.decode_jpeg(..., device=...)`` (nvjpeg on CUDA), turns it upright by its EXIF
orientation, resizes it on the device as the CPU path does (``resize_chw``) and measures the pixel
signals from small copies. Everything else (PNG, TIFF, CMYK or 12-bit JPEG, tiles, video frames,
photos above ``GPU_MAX_PIXELS``) is decoded by the CPU workers in the same run, and a JPEG the
device decoder refuses is decoded on the CPU: nothing is lost, and the vectors match the CPU
path's (cosine >= 0.999 on real photos, tests/test_gpu_decode.py).
Every function takes the device as a parameter, so tests run the whole path with ``device="cpu"``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from ..items import Item
from .config import DECODES
from .signals import QUALITY_SIDE

GPU_MAX_PIXELS = 48_000_000    # larger JPEGs go to the CPU, which decodes them at a reduced DCT scale
BATCH_PIXELS = 400_000_000     # decoded pixels per decode_jpeg call (1.2 GB of uint8 RGB on the device)
STRIPPED_MARKERS = frozenset(range(0xE0, 0xEE)) | {0xEF, 0xFE}  # APP0-13, APP15, COM: metadata only


@dataclass
class JpegBlob:
    """A JPEG file's bytes and what its header says, read by a decode worker."""

    data: object              # the file's bytes: a 1-D uint8 numpy array or torch tensor
    width: int                # as stored, before the EXIF orientation (the CPU path's ``width``)
    height: int
    orientation: int          # EXIF orientation 1-8 (1: upright)
    content_hash: str         # of the file's bytes, as the CPU path computes it
    pixel_hash: str           # of the coded image data and orientation (see ``coded_hash``)


# --- choosing the path ------------------------------------------------------------------------------

def resolve_decode(decode: str, device: str, *, bands: bool = False, engine: str = "local") -> str:
    """``cpu`` or ``gpu`` for a run on ``device`` (already resolved: ``cpu``, ``cuda``, ``cuda:N``).

    ``auto`` is ``gpu`` on CUDA when the device decoder works there, else ``cpu``. An explicit ``gpu``
    on a CPU device, with a band encoder, on the Ray engine or without a working device decoder is a
    ``UsageError``, raised before any file is read.
    """
    d = (decode or "auto").strip().lower()
    if d not in DECODES:
        raise UsageError(f"--decode {decode!r} is not one of {', '.join(DECODES)}")
    cuda = device.startswith("cuda")
    if d == "cpu" or (d == "auto" and (not cuda or bands or engine != "local")):
        return "cpu"
    if not cuda:
        raise UsageError(f"--decode gpu decodes JPEGs on CUDA, but the model runs on {device}; "
                         "use --device cuda, or --decode cpu/auto")
    if bands:
        raise UsageError("--decode gpu decodes JPEG photos; a band encoder reads raster bands: use --decode cpu")
    if engine != "local":
        raise UsageError("--decode gpu works with --engine local only")
    problem = device_decode_problem(device)
    if problem is None:
        return "gpu"
    if d == "gpu":
        raise UsageError(f"--decode gpu: torchvision cannot decode JPEGs on {device} ({problem}); use --decode cpu")
    return "cpu"


_PROBED: dict[str, str | None] = {}


def device_decode_problem(device: str) -> str | None:
    """Why ``decode_jpeg`` cannot decode on ``device`` (a tiny JPEG is tried once), or None when it can."""
    if device not in _PROBED:
        try:
            import torch
            from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

            with warnings.catch_warnings():  # torchvision 0.29 announces TorchCodec as its successor
                warnings.simplefilter("ignore")
                probe = encode_jpeg(torch.full((3, 16, 16), 128, dtype=torch.uint8))
                out = decode_jpeg([probe], mode=ImageReadMode.RGB, device=device)[0]
            _PROBED[device] = None if tuple(out.shape) == (3, 16, 16) else f"decoded shape {tuple(out.shape)}"
        except Exception as exc:  # noqa: BLE001 - a CPU-only build, no nvjpeg, an old torchvision
            _PROBED[device] = f"{type(exc).__name__}: {exc}"
    return _PROBED[device]


# --- the worker side: bytes and header --------------------------------------------------------------

def gpu_decodable(item: Item) -> bool:
    """Whether ``item`` is a whole still image (no tile window, no video frame, no band variant)."""
    return item.kind == "image" and item.window is None and item.frame < 0 and not item.variant


def read_jpeg(item: Item, size: int, max_pixels: int = GPU_MAX_PIXELS) -> JpegBlob | None:
    """The item's file as a ``JpegBlob`` when the device decoder should take it, else None.

    Taken: a whole still image whose bytes start as a JPEG (sniffed, whatever its extension), with an
    8-bit grey or YCbCr/RGB header of at most ``max_pixels`` pixels that ``resize_to`` resizes to
    ``size`` as OpenCV does (not: more pixels than ``size`` squared but one side shorter, where
    OpenCV's area filter turns into a plain interpolation). Anything else, and any error
    (unreadable file, damaged header, a decompression bomb), is None: the CPU path reads it again and
    decodes or reports it exactly as it always has.
    """
    from ..sources.images import open_image
    from ..sources.remote import is_url, read_bytes
    from ..sources.sniff import HEAD_BYTES, sniff

    if not gpu_decodable(item):
        return None
    try:
        if is_url(item.path):  # one request for the whole object
            data = bytearray(read_bytes(item.path))
            if sniff(bytes(data[:HEAD_BYTES])) != "jpeg":
                return None
        else:
            with open(item.path, "rb") as fh:
                if sniff(fh.read(HEAD_BYTES)) != "jpeg":
                    return None
                fh.seek(0)
                data = bytearray(fh.read())  # writable: torch takes it without a copy
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_image(io.BytesIO(data), len(data)) as img:  # header only; refuses bombs
                if img.format != "JPEG" or img.mode not in ("RGB", "L") or img.width * img.height > max_pixels:
                    return None
                width, height = img.size
                if not same_resize(width, height, size):
                    return None
                orientation = int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - the CPU path reads it again and says what is wrong
        return None
    orientation = orientation if 1 <= orientation <= 8 else 1
    return JpegBlob(np.frombuffer(data, dtype=np.uint8), width, height, orientation,
                    hashlib.blake2b(data, digest_size=16).hexdigest(), coded_hash(data, orientation))


def same_resize(width: int, height: int, size: int) -> bool:
    """Whether ``resize_to`` resizes this JPEG (after the CPU path's DCT scaling) to ``size`` as the
    CPU path does: both sides at least ``size`` (area filter) or fewer pixels than ``size`` squared
    (bicubic)."""
    k = draft_factor(width, height, size)
    w, h = -(-width // k), -(-height // k)
    return (w >= size and h >= size) or w * h < size * size


def coded_hash(data: bytes, orientation: int) -> str:
    """``pixel_hash`` of a device-decoded JPEG: a hash of what decides its pixels (frame header,
    tables, scans and the EXIF orientation) without the metadata segments (EXIF, XMP, ICC, IPTC,
    comments). Two files that differ only in metadata get the same hash, as their decoded pixels
    are the same; hashing the decoded pixels instead would copy every full-size image to the host."""
    h = hashlib.blake2b(digest_size=16)
    h.update(b"jpeg-coded:%d:" % orientation)
    i, n = 2, len(data)
    while i + 4 <= n and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: the entropy-coded data and the rest of the file
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
            continue
        end = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if marker not in STRIPPED_MARKERS:
            h.update(data[i:end])
        i = end
    h.update(data[i:])
    return h.hexdigest()


# --- the device side: decode, turn upright, resize --------------------------------------------------

def decode_jpegs(blobs: Sequence[JpegBlob], device: str, batch_pixels: int = BATCH_PIXELS) -> list:
    """Decode ``blobs`` on ``device`` to RGB uint8 CHW tensors, in order; None where the decoder
    refuses a file. Calls ``decode_jpeg`` on runs of at most ``batch_pixels`` pixels; a run that
    fails is decoded file by file, so one bad file costs only itself."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [b.data if isinstance(b.data, torch.Tensor) else torch.from_numpy(np.asarray(b.data)) for b in blobs]
    out: list = []
    for run in pixel_runs([b.width * b.height for b in blobs], batch_pixels):
        part = [tensors[i] for i in run]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out += list(decode_jpeg(part, mode=ImageReadMode.RGB, device=device))
            continue
        except Exception:  # noqa: BLE001 - find the file(s) the decoder refuses
            pass
        for t in part:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out.append(decode_jpeg([t], mode=ImageReadMode.RGB, device=device)[0])
            except Exception:  # noqa: BLE001 - the CPU decoder gets this one
                out.append(None)
    return [t if t is not None and t.ndim == 3 and t.shape[0] == 3 else None for t in out]


def pixel_runs(pixels: Sequence[int], budget: int) -> list[list[int]]:
    """Consecutive index runs whose pixel counts sum to at most ``budget`` (a larger item alone)."""
    runs: list[list[int]] = []
    total = 0
    for i, p in enumerate(pixels):
        if runs and total + p <= budget:
            runs[-1].append(i)
            total += p
        else:
            runs.append([i])
            total = p
    return runs


def orient(chw, orientation: int):
    """Turn a CHW tensor upright by its EXIF orientation, as ``PIL.ImageOps.exif_transpose`` does."""
    import torch

    if orientation == 2:
        return chw.flip(-1)
    if orientation == 3:
        return chw.flip(-1).flip(-2)
    if orientation == 4:
        return chw.flip(-2)
    if orientation == 5:
        return chw.transpose(-1, -2)
    if orientation == 6:
        return torch.rot90(chw, -1, dims=(-2, -1))
    if orientation == 7:
        return chw.transpose(-1, -2).flip(-1).flip(-2)
    if orientation == 8:
        return torch.rot90(chw, 1, dims=(-2, -1))
    return chw


def draft_factor(width: int, height: int, min_side: int) -> int:
    """The DCT scale (1, 2, 4 or 8) at which the CPU path decodes a ``width`` x ``height`` JPEG for an
    encoder of ``min_side`` pixels: ``decode_image`` asks Pillow's ``draft`` for the size that keeps
    the shorter side at least ``min_side``, and this is Pillow's choice for that request."""
    scale = min(width, height) / float(min_side)
    if scale < 2:
        return 1
    s = min(width // (width / scale), height // (height / scale))
    return next(k for k in (8, 4, 2, 1) if s >= k)


def draft_shrink(chw, k: int):
    """The full-size decode reduced as libjpeg's 1/``k`` DCT scaling does (mean of k x k blocks, the
    last ones partial; 0.25 grey levels from libjpeg's own), so the GPU path sees the pixels the CPU
    path sees."""
    import torch.nn.functional as F

    if k <= 1:
        return chw
    y = F.avg_pool2d(chw[None].float(), k, ceil_mode=True)
    return y[0].round_().clamp_(0, 255).to(chw.dtype)


@functools.lru_cache(maxsize=64)
def area_matrix(n_in: int, n_out: int, device: str):
    """(n_out, n_in) weights of OpenCV's area filter along one axis: each output pixel is the mean of
    the input it covers, partly covered pixels weighted by their covered share."""
    import torch

    scale = n_in / n_out
    lo = torch.arange(n_out, dtype=torch.float64) * scale
    j = torch.arange(n_in, dtype=torch.float64)
    w = (torch.minimum(lo[:, None] + scale, j[None] + 1) - torch.maximum(lo[:, None], j[None])).clamp_(min=0)
    return (w / w.sum(dim=1, keepdim=True)).float().to(device)


def resize_to(chw, height: int, width: int):
    """Resize a uint8 CHW tensor to ``height`` x ``width`` on its device as ``resize_square`` does with
    OpenCV: shrinking (fewer pixels out than in) with the area filter, as two small matrix products
    (torch's ``area`` mode is adaptive pooling, which differs for non-integer ratios); enlarging
    bicubic, which equals OpenCV's."""
    import torch.nn.functional as F

    h, w = chw.shape[-2:]
    if (h, w) == (height, width):
        return chw
    x = chw.float()
    if h * w >= height * width:
        dev = str(chw.device)
        y = area_matrix(h, height, dev) @ x @ area_matrix(w, width, dev).T
    else:
        y = F.interpolate(x[None], size=(height, width), mode="bicubic", align_corners=False)[0]
    return y.round_().clamp_(0, 255).to(chw.dtype)


def resize_chw(chw, size: int):
    """The encoder's input: ``chw`` squeezed to ``size`` x ``size`` (the CPU path's ``resize_square``)."""
    return resize_to(chw, size, size)


def shrink_chw(chw, side: int = QUALITY_SIDE):
    """``chw`` shrunk (never enlarged) so its longer side is at most ``side``: the size the quality
    signals are measured at (``signals.quality_signals``)."""
    h, w = chw.shape[-2:]
    f = side / max(h, w)
    if f >= 1:
        return chw
    return resize_to(chw, max(1, round(h * f)), max(1, round(w * f)))


def black_share(chw):
    """Share of pixels that are 0 in every channel (the CPU path's ``nodata`` signal), as a 0-d
    float tensor on the image's device (read together with the batch's others: one copy)."""
    import torch

    if chw.shape[-1] * chw.shape[-2] == 0:
        return torch.ones((), device=chw.device)
    return (chw.amax(dim=0) == 0).float().mean()


# --- one batch ----------------------------------------------------------------------------------------

@dataclass
class Prepared:
    """A batch ready for the model: pixels in the rows' order, the rows, what failed, and a
    ``wait()`` that returns once every row's signals are filled in (they are measured in threads
    while the model runs)."""

    pixels: object            # uint8 NCHW tensor (on the device when any JPEG was decoded there) or None
    rows: list[dict]
    failed: list[tuple[dict, str]]
    wait: Callable[[], None]


class BatchDecoder:
    """Turns a collated batch (``loader.collate_rows``) into model input on ``device``.

    CPU-decoded items keep their pixels; JPEG blobs are decoded on ``device``, turned upright and
    resized to ``size``; a blob the device refuses goes to ``fallback(row, blob)``, the CPU
    decoder, which returns the worker's answer (``{"pixels": ..., "error": ...}``). Rows come out in
    the batch's order. The pixel signals of device-decoded items are measured from small host
    copies by ``describe(row, quality_hwc, small_hwc, nodata_share)`` in ``threads`` threads.
    """

    def __init__(self, size: int, device: str, fallback: Callable[[dict, JpegBlob], dict],
                 describe: Callable[[dict, np.ndarray, np.ndarray, float], None], threads: int = 4,
                 batch_pixels: int = BATCH_PIXELS):
        self.size = size
        self.device = device
        self.fallback = fallback
        self.describe = describe
        self.batch_pixels = batch_pixels
        self.pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="agcurate-signals")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def __enter__(self) -> BatchDecoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, batch: dict) -> Prepared:
        import torch

        blobs = batch.get("jpegs") or []
        if not blobs:
            return Prepared(batch["pixels"], batch["rows"], list(batch["failed"]), lambda: None)
        slots: list = [None] * len(batch["rows"])
        for pos, px in zip(batch["cpu_at"], batch["pixels"] if batch["pixels"] is not None else []):
            slots[pos] = px
        failed = list(batch["failed"])
        jobs = []
        decoded = decode_jpegs([b for _, b in blobs], self.device, self.batch_pixels)
        for (pos, blob), img in zip(blobs, decoded):
            row = batch["rows"][pos]
            if img is None:  # the device decoder refused it: the CPU decoder decides
                out = self.fallback(row, blob)
                if out["pixels"] is None:
                    failed.append((row, out["error"]))
                else:
                    slots[pos] = out["pixels"]
                continue
            img = orient(draft_shrink(img, draft_factor(blob.width, blob.height, self.size)), blob.orientation)
            small = resize_chw(img, self.size)
            quality = shrink_chw(img, QUALITY_SIDE)
            row.update(pixel_hash=blob.pixel_hash, content_hash=blob.content_hash,
                       width=blob.width, height=blob.height)
            jobs.append((row, pos, quality.permute(1, 2, 0), black_share(img)))
            slots[pos] = small
        keep = [i for i, s in enumerate(slots) if s is not None]
        rows = [batch["rows"][i] for i in keep]
        pixels = torch.stack([slots[i].to(self.device) for i in keep]) if keep else None
        futures = []
        if jobs:  # three copies to the host per batch, not three per image
            small_hwc = pixels.permute(0, 2, 3, 1).cpu().numpy()
            shares = torch.stack([j[3] for j in jobs]).cpu().tolist()
            flat = torch.cat([j[2].reshape(-1) for j in jobs]).cpu().numpy()
            at, start = {pos: k for k, pos in enumerate(keep)}, 0
            for (row, pos, q, _), share in zip(jobs, shares):
                n = q.numel()
                quality = flat[start:start + n].reshape(q.shape)
                start += n
                futures.append(self.pool.submit(self.describe, row, quality, np.ascontiguousarray(small_hwc[at[pos]]),
                                                share))

        def wait() -> None:
            for f in futures:
                f.result()

        return Prepared(pixels, rows, failed, wait)
