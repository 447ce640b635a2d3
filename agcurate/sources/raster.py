"""Multi-band rasters: GeoTIFF/TIFF through rasterio, ``.npy`` arrays and one-band-per-file folders.

Bands are picked by name or index (``--bands B04,B03,B02``; defaults: Sentinel-2 true colour,
RGB of an RGBN file) and scaled to 8 bits by a fixed, per-item-independent linear stretch, so a
cloud stays white and a dark field stays dark:

* ``uint8`` data: 0-255 (unchanged);
* other integer data (``uint16`` Sentinel-2 L1C/L2A digital numbers, reflectance x 10000): 0-3000;
* float data (reflectance 0-1): 0-0.3;
* ``--stretch LO,HI`` sets the clip range for every raster (e.g. ``5000,15000`` for Landsat L1 DN).

``--bands all`` (or 4 or more bands) hands every selected band to a band encoder (``Decoded.bands``,
8-bit by the same stretch) beside the true-colour picture used for thumbnails and pixel signals.

Each item also gets spectral signals from its reflectance, taken as 0.3 x (value - LO) / (HI - LO),
i.e. DN / 10000 for Sentinel-2 at the default stretch (see ``spectral_signals``).

A TIFF is either a raster (this source) or a photo (the image source, which scales by the full range
of the sample type: 8-bit as is, 16-bit / 257). It is a photo only when nothing says "reflectance":

* no georeference: no CRS, no geotransform other than identity, no ground control points or RPCs;
* a picture's layout: 1 band, 3 bands, or 4 with the 4th marked alpha (RGBN, 13-band stacks: raster);
* no nodata value, and no band description other than a colour (``B04``, ``nir``: raster);
* 8- or 16-bit unsigned samples (int16, 32-bit and float data: raster);
* and for 16 bits, also: 3 bands declared as RGB colour (TIFF photometric RGB), at most
  ``MAX_WINDOW_PIXELS`` pixels, and values that use the 16-bit range: the 99th percentile of a
  subsample reaches ``PHOTO_16BIT_P99`` (16384, a quarter of the range). Reflectance x 10000 stays far
  below it even for cloud and snow; a photo passes it unless nearly black.

A raster larger than ``MAX_WINDOW_PIXELS`` is refused unless ``--tile`` cuts it into windows, and one
whose header claims more pixels than its file can hold (``implausible_size``) is refused outright, so
a header that claims a huge size never makes anything allocate it.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import SourceError
from ..items import Item, file_fingerprint
from .base import Decoded, Source, SourceOptions, all_failed, implausible_size, parse_stretch
from .tiling import nodata_reason, tile_windows

S2_ORDER_13 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
S2_ORDER_12 = [b for b in S2_ORDER_13 if b != "B10"]
S2_ROLES = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir": "B11", "cirrus": "B10"}
S2_TRUE_COLOUR = ["B04", "B03", "B02"]
BAND_FILE = re.compile(r"^(?:(?P<prefix>.*)_)?(?P<band>B(?:\d{1,2}|8A))\.tiff?$", re.IGNORECASE)
FIXED_STRETCH = {"uint8": (0.0, 255.0), "int": (0.0, 3000.0), "float": (0.0, 0.3)}
PHOTO_16BIT_P99 = 16384  # 16-bit TIFF: 99th percentile at or above this (a quarter of the range) -> photo
PHOTO_SAMPLE_SIDE = 256  # the value-range test reads a nearest-neighbour subsample this large
MAX_WINDOW_PIXELS = 250_000_000  # largest raster read whole (float32 per band); beyond it, --tile reads windows
COLOUR_NAMES = frozenset({"", "red", "green", "blue", "alpha", "gray", "grey"})


def _norm_band(name: str) -> str:
    """``b4`` -> ``B04``, ``b8a`` -> ``B8A``; other names lower-cased."""
    m = re.fullmatch(r"[bB](\d{1,2}|8[aA])", name.strip())
    if m:
        num = m.group(1).upper()
        return "B" + (num.zfill(2) if num.isdigit() else num)
    return name.strip().lower()


@dataclass
class Stack:
    """An opened raster: band names, roles (red/green/blue/nir/swir -> band index), size and reader."""

    path: Path
    names: list[str]
    width: int
    height: int
    dtype: str
    nodata: float | None = None
    roles: dict[str, int] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)  # one per band (band folders)
    array: np.ndarray | None = None  # npy: (C, H, W) view
    layout: str = ""

    @property
    def kind(self) -> str:
        """``uint8``, ``int`` or ``float``: selects the default stretch and the reflectance scale."""
        dt = np.dtype(self.dtype)
        if dt == np.uint8 or dt == np.bool_:
            return "uint8"
        return "float" if np.issubdtype(dt, np.floating) else "int"

    def index(self, token: str) -> int:
        """0-based band index of a name (``B04``, ``red``) or a 1-based number."""
        t = token.strip()
        if t.isdigit():
            i = int(t) - 1
            if not 0 <= i < len(self.names):
                raise SourceError(f"band {t} out of range (file has {len(self.names)} bands)")
            return i
        n = _norm_band(t)
        for i, name in enumerate(self.names):
            if _norm_band(name) == n:
                return i
        if n in self.roles:
            return self.roles[n]
        raise SourceError(f"no band {t!r} (bands: {', '.join(self.names)})")

    def default_bands(self) -> list[int]:
        """True colour when red/green/blue are known, else the first band as grey."""
        if all(r in self.roles for r in ("red", "green", "blue")):
            return [self.roles["red"], self.roles["green"], self.roles["blue"]]
        return [0]

    def read(self, bands: Sequence[int], window: tuple[int, int, int, int] | None) -> np.ndarray:
        """Bands (0-based) inside ``window`` as float32 (C, h, w), coarser bands resampled bilinearly."""
        x, y, w, h = window if window is not None else (0, 0, self.width, self.height)
        if self.array is not None:
            return np.asarray(self.array[list(bands), y:y + h, x:x + w], dtype=np.float32)
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.windows import Window

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not self.files:
                with rasterio.open(self.path) as ds:
                    return ds.read([b + 1 for b in bands], window=Window(x, y, w, h)).astype(np.float32)
            out = np.empty((len(bands), h, w), np.float32)
            for j, b in enumerate(bands):
                with rasterio.open(self.files[b]) as ds:
                    sx, sy = ds.width / self.width, ds.height / self.height
                    win = Window(x * sx, y * sy, w * sx, h * sy)
                    out[j] = ds.read(1, window=win, out_shape=(h, w), resampling=Resampling.bilinear,
                                     boundless=False)
            return out

    def window_bounds(self, window) -> list[float] | None:
        """Geographic bounds (left, bottom, right, top) of a window, when the raster has a transform."""
        tr = self.meta.get("transform")
        if tr is None or window is None:
            return self.meta.get("bounds")
        a, b, c, d, e, f = tr
        x, y, w, h = window
        xs = [c + a * x, c + a * (x + w)]
        ys = [f + e * y, f + e * (y + h)]
        return [min(xs), min(ys), max(xs), max(ys)]


def _geo_meta(ds) -> dict:
    meta: dict = {}
    if ds.crs is not None:
        meta["crs"] = ds.crs.to_string()
        meta["bounds"] = [float(v) for v in ds.bounds]
        t = ds.transform
        meta["transform"] = [t.a, t.b, t.c, t.d, t.e, t.f]
    return meta


def _roles_for(names: list[str], colorinterp: Sequence[str] = ()) -> dict[str, int]:
    norm = [_norm_band(n) for n in names]
    roles: dict[str, int] = {}
    if any(re.fullmatch(r"B(\d\d|8A)", n) for n in norm):  # Sentinel-2 style names
        for role, band in S2_ROLES.items():
            if band in norm:
                roles[role] = norm.index(band)
        if "nir" not in roles and "B8A" in norm:
            roles["nir"] = norm.index("B8A")
        return roles
    for i, n in enumerate(norm):
        if n in ("red", "green", "blue", "nir", "swir"):
            roles[n] = i
    for i, ci in enumerate(colorinterp):
        if ci in ("red", "green", "blue") and ci not in roles:
            roles[ci] = i
    if not roles and len(names) in (3, 4):  # RGB, RGBN: the common layouts of 3- and 4-band products
        roles = {"red": 0, "green": 1, "blue": 2}
    if len(names) == 4 and "nir" not in roles and [roles.get(c) for c in ("red", "green", "blue")] == [0, 1, 2] \
            and (len(colorinterp) < 4 or colorinterp[3] in ("undefined", "gray")):
        roles["nir"] = 3
    return roles


def open_stack(path: Path) -> Stack:
    """Open a raster file, ``.npy`` array or band folder without reading its pixels."""
    if path.is_dir():
        return _open_folder(path)
    with open(path, "rb") as fh:
        head = fh.read(6)
    if head == b"\x93NUMPY":
        return _open_npy(path)
    return _open_tiff(path)


def _open_tiff(path: Path) -> Stack:
    import rasterio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as ds:
                descr = [d or "" for d in ds.descriptions]
                if ds.count >= 12 and not any(descr):
                    names = (S2_ORDER_13 if ds.count == 13 else S2_ORDER_12)[:ds.count] + \
                        [str(i + 1) for i in range(13, ds.count)]
                else:
                    names = [d or str(i + 1) for i, d in enumerate(descr)]
                ci = [c.name for c in ds.colorinterp]
                if len(ci) == 3 and ci[0] == "gray" and all(c == "undefined" for c in ci[1:]):
                    ci = []  # GDAL's default for a plain 3-band file: no real colour information
                problem = implausible_size(ds.width, ds.height, path.stat().st_size)
                if problem:
                    raise SourceError(problem)
                st = Stack(path, names, ds.width, ds.height, ds.dtypes[0],
                           None if ds.nodata is None else float(ds.nodata), meta=_geo_meta(ds))
                st.roles = _roles_for(names, ci)
                return st
    except rasterio.errors.RasterioError as exc:
        raise SourceError(f"cannot read raster: {exc}") from exc


def _npy_layout(shape: tuple[int, ...]) -> str:
    if len(shape) == 2:
        return "HW"
    if len(shape) != 3:
        raise SourceError(f"unsupported array shape {shape} (need HW, CHW or HWC)")
    c0, c2 = shape[0], shape[2]
    if c0 < c2 and c0 <= 32:
        return "CHW"
    if c2 < c0 and c2 <= 32:
        return "HWC"
    return "HWC" if c2 in (3, 4) else "CHW"


def _open_npy(path: Path) -> Stack:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a damaged header raises ValueError, SyntaxError, TokenError...
        raise SourceError(f"cannot read array: {exc}") from exc
    if arr.dtype.kind not in "uifb":
        raise SourceError(f"unsupported array type {arr.dtype}")
    layout = _npy_layout(arr.shape)
    chw = arr[None] if layout == "HW" else (arr if layout == "CHW" else np.moveaxis(arr, 2, 0))
    c, h, w = chw.shape
    names = S2_ORDER_13[:c] if c == 13 else (S2_ORDER_12 if c == 12 else [str(i + 1) for i in range(c)])
    st = Stack(path, names, w, h, str(arr.dtype), array=chw, layout=layout)
    st.roles = _roles_for(names)
    st.meta = {"layout": layout}
    return st


def band_files(folder: Path) -> dict[str, Path]:
    """``{B02: path, ...}`` for a folder of one-band files sharing one prefix, else an empty dict."""
    found: dict[str, Path] = {}
    prefixes = set()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return {}
    for e in entries:
        m = BAND_FILE.match(e.name)
        if m and e.is_file():
            prefixes.add(m.group("prefix") or "")
            found[_norm_band(m.group("band"))] = e
    if len(found) < 2 or len(prefixes) != 1:
        return {}
    return dict(sorted(found.items()))


def _open_folder(folder: Path) -> Stack:
    import rasterio

    files = band_files(folder)
    if not files:
        raise SourceError("not a band folder (need files like B02.tif, B03.tif or <name>_B02.tif)")
    names = list(files)
    sizes, metas, dtypes, nodata = [], [], [], None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in files.values():
            try:
                with rasterio.open(p) as ds:
                    sizes.append((ds.width, ds.height))
                    metas.append(_geo_meta(ds))
                    dtypes.append(ds.dtypes[0])
                    if ds.nodata is not None:
                        nodata = float(ds.nodata)
            except rasterio.errors.RasterioError as exc:
                raise SourceError(f"cannot read band {p.name}: {exc}") from exc
    finest = max(range(len(sizes)), key=lambda i: sizes[i][0] * sizes[i][1])
    w, h = sizes[finest]
    st = Stack(folder, names, w, h, np.result_type(*dtypes).name, nodata, meta=metas[finest],
               files=list(files.values()))
    st.roles = _roles_for(names)
    return st


def folder_fingerprint(files: Sequence[Path]) -> str:
    """Change detector of a band folder: the fingerprints of all its band files."""
    h = hashlib.blake2b(digest_size=8)
    for p in files:
        h.update(f"{p.name}:{file_fingerprint(p)};".encode())
    return h.hexdigest()


def _fmt(v: float) -> str:
    return f"{v:g}"


def resolve_variant(st: Stack, opts: SourceOptions) -> tuple[list[int], tuple[float, float], str]:
    """Display bands (0-based), stretch and the variant string that puts both into the cache key."""
    if opts.bands and opts.bands.strip().lower() == "all":
        bands = list(range(len(st.names)))  # every band, in the file's order
        if len(bands) == 2:
            raise SourceError("--bands all: a 2-band raster is neither a picture nor a band stack; name 1 band")
    elif opts.bands:
        bands = [st.index(t) for t in opts.bands.split(",") if t.strip()]
        if len(bands) == 2:
            raise SourceError(f"--bands needs 1 or 3 bands, or 4 or more, got {len(bands)}")
    else:
        bands = st.default_bands()
    stretch = parse_stretch(getattr(opts, "stretch", None)) or FIXED_STRETCH[st.kind]
    variant = "bands={};stretch={}-{}".format(",".join(st.names[b] for b in bands), *map(_fmt, stretch))
    return bands, stretch, variant


def parse_variant(st: Stack, variant: str) -> tuple[list[int], tuple[float, float]]:
    """Inverse of ``resolve_variant``: what an item's variant says about bands and stretch."""
    fields = dict(p.split("=", 1) for p in variant.split(";") if "=" in p)
    bands = [st.index(t) for t in fields.get("bands", "").split(",") if t] or st.default_bands()
    stretch = parse_stretch(fields.get("stretch")) or FIXED_STRETCH[st.kind]
    return bands, stretch


