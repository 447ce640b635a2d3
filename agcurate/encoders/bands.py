"""Encoders that see C raster bands instead of a colour picture (the network side; measuring a
collection's bands is ``agcurate.embedding.bands``).

``--bands all`` (or a list of 4 or more bands) gives the encoder every selected band: the first
convolution of the ImageNet network is inflated to C input channels. The red, green and blue filters
are kept for the bands in those roles; every other band starts from the mean of the three, the other
bands together weighing ``STEM_EXTRA`` of the colour filters, and all are scaled so that bands which
move together give exactly the first activations of a picture: the network starts as the RGB one and
the other bands add their difference from the colours. Each band is normalised as the picture is, on
the fixed stretch (``BAND_NORM = "fixed"``: the bands keep their physical scale and their ratios), or
by its own mean and spread measured on a seeded sample of the collection (``"collection"``). Bands,
stem rule and normalisation are part of the encoder's id, so vectors of another band set, rule or
normalisation are never mixed in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..errors import UsageError
from ..items import Item
from .base import IMAGENET_MEAN, IMAGENET_STD, Encoder


def variant_bands(item: Item) -> list[str] | None:
    """The band names an item's variant selects (``bands=B01,...``), or None for a picture."""
    for part in item.variant.split(";"):
        if part.startswith("bands="):
            return [b for b in part[len("bands="):].split(",") if b]
    return None


def variant_stretch(item: Item) -> str | None:
    """The stretch (``LO-HI``) of an item's variant, as ``LO,HI``; None when it has none."""
    for part in item.variant.split(";"):
        if part.startswith("stretch="):
            lo, _, hi = part[len("stretch="):].rpartition("-")
            return f"{lo},{hi}"
    return None


def is_multiband(names: Sequence[str] | None) -> bool:
    """Whether a band selection is given to the encoder as bands (not 1 or 3: a grey or colour picture)."""
    return names is not None and len(names) not in (1, 3)


def band_options(bands: Sequence[str] | None, stretch: str | None, opts):
    """The source options an encoder trained on ``bands`` needs: its bands (and stretch, unless one is
    given). Another ``--bands`` choice is refused, naming both."""
    if not bands:
        return opts
    wanted = ",".join(bands)
    if opts.bands and opts.bands.strip().lower() != "all" and \
            [t.strip() for t in opts.bands.split(",")] != list(bands):
        raise UsageError(f"--bands {opts.bands}: this encoder was trained on the bands {wanted}; "
                         "leave --bands out (it picks them) or use an encoder trained on your bands")
    return replace(opts, bands=wanted, stretch=opts.stretch or stretch)


def check_items_bands(bands: Sequence[str], items: Sequence[Item], what: str) -> None:
    """``UsageError`` unless every item carries exactly ``bands`` (an encoder trained on them)."""
    for it in items:
        got = variant_bands(it)
        if got != list(bands):
            have = ", ".join(got) if got else "a picture (RGB or grey), no raster bands"
            raise UsageError(
                f"{what} takes the {len(bands)} bands {','.join(bands)}, but {it.path} gives {have}: "
                "embed a collection with those bands, or use an encoder made for this input")


def collection_bands(items: Sequence[Item]) -> list[str] | None:
    """The band set a multi-band collection shows the encoder, or None when it is pictures.

    Every item must carry the same bands: a C-band encoder takes one band layout."""
    names = [variant_bands(it) for it in items]
    multi = [n for n in names if is_multiband(n)]
    if not multi:
        return None
    first = multi[0]
    for it, n in zip(items, names):
        if n != first:
            have = ", ".join(n) if n else "a picture (RGB or grey)"
            raise UsageError(f"--bands selects {len(first)} bands ({','.join(first)}) for "
                             f"{items[names.index(first)].path}, but {it.path} gives {have}: a multi-band "
                             "encoder takes one band layout; embed those inputs apart or name the bands")
    return first


# --- the network -------------------------------------------------------------------------------

# How ``--bands all`` starts: the share of the stem of the bands outside the colour roles (``inflate_stem``)
# and the per-band normalisation (``band_normalisation``), chosen leave-one-family-out by
# ``benchmarks/multiband.py`` (see its printout).
STEM_EXTRA = 0.05
BAND_NORM = "fixed"
BAND_NORMS = ("fixed", "collection")

def first_conv(model):
    """The first 2-D convolution that takes the 3 colour channels (the stem)."""
    import torch.nn as nn

    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == 3 and m.groups == 1:
            return m
    raise UsageError(f"cannot find the 3-channel input convolution of {type(model).__name__} to give it more bands")


def inflate_stem(model, positions: Sequence[int | None], extra: float | None = None):
    """Inflate the stem to ``len(positions)`` input channels, in place; returns ``model``.

    Band ``c`` keeps the ImageNet filter of colour ``positions[c]`` (0 red, 1 green, 2 blue); every
    other band starts from the mean of the three, the other bands together weighing ``extra`` times
    the colour bands (each ``extra * k / (C - k)`` of a colour filter, ``k`` the colour bands kept), so
    the share does not grow with the number of bands. All are then scaled by ``1 / (1 + extra)``, so
    a band stack whose bands move together (as neighbouring spectral bands do) gives the first layer
    exactly the activations of a picture: the network starts as the RGB one, and the other bands
    add their difference from the colours. ``extra=None`` is the plain inflation (every band the same
    weight, all scaled by 3/C).
    """
    import torch

    conv = first_conv(model)
    w = conv.weight.detach()
    c = len(positions)
    kept = sum(p is not None for p in positions)
    if extra is None or not kept or kept == c:
        each, scale = 1.0, 3.0 / c
    elif extra <= 0:
        raise UsageError(f"the other bands' share of the stem must be above 0, got {extra}")
    else:
        each, scale = extra * kept / (c - kept), 3.0 / (kept * (1 + extra))
    mean = w.mean(dim=1) * each
    new = torch.stack([w[:, p] if p is not None else mean for p in positions], dim=1) * scale
    conv.weight = torch.nn.Parameter(new.contiguous())
    conv.in_channels = c
    return model


