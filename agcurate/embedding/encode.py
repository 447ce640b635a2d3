"""``embed``: discover items, encode what the store lacks, return every item's vector.

Decoding and resizing run in DataLoader worker processes; the main process only batches, runs
the model and writes finished chunks to the store.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..encoders import DEFAULT_MODEL, Encoder, get_encoder
from ..encoders.runners import make_runner, resolve_device
from ..errors import NoUsableInputError
from ..items import Item, items_from_frame
from ..progress import progress_bar
from ..sources import Discovery, Skipped, SourceOptions, discover
from ..sources.remote import normalise_input
from ..system import cpu_threads
from .config import EmbedConfig
from .location import local_cache
from .store import ChunkWriter, EmbeddingStore, last_collection, remember_collection



@dataclass
class EmbedStats:
    """What one ``embed`` call did."""

    found: int = 0
    encoded: int = 0
    cached: int = 0
    skipped: int = 0
    ignored: int = 0
    seconds: float = 0.0
    encode_seconds: float = 0.0   # in encode_items: start-up, the encoding loop, the last write
    startup_seconds: float = 0.0  # of which before the loop: model build (weights, ONNX export)
    loop_seconds: float = 0.0     # of which the loop, up to the last batch encoded: what the bar times

    @property
    def rate(self) -> float:
        """Items encoded per second of the encoding loop (start-up not counted): the figure the
        progress bar ends on (0 when nothing was encoded)."""
        return self.encoded / self.loop_seconds if self.loop_seconds > 0 else 0.0


@dataclass
class Embeddings:
    """Vectors (float32, L2-normalised, one row per item) with the items' metadata and signals."""

    vectors: np.ndarray
    items: "pd.DataFrame"  # noqa: F821
    encoder: Encoder
    skipped: list[Skipped] = field(default_factory=list)
    stats: EmbedStats = field(default_factory=EmbedStats)
    store_dir: Path | None = None
    inputs: list[str] = field(default_factory=list)
    source_options: SourceOptions | None = None
    config: EmbedConfig | None = None  # the settings that produced these vectors

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def paths(self) -> list[str]:
        return self.items["path"].tolist()

    @property
    def keys(self) -> list[str]:
        return self.items["key"].tolist()

    def to_items(self) -> list[Item]:
        """Rebuild ``Item`` objects (e.g. to load pixels of some rows again)."""
        return items_from_frame(self.items)

    def subset(self, rows) -> "Embeddings":
        """The rows picked by a boolean mask or by integer positions."""
        rows = np.asarray(rows)
        if rows.dtype != bool:
            rows = rows.astype(np.int64)
        return Embeddings(self.vectors[rows], self.items.iloc[rows].reset_index(drop=True), self.encoder,
                          self.skipped, self.stats, self.store_dir, self.inputs, self.source_options, self.config)



GPU_WORKERS = 8  # decode workers that keep a GPU fed: lite0 @224 on an H100, 4000 JPEGs, end-to-end
                 # 758 img/s with 4 workers, 1468 with 8, 1380 with 15 (model alone: 15k img/s)


def default_workers(n_items: int, cuda: bool = False) -> int:
    """Decode workers: none for a handful of items (process start costs more), else up to 4 on CPU
    (the model needs the cores) and up to ``GPU_WORKERS`` on CUDA (decoding is the bottleneck),
    leaving one core to the main process."""
    if n_items < 32:
        return 0
    cores = cpu_threads()
    if cuda:
        return max(1, min(GPU_WORKERS, cores - 1))
    return max(1, min(4, cores))