def stretch_to_uint8(chw: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear clip of (C, h, w) values at [lo, hi] to RGB uint8 (h, w, 3); one band becomes grey."""
    scaled = np.clip((np.nan_to_num(chw, nan=lo) - lo) * (255.0 / (hi - lo)), 0, 255) + 0.5
    rgb = scaled.astype(np.uint8).transpose(1, 2, 0)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return np.ascontiguousarray(rgb)


def spectral_signals(refl: dict[str, np.ndarray], valid: np.ndarray, calibrated: bool = True) -> dict[str, float]:
    """Per-item spectral numbers from reflectance (0-1) of the roles present, over valid pixels.

    Thresholds on absolute reflectance (``vis_reflectance``, ``cloud``, ``snow``) need calibrated
    data and are left out for 8-bit rasters; the band ratios are computed for every raster.

    ``vis_reflectance``: mean visible reflectance; ``whiteness``: mean spectral flatness of the
    visible bands (Fmask's whiteness, low for clouds and snow); ``cloud``: share of pixels that are
    bright (visible > 0.25), white (whiteness < 0.7) and pass the haze test blue - 0.5 red > 0.08, or,
    with a NIR band, white, passing the haze test, above 0.1 and as flat into NIR (NIR 0.75-1.3 x
    visible; vegetation is far above, water far below): shadowed and grey cloud;
    ``haze``: mean haze-optimised transform blue - 0.5 red (Zhang et al. 2002), high for thin cloud;
    ``ndvi`` with a NIR band; ``ndsi`` and ``snow`` (NDSI > 0.4 and NIR > 0.11) with a SWIR band.
    ``cirrus``: mean cirrus-band (B10) reflectance, where present.
    ``dark_object``: 5th percentile of the per-pixel minimum reflectance over the visible bands and NIR
    where present (lifted by haze and thin cloud, which veil every band; water is dark in NIR, so
    turbid water, bright in the visible, does not lift it).
    """
    out: dict[str, float] = {}
    if not valid.any() or not all(r in refl for r in ("red", "green", "blue")):
        return out
    r, g, b = (refl[k][valid] for k in ("red", "green", "blue"))
    vis = (r + g + b) / 3.0
    white = (np.abs(r - vis) + np.abs(g - vis) + np.abs(b - vis)) / np.maximum(vis, 1e-3)
    hot = b - 0.5 * r - 0.08
    out["whiteness"] = float(white.mean())
    if calibrated:
        out["vis_reflectance"] = float(vis.mean())
        out["haze"] = float(np.mean(b - 0.5 * r))
        cloud = (vis > 0.25) & (white < 0.7) & (hot > 0)
        if "nir" in refl:  # shadowed or grey cloud, dimmer than 0.25, is as flat into NIR as in the visible
            ratio = refl["nir"][valid] / np.maximum(vis, 1e-3)  # vegetation >> 1, water << 1
            cloud |= (vis > 0.1) & (white < 0.7) & (hot > 0) & (ratio > 0.75) & (ratio < 1.3)
        out["cloud"] = float(np.mean(cloud))
        # dark-object value (Chavez 1988): haze and thin cloud lift the darkest pixels of every band
        darkest = np.minimum(np.minimum(r, g), b)
        if "nir" in refl:
            darkest = np.minimum(darkest, refl["nir"][valid])
        out["dark_object"] = float(np.percentile(darkest, 5))
        if "cirrus" in refl:  # B10 (1375 nm): thin cirrus reflects, the ground is dark (L1C only)
            out["cirrus"] = float(refl["cirrus"][valid].mean())
    if "nir" in refl:
        n = refl["nir"][valid]
        out["ndvi"] = float(np.mean((n - r) / np.maximum(n + r, 1e-3)))
    if "swir" in refl:
        s = refl["swir"][valid]
        ndsi = (g - s) / np.maximum(g + s, 1e-3)
        out["ndsi"] = float(ndsi.mean())
        if not calibrated:
            return out
        nir = refl["nir"][valid] if "nir" in refl else np.ones_like(s)
        out["snow"] = float(np.mean((ndsi > 0.4) & (nir > 0.11)))
    return out


def georeferenced(ds) -> bool:
    """Whether an open rasterio dataset places its pixels on the ground (CRS, transform, GCPs or RPCs)."""
    return (ds.crs is not None or not ds.transform.is_identity or bool(ds.gcps[0])
            or getattr(ds, "rpcs", None) is not None)


def tiff_is_photo(ds) -> bool:
    """Whether an open TIFF is a photo rather than reflectance data (the rule in the module docstring)."""
    ci = [c.name for c in ds.colorinterp]
    dtype = ds.dtypes[0]
    picture = ds.count in (1, 3) or (ds.count == 4 and ci[3] == "alpha")
    if (dtype not in ("uint8", "uint16") or not picture or georeferenced(ds) or ds.nodata is not None
            or any(_norm_band(d or "") not in COLOUR_NAMES for d in ds.descriptions)):
        return False
    if dtype == "uint8":
        return True
    if ((ds.count >= 3 and ci[:3] != ["red", "green", "blue"]) or ds.width * ds.height > MAX_WINDOW_PIXELS
            or implausible_size(ds.width, ds.height, Path(ds.name).stat().st_size)):
        return False  # not declared RGB, or too large (or implausibly large) to decode whole: windows instead
    return _high_value(ds) >= PHOTO_16BIT_P99


def _high_value(ds) -> float:
    """99th percentile of the colour bands over a nearest-neighbour subsample (cheap on any size)."""
    from rasterio.enums import Resampling

    step = max(1, -(-max(ds.width, ds.height) // PHOTO_SAMPLE_SIDE))
    bands = list(range(1, min(ds.count, 3) + 1))
    shape = (len(bands), max(1, ds.height // step), max(1, ds.width // step))
    return float(np.percentile(ds.read(bands, out_shape=shape, resampling=Resampling.nearest), 99))


@lru_cache(maxsize=1024)
def _tiff_is_photo(path: str, fingerprint: str) -> bool:
    """``tiff_is_photo`` of a file, remembered per file version (discovery and decoding both ask)."""
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return tiff_is_photo(ds)


class RasterSource(Source):
    """GeoTIFF/TIFF rasters (any band count and depth), ``.npy`` arrays and band folders."""

    name = "raster"
    formats = frozenset({"tiff", "npy"})

    def claims(self, path: Path, fmt: str | None) -> bool:
        """``.npy`` always; a TIFF unless it is a photo (the rule in the module docstring)."""
        if fmt == "npy":
            return True
        if fmt != "tiff":
            return False
        try:
            return not _tiff_is_photo(str(path), file_fingerprint(path))
        except Exception:  # noqa: BLE001 - rasterio missing or unreadable: the image source tries
            return False

    def claims_dir(self, path: Path) -> bool:
        return bool(band_files(path))

    def items(self, path: Path, opts: SourceOptions) -> list[Item]:
        st = open_stack(path)
        if not opts.tile and st.width * st.height > MAX_WINDOW_PIXELS:
            raise SourceError(f"raster too large to read whole ({st.width}x{st.height} pixels, more than "
                              f"{MAX_WINDOW_PIXELS:,}); use --tile")
        _, _, variant = resolve_variant(st, opts)
        fp = folder_fingerprint(st.files) if st.files else file_fingerprint(path)
        base = {"bands": st.names, "dtype": st.dtype, "size": [st.width, st.height]}
        if opts.tile:
            windows = tile_windows(st.width, st.height, opts.tile, opts.stride)
        else:
            windows = [None]
        out = []
        for win in windows:
            meta = dict(base)
            if "crs" in st.meta:
                meta["crs"] = st.meta["crs"]
                meta["bounds"] = st.window_bounds(win)
            if st.layout:
                meta["layout"] = st.layout
            out.append(Item(path=str(path), kind="tile" if win is not None else "raster", window=win,
                            variant=variant, fingerprint=fp, meta=meta))
        return out

    def read(self, items: Sequence[Item], opts: SourceOptions) -> Iterator[Decoded]:
        try:
            st = open_stack(Path(items[0].path))
        except (SourceError, OSError) as exc:
            yield from all_failed(items, exc)
            return
        for it in items:
            try:
                yield self._decode(st, it)
            except SourceError as exc:
                yield Decoded(it, error=str(exc))
            except Exception as exc:  # noqa: BLE001 - rasterio/numpy errors of one item
                yield Decoded(it, error=f"cannot read raster window: {exc}")

    def _decode(self, st: Stack, it: Item) -> Decoded:
        bands, (lo, hi) = parse_variant(st, it.variant)
        stack = bands if len(bands) not in (1, 3) else None  # a band encoder's bands (--bands all)
        if stack is not None:
            bands = st.default_bands()  # the picture (thumbnails, pixel signals) stays true colour
        roles = {r: i for r, i in st.roles.items() if r in ("red", "green", "blue", "nir", "swir", "cirrus")}
        need = sorted(set(bands) | set(roles.values()) | set(stack or ()))
        data = st.read(need, it.window)
        pos = {b: j for j, b in enumerate(need)}
        nodata = np.all(data == (st.nodata if st.nodata is not None else 0), axis=0)
        nodata |= np.isnan(data).any(axis=0)
        if it.window is not None or st.nodata is not None:
            reason = nodata_reason(nodata)
            if reason:
                return Decoded(it, error=reason, nodata=nodata)
        rgb = stretch_to_uint8(data[[pos[b] for b in bands]], lo, hi)
        rgb[nodata] = 0
        px = None
        if stack is not None:
            px = stretch_to_uint8(data[[pos[b] for b in stack]], lo, hi)
            px[nodata] = 0
        # reflectance: the stretch range maps to 0-0.3 (exact for Sentinel-2 DN / 10000 at 0-3000)
        refl = {r: (data[pos[i]] - lo) * (0.3 / (hi - lo)) for r, i in roles.items()}
        signals = spectral_signals(refl, ~nodata, calibrated=st.kind != "uint8")
        h = hashlib.blake2b(digest_size=16)
        h.update(np.ascontiguousarray(data).tobytes())
        return Decoded(it, rgb=rgb, signals=signals, nodata=nodata, content_hash=h.hexdigest(),
                       size=(rgb.shape[1], rgb.shape[0]), bands=px)
