"""``--engine ray``: encode on Ray Data, writing the same store as the local engine.

The driver lists the items (the same sources as the local engine, so images, video frames, tiles
and band folders alike) and what the store lacks; Ray Data then decodes whole groups (a file and
all its frames or tiles) in tasks (``DecodeDataset``, as the local decode workers do) and encodes
batches in a pool of encoder actors (``map_batches`` with an actor class: ONNX Runtime or torch
on CPU actors, torch with ``num_gpus=1`` per actor where the cluster has GPUs). The vectors come
back to the driver, which writes them as store parts chunk by chunk (a killed run keeps every chunk
written; the next run skips those items) and shows the progress bar.

Ray is an optional extra (``pip install 'agcurate[ray]'``); it is imported only here.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Sequence

import numpy as np

from ..encoders import Encoder
from ..errors import UsageError
from ..items import Item
from ..progress import progress_bar
from ..sources import Skipped, SourceOptions
from .config import EmbedConfig
from .store import ChunkWriter, EmbeddingStore

GROUPS_PER_TASK = 8  # files (with all their frames or tiles) decoded per Ray task call


def import_ray():
    """The ``ray`` module with Ray Data; a usage error saying how to install it when missing."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise UsageError("--engine ray needs Ray Data: pip install 'agcurate[ray]'") from exc
    return ray


def connect(address: str | None):
    """Use the Ray this process is connected to, else connect to ``address`` (None: start a local
    one on this machine's cores; ``auto``: the cluster this machine belongs to)."""
    ray = import_ray()
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import logging

        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False, configure_logging=False)
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset INFO lines
    return ray


def actor_plan(resources: dict, cfg: EmbedConfig) -> dict:
    """How many encoder actors, with what each reserves: one per GPU where the cluster has GPUs
    (unless ``--device cpu``), else CPU actors of up to 4 threads on about half the CPUs (the
    other half decodes). ``cfg.threads`` sets the threads per CPU actor."""
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    if gpus and cfg.device != "cpu":
        return {"actors": gpus, "num_gpus": 1, "num_cpus": 1, "device": "cuda", "threads": None}
    if cfg.device.startswith("cuda"):
        raise UsageError(f"--device {cfg.device}: the Ray cluster has no GPU")
    threads = cfg.threads or min(4, max(1, cpus // 2))
    actors = max(1, (cpus // 2) // threads)
    return {"actors": actors, "num_gpus": 0, "num_cpus": threads, "device": "cpu", "threads": threads}


def group_items(items: Sequence[Item]) -> list[list[Item]]:
    """Items by decode group (a file with all its frames or tiles), in first-seen order."""
    groups: dict[str, list[Item]] = {}
    for it in items:
        groups.setdefault(it.group, []).append(it)
    return list(groups.values())


def decode_groups(batch: dict, opts: SourceOptions, size: int, bands, channels: int) -> dict:
    """Ray task: decode pickled item groups into store rows (JSON), pixels and errors."""
    from .loader import DecodeDataset

    items = [it for blob in batch["items"] for it in pickle.loads(blob)]
    rows, pixels, errors = [], [], []
    blank = np.zeros((channels, size, size), np.uint8)
    for out in DecodeDataset(items, opts, size, bands=bands):
        rows.append(json.dumps(out["row"]))
        pixels.append(blank if out["pixels"] is None else out["pixels"].numpy())
        errors.append("" if out["pixels"] is not None else str(out["error"]))
    if not rows:
        return {"row": np.array([], object), "pixels": np.zeros((0, channels, size, size), np.uint8),
                "error": np.array([], object)}
    return {"row": np.array(rows, object), "pixels": np.stack(pixels), "error": np.array(errors, object)}


class EncoderActor:
    """Ray actor: builds the encoder's runner once, then turns pixel batches into vectors."""

    def __init__(self, encoder: Encoder, device: str, backend: str, threads: int | None, cache_dir: str):
        from ..encoders.runners import make_runner

        self.dim = encoder.dim
        self.runner = make_runner(encoder, device, backend, cache_dir=cache_dir, threads=threads)

    def __call__(self, batch: dict) -> dict:
        import torch

        ok = batch["error"] == ""
        vectors = np.zeros((len(ok), self.dim), np.float32)
        if ok.any():
            vectors[ok] = self.runner(torch.from_numpy(np.ascontiguousarray(batch["pixels"][ok])))
        return {"row": batch["row"], "error": batch["error"], "vector": vectors}


def encode_items_ray(items: Sequence[Item], enc: Encoder, st: EmbeddingStore, opts: SourceOptions,
                     config: EmbedConfig | None = None, *, progress: bool | None = None,
                     stats=None) -> list[Skipped]:
    """``encode_items`` on Ray Data: same arguments, same store rows; returns the items that failed."""
    t_start = time.perf_counter()
    cfg = config or EmbedConfig(engine="ray")
    ray = connect(cfg.address)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows agcurate's own bar
    plan = actor_plan(ray.cluster_resources(), cfg)
    batch_size = cfg.batch_size or (128 if plan["device"] == "cuda" else 32)
    groups = group_items(items)
    ds = ray.data.from_items([{"items": pickle.dumps(g)} for g in groups],
                             override_num_blocks=max(1, min(len(groups), 4 * plan["actors"] * 8)))
    # decode in tasks (retried if a node is lost; that task-only argument also keeps Ray from fusing
    # decoding into the encoder actors, where it would run one batch at a time)
    ds = ds.map_batches(decode_groups, batch_size=GROUPS_PER_TASK, batch_format="numpy", num_cpus=1, max_retries=3,
                        fn_kwargs={"opts": opts, "size": enc.input_size, "bands": enc.bands,
                                   "channels": enc.channels})
    ds = ds.map_batches(
        EncoderActor, batch_size=batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=plan["actors"]),  # Ray >= 2.51: not concurrency=
        num_cpus=plan["num_cpus"], num_gpus=plan["num_gpus"],
        fn_constructor_kwargs={"encoder": enc, "device": plan["device"], "backend": cfg.backend,
                               "threads": plan["threads"], "cache_dir": str(cfg.onnx_cache())})
    failed: list[Skipped] = []
    chunks = ChunkWriter(st)
    t_loop = t_done = time.perf_counter()
    if stats is not None:
        stats.startup_seconds += t_loop - t_start
    with progress_bar(len(items), f"embedding ({enc.name}) on Ray", enabled=progress) as bar:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            rows, good = [], []
            for i, (row, err) in enumerate(zip(batch["row"], batch["error"])):
                row = json.loads(row)
                if err:
                    failed.append(Skipped(row["path"], err, key=row["key"]))
                else:
                    rows.append(row)
                    good.append(i)
            if rows:
                chunks.add(rows, batch["vector"][good])
            bar.advance(len(batch["row"]))
            t_done = time.perf_counter()
    if stats is not None:
        stats.loop_seconds += t_done - t_loop
    chunks.flush()
    return failed