def embed(paths: Iterable[str | Path] | None = None, model: str | None = None, *,
          config: EmbedConfig | None = None, source_options: SourceOptions | None = None,
          progress: bool | None = None, remember: bool = True, encoder: Encoder | None = None,
          on_listed: Callable[[list[Item]], None] | None = None, **options) -> Embeddings:
    """Embed every item under ``paths`` and return all vectors, encoding only what the store lacks.

    Settings come from ``config`` (an ``EmbedConfig``) with ``model`` and the keyword ``options``
    (any ``EmbedConfig`` field: ``store``, ``device``, ``workers``, ``tile``...) put on top.
    ``source_options`` overrides the item options the config implies; ``encoder`` an already
    resolved encoder (the config's model is then ignored). With ``paths=None`` the collection of
    the last ``embed`` in this store is used (and its model, when the model is left at the
    default). ``on_listed(items)`` is called with every item found, before any is encoded (a command
    can start work of its own on them meanwhile). Raises ``NoUsableInputError`` when nothing usable
    remains.
    """
    t0 = time.perf_counter()
    cfg = EmbedConfig.make(config, model=model, **options)
    root = cfg.store_root()
    if source_options is None:
        source_options = cfg.source_options()
    weights = str(cfg.weights) if cfg.weights else None
    image_size = cfg.image_size
    if paths is None:
        last = last_collection(root)
        paths = last["paths"]
        if cfg.model == DEFAULT_MODEL and encoder is None:
            cfg = replace(cfg, model=last.get("model", cfg.model))
            weights = last.get("weights")
            image_size = image_size or last.get("image_size")
        if source_options is None:
            source_options = SourceOptions(**last.get("source_options", {}))
    inputs = [normalise_input(p) for p in paths]  # a URL stays as given
    opts = source_options or SourceOptions()
    enc = encoder or get_encoder(cfg.model, weights=weights, image_size=image_size)
    if cfg.decode == "gpu":  # before any file is read: CUDA and a working device decoder, or a usage error
        from .gpu_decode import resolve_decode

        resolve_decode(cfg.decode, resolve_device(cfg.device), bands=bool(enc.bands), engine=cfg.engine)
    from ..encoders.bands import band_options
    from .bands import fit_bands

    opts = band_options(enc.bands, enc.stretch, opts)  # an encoder trained on bands picks them
    found = discover(inputs, opts)
    if on_listed is not None and found.items:
        on_listed(list(found.items))
    enc = fit_bands(enc, found.items, opts, inputs, local_cache(root), found.skipped)  # --bands all: the stem inflated
    st = EmbeddingStore(root, enc.id, enc.slug, enc.dim)
    stats = EmbedStats(found=len(found.items), ignored=found.ignored)
    skipped = list(found.skipped)
    if not found.items:
        st.write_skipped(skipped)
        raise NothingToEmbedError(inputs, found)

    cached = st.index()
    todo = [it for it in found.items if cached.get(it.key) != it.fingerprint]
    failed = encode_missing(todo, enc, st, opts, cfg, stats, progress=progress) if todo else []
    skipped += failed
    stats.cached = len(found.items) - stats.encoded - len(failed)  # incl. what another writer stored meanwhile
    bad = {s.key for s in skipped if s.key}
    keys = [it.key for it in found.items if it.key not in bad]
    stored = st.load(keys)
    st.compact(keep_keys=None)
    stats.skipped = len(skipped)
    st.write_skipped(skipped)
    if len(stored.vectors) == 0:
        raise NothingToEmbedError(inputs, found, skipped)
    if remember:
        remember_collection(root, {
            "paths": inputs, "model": enc.name, "weights": weights, "image_size": image_size,
            "source_options": asdict(opts), "encoder_id": enc.id, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })
    stats.seconds = time.perf_counter() - t0
    return Embeddings(stored.vectors, stored.items, enc, skipped, stats, st.dir, inputs, opts, cfg)


class NothingToEmbedError(NoUsableInputError):
    """No item under the inputs could be embedded; ``message(noun)`` words it for a command
    that looks for something else than images (``frames``: "no video found in ...")."""

    def __init__(self, inputs: Sequence[str], found: Discovery, skipped: Sequence[Skipped] | None = None):
        self.inputs = list(inputs)
        self.found = found
        self.skipped = list(skipped if skipped is not None else found.skipped)
        super().__init__(self.message())

    def message(self, noun: str = "image") -> str:
        where = ", ".join(self.inputs[:3]) + (" ..." if len(self.inputs) > 3 else "")
        if self.skipped:
            first = self.skipped[0]
            return (f"no usable {noun} in {where}: {len(self.skipped)} file(s) could not be read "
                    f"(first: {first.path}: {first.reason})")
        extra = f" ({self.found.ignored} other file(s) ignored)" if self.found.ignored else ""
        return f"no {noun} found in {where}{extra}"


# --- the encoding loop ----------------------------------------------------------------------------