def with_channels(model, channels: int):
    """The stem resized to ``channels`` inputs (weights to be loaded from a checkpoint next)."""
    return model if channels == 3 else inflate_stem(model, [None] * channels)


# --- normalisation -----------------------------------------------------------------------------

def effective_normalisation(band_mean: Sequence[float], band_std: Sequence[float], rgb_mean: Sequence[float],
                            rgb_std: Sequence[float]) -> tuple[tuple, tuple]:
    """Per-band (mean, std) for the runner's ``(x - mean) / std``: each band standardised, then put
    at the centre and spread ImageNet pictures have after the RGB encoder's own normalisation
    (``rgb_mean``/``rgb_std``), so the inflated stem sees inputs of the size its weights know."""
    centre = float(np.mean((np.array(IMAGENET_MEAN) - np.array(rgb_mean[:3])) / np.array(rgb_std[:3])))
    spread = float(np.mean(np.array(IMAGENET_STD) / np.array(rgb_std[:3])))
    std = np.asarray(band_std, dtype=np.float64) / spread
    mean = np.asarray(band_mean, dtype=np.float64) - centre * std
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def fixed_normalisation(positions: Sequence[int | None], rgb_mean: Sequence[float],
                        rgb_std: Sequence[float]) -> tuple[tuple, tuple]:
    """Per-band (mean, std) of the picture: a band in a colour's role gets that colour's, every other
    band the average of the three. On the fixed stretch every band keeps its physical scale (the
    reflectance range of ``--stretch``), so the ratios between bands survive and no collection,
    however cloudy, changes how clear ground is seen."""
    avg_m, avg_s = float(np.mean(rgb_mean[:3])), float(np.mean(rgb_std[:3]))
    mean = tuple(float(rgb_mean[p]) if p is not None else avg_m for p in positions)
    std = tuple(float(rgb_std[p]) if p is not None else avg_s for p in positions)
    return mean, std


def band_normalisation(norm: str, positions: Sequence[int | None], band_mean: Sequence[float] | None,
                       band_std: Sequence[float] | None, rgb_mean: Sequence[float],
                       rgb_std: Sequence[float]) -> tuple[tuple, tuple]:
    """The runner's per-band (mean, std) under ``norm``: ``fixed`` (the picture's, on the fixed stretch)
    or ``collection`` (each band standardised by the collection's statistics)."""
    if norm == "fixed":
        return fixed_normalisation(positions, rgb_mean, rgb_std)
    if norm == "collection":
        if band_mean is None or band_std is None:
            raise UsageError("collection normalisation needs the bands' statistics")
        return effective_normalisation(band_mean, band_std, rgb_mean, rgb_std)
    raise UsageError(f"unknown band normalisation {norm!r}; choose from {', '.join(BAND_NORMS)}")


def band_encoder(enc: Encoder, bands: Sequence[str], positions: Sequence[int | None],
                 band_mean: Sequence[float] | None = None, band_std: Sequence[float] | None = None,
                 stretch: str | None = None, extra: float | None = STEM_EXTRA, norm: str = BAND_NORM) -> Encoder:
    """``enc`` (a 3-channel ImageNet encoder) with its stem inflated to ``bands`` (``inflate_stem``
    with ``extra``), normalised per band (``band_normalisation`` with ``norm``)."""
    if enc.bands:
        raise UsageError(f"{enc.name} already takes the bands {','.join(enc.bands)}")
    if len(bands) != len(positions) or (band_mean is not None and not len(bands) == len(band_mean) == len(band_std)):
        raise UsageError("bands, positions and statistics must have one entry per band")
    mean, std = band_normalisation(norm, positions, band_mean, band_std, enc.mean, enc.std)
    inner, pos = enc.build, list(positions)

    def build():
        return inflate_stem(inner(), pos, extra)

    return replace(enc, mean=mean, std=std, bands=tuple(bands), stretch=stretch, build=build,
                   weights_id=f"{enc.weights_id}+stem{'' if extra is None else f'{extra:g}'}",
                   description=f"{enc.description}; stem inflated to {len(bands)} bands ({','.join(bands)}), "
                               f"other bands {'plain' if extra is None else f'{extra:g} of the colours'}, "
                               f"{norm} normalisation")


# --- pixels ------------------------------------------------------------------------------------

def resize_bands(px: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize (H, W, C) uint8 bands to ``size`` x ``size`` (or ``(width, height)``) as ``resize_square``
    does pictures (area down, bicubic up); OpenCV resizes at most 4 channels at once, so wider
    stacks go 4 bands at a time."""
    import cv2

    h, w = px.shape[:2]
    width, height = (size, size) if isinstance(size, int) else size
    if (h, w) == (height, width):
        return np.ascontiguousarray(px)
    interp = cv2.INTER_AREA if h * w >= width * height else cv2.INTER_CUBIC
    parts = []
    for k in range(0, px.shape[2], 4):
        part = cv2.resize(np.ascontiguousarray(px[:, :, k:k + 4]), (width, height), interpolation=interp)
        parts.append(part if part.ndim == 3 else part[:, :, None])
    return np.concatenate(parts, axis=2)
