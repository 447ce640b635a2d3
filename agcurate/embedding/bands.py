"""A collection's bands for a band encoder: which bands are red, green and blue, per-band statistics
from a seeded sample of its items (for ``collection`` normalisation), and the encoder that
``--bands all`` gives a collection."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..encoders import bands as stem
from ..encoders.bands import band_encoder, check_items_bands, collection_bands, variant_bands, variant_stretch
from ..encoders.base import Encoder
from ..errors import UsageError
from ..items import Item
from ..sources import SourceOptions, get_sources, read_group

STATS_SAMPLE = 64          # items whose pixels give the per-band statistics (evenly spaced, in key order)
STATS_PIXELS = 128         # each sampled item is read on a grid of at most this many pixels a side
STD_FLOOR_SHARE = 0.25     # a near-constant band's spread is floored at this share of the median band's


def rgb_positions(item: Item, bands: Sequence[str]) -> list[int | None]:
    """For each selected band, 0/1/2 when it is the red/green/blue band of its raster, else None."""
    from ..sources.raster import open_stack

    st = open_stack(Path(item.path))
    where = {st.roles[r]: k for k, r in enumerate(("red", "green", "blue")) if r in st.roles}
    return [where.get(st.index(b)) for b in bands]


def band_statistics(items: Sequence[Item], opts: SourceOptions, sample: int = STATS_SAMPLE) -> tuple[list[float], list[float]]:
    """Per-band mean and spread (0-1 scale of the 8-bit bands) over valid pixels of a seeded sample.

    The sample is ``sample`` items evenly spaced in key order, so it is the same on every run; a
    near-constant band's spread is floored (``STD_FLOOR_SHARE`` of the median band's) so that
    normalising it does not blow its noise up.
    """
    ordered = sorted(items, key=lambda it: it.key)
    pick = np.unique(np.linspace(0, len(ordered) - 1, num=min(sample, len(ordered))).round().astype(int))
    sources = get_sources()
    total = s1 = s2 = None
    by_group: dict[str, list[Item]] = {}
    for i in pick:
        by_group.setdefault(ordered[i].group, []).append(ordered[i])
    for members in by_group.values():
        for dec in read_group(members, opts, sources):
            px = getattr(dec, "bands", None)
            if px is None:
                continue
            step = max(1, -(-max(px.shape[:2]) // STATS_PIXELS))
            valid = np.ones(px.shape[:2], bool) if dec.nodata is None else ~dec.nodata
            x = px[::step, ::step][valid[::step, ::step]].astype(np.float64) / 255.0
            if total is None:
                total, s1, s2 = 0, np.zeros(x.shape[1]), np.zeros(x.shape[1])
            total += len(x)
            s1 += x.sum(axis=0)
            s2 += (x * x).sum(axis=0)
    if not total:
        raise UsageError("no readable multi-band item to measure the bands' statistics on")
    mean = s1 / total
    std = np.sqrt(np.maximum(s2 / total - mean * mean, 0.0))
    std = np.maximum(std, max(STD_FLOOR_SHARE * float(np.median(std)), 1.0 / 255))
    return [float(m) for m in mean], [float(s) for s in std]


def fit_bands(enc: Encoder, items: Sequence[Item], opts: SourceOptions, inputs: Sequence[str],
              cache_dir: str | os.PathLike | None = None, skipped: Sequence = (), *,
              extra: float | None = None, norm: str | None = None) -> Encoder:
    """The encoder a collection needs: ``enc`` itself for pictures, ``enc`` checked against the bands
    when it was trained on bands, else (``--bands all``) ``enc`` inflated to the collection's bands.

    ``extra`` and ``norm`` (default ``STEM_EXTRA`` and ``BAND_NORM`` of ``encoders.bands``) say how the
    stem starts and how bands are normalised. With ``collection`` normalisation the statistics are
    measured once and kept in ``cache_dir/bandstats`` (keyed by encoder, inputs and band selection),
    so adding files later does not change the encoder's id.
    """
    if enc.bands:
        what = f"the encoder {enc.name}"
        for s in skipped:  # a raster that lacks one of the encoder's bands: refused, not skipped
            if s.reason.startswith("no band ") or "out of range (file has" in s.reason:
                raise UsageError(f"{what} takes the {len(enc.bands)} bands {','.join(enc.bands)}, but "
                                 f"{s.path} has {s.reason}: use an encoder made for this input")
        check_items_bands(enc.bands, items, what)
        return enc
    bands = collection_bands(items)
    if bands is None:
        return enc
    first = next(it for it in items if variant_bands(it) == bands)
    stretch = variant_stretch(first)
    norm = norm or stem.BAND_NORM
    stats = {"mean": None, "std": None}
    if norm == "collection":
        stats = collection_statistics(enc, items, opts, inputs, cache_dir, bands, stretch)
    return band_encoder(enc, bands, rgb_positions(first, bands), stats["mean"], stats["std"], stretch,
                        extra=stem.STEM_EXTRA if extra is None else extra, norm=norm)


def collection_statistics(enc: Encoder, items: Sequence[Item], opts: SourceOptions, inputs: Sequence[str],
                          cache_dir, bands: Sequence[str], stretch: str | None) -> dict:
    """``band_statistics`` of a collection, measured once and kept in ``cache_dir/bandstats``."""
    key = hashlib.sha256(json.dumps([enc.id, bands, stretch, sorted(map(str, inputs))]).encode()).hexdigest()[:16]
    path = Path(cache_dir) / "bandstats" / f"{key}.json" if cache_dir is not None else None
    stats = _read_json(path)
    if stats is None:
        mean, std = band_statistics(items, opts)
        stats = {"bands": list(bands), "stretch": stretch, "mean": mean, "std": std, "encoder": enc.id,
                 "inputs": sorted(map(str, inputs)), "items": len(items)}
        if path is not None:
            _write_json(path, stats)
    return stats


def _read_json(path: Path | None):
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
