"""The training loop: initial backbone, data, epochs with checkpoints, and the exported encoder."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AgcurateError, NoUsableInputError
from ..sources import Skipped, SourceOptions, discover
from .augment import AugmentConfig

CHECKPOINT_FORMAT = "agcurate-pretrain/1"  # encoders.checkpoint.TRAINING_FORMAT names it too
LITE0_ARCH = "timm:tf_efficientnet_lite0"


@dataclass
class PretrainConfig:
    """Everything that defines a training run; stored in the checkpoint and in ``model.pt``.

    ``None`` means "pick for the device": batch 256 / image 224 on CUDA, batch 64 / image 128 on
    CPU. ``embed_size`` is the input size written into ``model.pt`` (default: the initial
    encoder's, so embeddings before and after pretraining are taken at the same size).
    """

    method: str = "simclr"
    init: str = "lite0"
    epochs: int = 10
    batch_size: int | None = None
    image_size: int | None = None
    embed_size: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    temperature: float = 0.2
    local_views: int = 2
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    threads: int | None = None
    max_steps_per_epoch: int | None = None
    bands: str | None = None    # --bands: all (or 4+ bands) trains a band encoder; 1 or 3 a picture
    stretch: str | None = None  # --stretch LO,HI of raster values to 8 bits
    tile: int | None = None     # --tile: train on tiles of large rasters and images
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["augment"] = self.augment.to_dict()
        return d


@dataclass
class PretrainResult:
    """What a run did: files written, per-epoch history and every step's loss.

    ``checkpoint`` is the training checkpoint when it was kept (``keep_checkpoint``), else None:
    a finished run removes it.
    """

    out: Path
    checkpoint: Path | None
    epochs_done: int
    start_epoch: int
    history: list[dict]
    step_losses: list[float]
    n_items: int
    skipped: list[Skipped]
    device: str
    config: dict
    seconds: float
    bands: tuple | None = None  # the encoder's bands, when it is a band encoder


@dataclass
class Backbone:
    """An initial network and what ``save_encoder`` needs to describe it."""

    module: "torch.nn.Module"  # noqa: F821
    arch: str
    dim: int
    input_size: int
    mean: tuple
    std: tuple
    bands: tuple | None = None   # a band encoder's bands (its stem takes one channel per band)
    stretch: str | None = None


def init_backbone(init: str) -> Backbone:
    """``lite0`` (ImageNet), ``scratch`` (random lite0; ``scratch:timm:NAME`` another), or any ``--model``."""
    from ..encoders.hub import build_skeleton
    from ..encoders.lite0 import TF_MEAN, TF_STD

    if init in ("lite0", "scratch") or init.startswith("scratch:"):
        arch = init.partition(":")[2] or LITE0_ARCH
        if init == "lite0":
            from ..encoders.lite0 import build_backbone

            module = build_backbone()
        else:
            module = build_skeleton(arch)
        mean, std = (TF_MEAN, TF_STD) if arch == LITE0_ARCH else _imagenet()
        return Backbone(module, arch, _dim(module), 224, tuple(mean), tuple(std))
    from ..encoders import get_encoder, read_checkpoint

    enc = get_encoder(init)
    if enc.name.startswith(("timm:", "torchvision:")):
        arch = enc.name
    elif enc.name.startswith("file:"):
        arch = read_checkpoint(enc.name[5:])["arch"]
    else:
        raise AgcurateError(f"--init {init}: cannot tell the architecture of {enc.name} to save it again")
    return Backbone(enc.build(), arch, enc.dim, enc.input_size, tuple(enc.mean), tuple(enc.std), enc.bands, enc.stretch)


def fit_backbone_bands(bb: Backbone, items, opts: SourceOptions, say: Callable[[str], None]) -> None:
    """Give ``bb`` the bands of a multi-band collection (``--bands all``), in place: its stem inflated
    to them and per-band normalisation measured on the collection; a band encoder's own bands are
    checked instead. Pictures leave it as it is."""
    from ..embedding.bands import STATS_SAMPLE, band_statistics, rgb_positions
    from ..encoders import bands as stem
    from ..encoders.bands import check_items_bands, collection_bands, variant_bands, variant_stretch

    if bb.bands:
        check_items_bands(bb.bands, items, f"--init {bb.arch} (trained on bands)")
        return
    bands = collection_bands(items)
    if bands is None:
        return
    first = next(it for it in items if variant_bands(it) == bands)
    positions = rgb_positions(first, bands)
    band_mean = band_std = None
    if stem.BAND_NORM == "collection":
        band_mean, band_std = band_statistics(items, opts)
    stem.inflate_stem(bb.module, positions, stem.STEM_EXTRA)
    bb.mean, bb.std = stem.band_normalisation(stem.BAND_NORM, positions, band_mean, band_std, bb.mean, bb.std)
    bb.bands, bb.stretch = tuple(bands), variant_stretch(first)
    how = (f"per-band statistics from {min(len(items), STATS_SAMPLE)} items" if band_mean is not None
           else "the picture's normalisation on the fixed stretch")
    say(f"training a {len(bands)}-band encoder ({','.join(bands)}); the other bands start at "
        f"{stem.STEM_EXTRA:g} of the colours' stem weight; {how}")


def _imagenet():
    from ..encoders.base import IMAGENET_MEAN, IMAGENET_STD

    return IMAGENET_MEAN, IMAGENET_STD


def _dim(module) -> int:
    n = getattr(module, "num_features", None)
    if n:
        return int(n)
    import torch

    with torch.inference_mode():
        return int(module.eval()(torch.zeros(1, 3, 64, 64)).flatten(1).shape[1])


def training_threads() -> int:
    """CPU threads for training: the usable cores that other processes leave idle (at least one).

    On a busy machine every multi-threaded operator waits for its slowest, descheduled thread:
    measured on a loaded 2-core machine, one thread trained lite0 six times faster than two.
    """
    from ..system import cpu_threads

    n = cpu_threads()
    if "AGCURATE_THREADS" in os.environ:
        return n
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return n
    return max(1, min(n, int(n - load + 0.5)))  # the cores other processes leave free


def default_checkpoint(out: str | Path) -> Path:
    """The training checkpoint beside the output: ``model.pt`` -> ``model.pt.ckpt``."""
    out = Path(out)
    return out.with_name(out.name + ".ckpt")


def pretrain(paths: Iterable[str | Path] | None, out: str | Path = "model.pt",
             config: PretrainConfig | None = None, *, pairs: str | Path | None = None,
             resume: bool = False, checkpoint: str | Path | None = None,
             source_options: SourceOptions | None = None, store: str | Path | None = None,
             progress: bool | None = None, log: Callable[[str], None] | None = None,
             on_epoch_end: Callable[[dict], None] | None = None, keep_checkpoint: bool = False) -> PretrainResult:
    """Train a backbone self-supervised on the items under ``paths`` and save it as ``out``.

    A checkpoint (model, heads, optimizer, epoch) is written after every epoch; with ``resume``
    an interrupted run continues from it. Once ``out`` is written the checkpoint (several times
    the size of ``out``) is removed, unless ``keep_checkpoint``. ``out`` holds the backbone only,
    usable as ``file:out``. ``agcurate.pretrain`` (the workflow) checks ``config`` before calling this.
    """
    import torch

    from ..embedding.loader import fork_safe_opencv
    from ..encoders.bands import band_options
    from ..progress import progress_bar
    from ..encoders.runners import resolve_device
    from .augment import make_views
    from .data import ViewsDataset, collate_views, seed_worker
    from .methods import build_method

    t0 = time.perf_counter()
    cfg = config or PretrainConfig()
    say = log or (lambda _msg: None)
    out = Path(out).expanduser().resolve()
    ckpt_path = Path(checkpoint).expanduser().resolve() if checkpoint else default_checkpoint(out)
    dev = resolve_device(cfg.device)
    cuda = dev.startswith("cuda")
    state = None
    if resume and ckpt_path.exists():
        state = load_training_checkpoint(ckpt_path)
        _check_compatible(state["config"], cfg)
    elif resume:
        say(f"no checkpoint at {ckpt_path}: starting from the beginning")
    cfg.batch_size = cfg.batch_size or (256 if cuda else 64)
    cfg.image_size = cfg.image_size or (224 if cuda else 128)
    opts = source_options or SourceOptions(tile=cfg.tile, bands=cfg.bands, stretch=cfg.stretch)
    bb = init_backbone(cfg.init)
    opts = band_options(bb.bands, bb.stretch, opts)  # an encoder trained on bands goes on with them

    entries, skipped = _entries(paths, pairs, opts, store)
    if len(entries) < 2:
        raise NoUsableInputError(f"pretraining needs at least 2 images, found {len(entries)}")
    _seed_everything(cfg.seed)
    if not cuda:
        threads = cfg.threads or training_threads()
        torch.set_num_threads(threads)
        say(f"training on CPU with {threads} thread(s)")
    # no cudnn.benchmark on CUDA: autotuning lite0's convolutions took 36 s on the first step
    # (H100, batch 64) for no faster steps afterwards (66 ms either way)

    fit_backbone_bands(bb, [it for entry in entries for it in entry], opts, say)
    cfg.embed_size = cfg.embed_size or bb.input_size
    model = build_method(cfg.method, bb.module, bb.dim, temperature=cfg.temperature, epochs=cfg.epochs)
    model = model.to(dev).to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    history: list[dict] = []
    step_losses: list[float] = []
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if cuda and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history, step_losses = list(state["history"]), list(state["step_losses"])
        start_epoch = int(state["epoch"])
        say(f"resuming from {ckpt_path} after epoch {start_epoch}")

    channels = len(bb.mean)  # 3, or one per band of a band encoder
    views = make_views(cfg.method, channels, cfg.image_size, bb.mean, bb.std, cfg.augment, cfg.local_views)
    dataset = ViewsDataset(entries, opts, views, cfg.image_size)
    batch = min(cfg.batch_size, len(dataset))
    if batch < 2:
        raise NoUsableInputError("pretraining needs batches of at least 2 images")
    from ..embedding.encode import default_workers

    n_workers = default_workers(len(dataset), cuda) if cfg.workers is None else max(0, cfg.workers)
    gen = torch.Generator()
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=n_workers,
        collate_fn=collate_views, worker_init_fn=seed_worker, generator=gen, pin_memory=cuda,
        persistent_workers=False, prefetch_factor=4 if n_workers else None)
    steps_per_epoch = len(loader)
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)

    def autocast():
        return torch.autocast("cuda", dtype=torch.float16, enabled=cuda) if cuda else _null()

    failed_paths: dict[str, str] = {}
    images_total = steps_per_epoch * batch * max(0, cfg.epochs - start_epoch)
    with fork_safe_opencv(n_workers), progress_bar(images_total, f"{cfg.method} pretraining",
                                                   enabled=progress, unit="img") as bar:
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            gen.manual_seed(cfg.seed * 100_003 + epoch)  # same order whether resumed or not
            _seed_everything(cfg.seed * 100_003 + epoch)
            t_ep, seen, losses = time.perf_counter(), 0, []
            for i, b in enumerate(loader):
                if i >= steps_per_epoch:
                    break
                for path, reason in b["failed"]:
                    failed_paths.setdefault(path, reason)
                if b["n"] < 2:
                    continue
                step = epoch * steps_per_epoch + i
                lr = cfg.lr * lr_factor(step, total_steps, warmup_steps)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                x = [v.to(dev, non_blocking=cuda).contiguous(memory_format=torch.channels_last)
                     for v in b["views"]]
                loss = model.loss(x, autocast=autocast, epoch=epoch)
                if not torch.isfinite(loss):
                    raise AgcurateError(f"training diverged at epoch {epoch + 1} (loss {loss.item()}); "
                                        "try a lower --lr")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                model.after_backward(epoch)
                scaler.step(optimizer)
                scaler.update()
                model.after_step(step + 1, total_steps)
                value = float(loss.detach())
                losses.append(value)
                step_losses.append(value)
                seen += b["n"]
                bar.advance(len(b["views"][0]) + len(b["failed"]))
                bar.update(description=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs} loss {value:.3f}")
            secs = time.perf_counter() - t_ep
            rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else float("nan"),
                   "images": seen, "seconds": round(secs, 2), "images_per_s": round(seen / secs, 2) if secs else 0.0,
                   "lr": lr if losses else 0.0}
            history.append(rec)
            save_training_checkpoint(ckpt_path, {
                "format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "config": cfg.to_dict(),
                "arch": bb.arch, "encoder": {"dim": bb.dim, "mean": list(bb.mean), "std": list(bb.std),
                                             "bands": list(bb.bands or []), "stretch": bb.stretch,
                                             "items": len(entries), "pairs": str(pairs or "")},
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if cuda else {}, "history": history, "step_losses": step_losses,
            })
            say(f"epoch {epoch + 1}/{cfg.epochs}: loss {rec['loss']:.4f}, {rec['images_per_s']:.1f} images/s, "
                f"{secs:.0f} s (checkpoint {ckpt_path.name})")
            if on_epoch_end is not None:
                on_epoch_end(rec)

    export_checkpoint(ckpt_path, out)
    if not keep_checkpoint:  # only now: an interrupted run keeps it for --resume
        ckpt_path.unlink(missing_ok=True)
    skipped += [Skipped(p, r) for p, r in failed_paths.items()]
    return PretrainResult(out=out, checkpoint=ckpt_path if keep_checkpoint else None, epochs_done=cfg.epochs, start_epoch=start_epoch,
                          history=history, step_losses=step_losses, n_items=len(entries), skipped=skipped,
                          device=dev, config=cfg.to_dict(), seconds=time.perf_counter() - t0,
                          bands=bb.bands)


EXPORTED_PREFIX = {"simclr": "backbone.", "dino": "teacher_backbone."}  # DINO keeps the teacher


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the encoder (backbone only, heads dropped) of a training checkpoint as ``out``.

    Used at the end of every run, and to get a usable encoder out of an interrupted one.
    """
    from ..encoders import save_encoder
    from ..encoders.bands import with_channels
    from ..encoders.hub import build_skeleton

    state = load_training_checkpoint(Path(checkpoint))
    cfg, info = state["config"], state["encoder"]
    prefix = EXPORTED_PREFIX[cfg["method"]]
    weights = {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}
    backbone = with_channels(build_skeleton(state["arch"]), len(info["mean"]))
    backbone.load_state_dict(weights)
    return save_encoder(out, backbone, arch=state["arch"], dim=info["dim"], input_size=cfg["embed_size"],
                        mean=info["mean"], std=info["std"], bands=info.get("bands") or None,
                        stretch=info.get("stretch"),
                        config={**cfg, "arch": state["arch"], "items": info["items"], "pairs": info["pairs"],
                                "epochs_done": state["epoch"], "history": state["history"],
                                "training_checkpoint": str(checkpoint)})


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero (a function of the step: resuming needs no state)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    rest = max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / rest)))


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _entries(paths, pairs, opts: SourceOptions, store) -> tuple[list[tuple], list[Skipped]]:
    from .data import pair_items, read_pairs

    if pairs:
        return pair_items(read_pairs(pairs), opts)
    if paths is None:
        from ..embedding.store import last_collection, resolve_store_root

        paths = last_collection(resolve_store_root(store))["paths"]
    paths = [str(p) for p in paths]
    found = discover(paths, opts)
    if not found.items:
        raise NoUsableInputError(f"no image found in {', '.join(paths[:3])}")
    return [(it,) for it in found.items], list(found.skipped)


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_training_checkpoint(path: Path, payload: dict) -> None:
    """Write atomically (temporary name, then rename): a crash leaves the previous checkpoint."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_training_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by ``pretrain``; a foreign or broken file is a clear error."""
    from ..encoders.checkpoint import load_torch_file

    state = load_torch_file(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise AgcurateError(f"{path} is not an agcurate pretraining checkpoint")
    return state


def _check_compatible(saved: dict, cfg: PretrainConfig) -> None:
    for key in ("method", "init", "bands"):
        if saved.get(key) != getattr(cfg, key):
            raise AgcurateError(f"cannot resume: the checkpoint was trained with --{key} {saved.get(key)}, "
                                f"this run asks for {getattr(cfg, key)}")
    for key in ("batch_size", "image_size", "embed_size"):  # keep the saved run's choices unless given
        if getattr(cfg, key) is None:
            setattr(cfg, key, saved.get(key))