def encode_missing(todo: Sequence[Item], enc: Encoder, st: EmbeddingStore, opts: SourceOptions,
                   config: EmbedConfig | None, stats: EmbedStats, *, progress: bool | None = None) -> list[Skipped]:
    """Encode the items of ``todo`` that the store still lacks, sharing the work with other writers.

    Each round claims what is neither stored nor claimed by another live ``embed`` (``st.claim``),
    encodes it, drops the claim, then waits for the writers holding the rest (a line on stderr says
    so) and looks again: what they stored is read, what they could not store is claimed anew. An
    item this call failed to decode is not tried twice. Adds to ``stats.encoded`` and
    ``stats.encode_seconds`` (time spent encoding, not waiting); returns the items that failed.
    """
    failed: list[Skipped] = []
    tried: set[str] = set()
    encode_fn = encode_items
    if config is not None and config.engine == "ray":
        from .ray_engine import encode_items_ray as encode_fn
    by_key = {it.key: it for it in todo}
    pending = dict(by_key)
    while pending:
        res = st.claim({k: it.fingerprint for k, it in pending.items()})
        try:
            if res.mine:
                t_enc = time.perf_counter()
                bad = encode_fn([by_key[k] for k in res.mine], enc, st, opts, config, progress=progress,
                                stats=stats)
                stats.encode_seconds += time.perf_counter() - t_enc
                stats.encoded += len(res.mine) - len(bad)
                failed += bad
                tried.update(res.mine)
            if res.claim is not None:
                res.claim.release()  # before waiting for anyone: no two writers wait for each other
            res.wait()
        finally:
            res.release()
        # left: what was missing and not tried here (others held it; they stored it or could not)
        pending = {k: it for k, it in pending.items() if k in res.missing and k not in tried}
    return failed


def encode_items(items: Sequence[Item], enc: Encoder, st: EmbeddingStore, opts: SourceOptions,
                 config: EmbedConfig | None = None, *, progress: bool | None = None,
                 stats: EmbedStats | None = None) -> list[Skipped]:
    """Encode ``items`` and append them to ``st`` in chunks; return the items that failed to decode.

    ``config`` says where and how the model runs (device, backend, batch size, workers, threads).
    ``stats.startup_seconds`` grows by the time before the loop (building the model),
    ``stats.loop_seconds`` by the loop's, as the progress bar times it.
    """
    t_start = time.perf_counter()
    import torch

    from .gpu_decode import BatchDecoder, resolve_decode
    from .loader import DecodeDataset, collate_rows, cpu_fallback, describe_device_decoded, fork_safe_opencv, worker_init

    cfg = config or EmbedConfig()
    dev = resolve_device(cfg.device)
    cuda = dev.startswith("cuda")
    batch_size = cfg.batch_size or (128 if cuda else 32)
    n_workers = default_workers(len(items), cuda) if cfg.workers is None else cfg.workers
    runner = make_runner(enc, dev, cfg.backend, cache_dir=cfg.onnx_cache(), threads=cfg.threads)
    decode = resolve_decode(cfg.decode, dev, bands=bool(enc.bands), engine=cfg.engine)
    dataset = DecodeDataset(items, opts, enc.input_size, bands=enc.bands, jpeg_bytes=decode == "gpu")
    prepare = BatchDecoder(enc.input_size, dev, cpu_fallback(enc.input_size), describe_device_decoded,
                           threads=max(1, n_workers))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=n_workers, collate_fn=collate_rows,
        pin_memory=False, worker_init_fn=functools.partial(worker_init, nice=0 if cuda else 19),
        persistent_workers=False,
        prefetch_factor=4 if n_workers else None,
    )
    failed: list[Skipped] = []
    chunks = ChunkWriter(st)
    with prepare, fork_safe_opencv(n_workers), progress_bar(len(items), f"embedding ({enc.name})", enabled=progress) as bar:
        t_loop = t_done = time.perf_counter()  # the bar's clock starts here too
        if stats is not None:
            stats.startup_seconds += t_loop - t_start
        for batch in loader:
            ready = prepare(batch)  # with GPU decode: JPEG bytes decoded and resized on the device
            for row, error in ready.failed:
                failed.append(Skipped(row["path"], error, key=row["key"]))
            x = ready.pixels
            if x is not None:
                if cuda and x.device.type == "cpu":
                    x = x.pin_memory()
                vectors = runner(x)
                ready.wait()  # the signals of device-decoded items, measured while the model ran
                chunks.add(ready.rows, vectors)
            bar.advance(batch["n"])
            t_done = time.perf_counter()
    if stats is not None:
        stats.loop_seconds += t_done - t_loop
    chunks.flush()
    return failed
