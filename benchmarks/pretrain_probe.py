"""Benchmark: does `agcurate pretrain` beat the ImageNet lite0 init with few labels? And how fast is `probe`?

    PYTHONPATH=. python benchmarks/pretrain_probe.py --budget-min 8 --rice-budget-min 3

1. ``probe`` speed: 1,500 cached EuroSAT embeddings (lite0, 224 px), fractions 0.01/0.1/1 x 5 repeats.
2. Before: probe lite0 (ImageNet) on EuroSAT-RGB (1,500 patches, 10 classes) and on the rice-leaf
   originals (``<Class>_<n>.jpg`` without ``_rot``; 180 images, 3 classes), at ``--embed-size``.
3. ``pretrain`` (SimCLR from lite0) on each collection, unlabeled, for a wall-clock budget: a few
   calibration steps measure the speed and the run is sized to fit. It trains one epoch at a time
   (stop, then ``--resume``), exports each epoch's checkpoint and probes it: the learning curve.
4. After: probe ``file:model.pt`` against lite0 at the same input size; print the differences.

The machine it runs on is noted: on a shared 2-core CPU the budget buys very few epochs, so
the script also prints images/s, from which the time for a longer run follows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AGCURATE_NO_PROGRESS", "1")


def rice_originals(root: Path) -> list[str]:
    return sorted(str(p) for p in root.glob("*/*.jpg") if "_rot" not in p.name)


def probe_at(paths, model, store, size, fractions, repeats, label="") -> dict:
    """10%-label linear accuracy and the full summary for one model at one input size."""
    import agcurate

    t0 = time.perf_counter()
    res = agcurate.probe(paths, labels_from_folders=True, models=[model], fractions=fractions, repeats=repeats,
                         store=store, image_size=size, progress=False)
    s = res.summary
    emb = res.embeddings[model]
    out = {"model": label or model, "size": size, "items": len(emb), "encoded": emb.stats.encoded,
           "embed_s": round(emb.stats.seconds, 1), "probe_s": round(res.probe_seconds[model], 1),
           "total_s": round(time.perf_counter() - t0, 1)}
    for r in s.itertuples():
        out[f"{r.classifier}@{r.fraction:g}"] = round(100 * r.accuracy_mean, 2)
        out[f"{r.classifier}@{r.fraction:g}_std"] = round(100 * r.accuracy_std, 2)
        out[f"{r.classifier}@{r.fraction:g}_f1"] = round(100 * r.macro_f1_mean, 2)
    return out


def show(rows: list[dict], keys=("linear@0.01", "linear@0.1", "linear@1", "knn@0.01", "knn@0.1", "knn@1")) -> None:
    print(f"    {'model':<34} {'size':>4} " + " ".join(f"{k:>12}" for k in keys))
    for r in rows:
        cells = " ".join(f"{r.get(k, float('nan')):>6.2f}±{r.get(k + '_std', 0):<5.2f}" for k in keys)
        print(f"    {r['model']:<34} {str(r['size'] or 224):>4} {cells}")


def plan(name, paths, workdir: Path, args, budget_s: float) -> tuple[int, int | None]:
    """Epochs (and a step cap when not even one epoch fits) for the budget, from a few timed steps."""
    import torch

    import agcurate

    if args.epochs:
        return args.epochs, None
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cal = agcurate.pretrain(paths, workdir / "calibration.pt",
                            agcurate.PretrainConfig(epochs=1, max_steps_per_epoch=args.calibration_steps,
                                                    **train_kwargs(args, 0)),
                            progress=False)
    step_s = cal.history[0]["seconds"] / max(1, len(cal.step_losses))
    n = len(cal.step_losses) and cal.n_items
    steps_per_epoch = max(1, n // min(args.batch_size, n))
    affordable = max(1, int(budget_s / step_s))
    epochs, cap = (affordable // steps_per_epoch, None) if affordable >= steps_per_epoch else (1, affordable)
    print(f"  {name}: calibration {len(cal.step_losses)} steps in {time.perf_counter() - t0:.0f} s -> "
          f"{step_s:.1f} s/step ({args.batch_size / step_s:.1f} images/s at {args.image_size} px, "
          f"{torch.get_num_threads()} threads); budget {budget_s / 60:.1f} min -> {epochs} epoch(s) of "
          f"{cap or steps_per_epoch}/{steps_per_epoch} steps; one epoch would take {steps_per_epoch * step_s / 60:.1f} min",
          flush=True)
    return epochs, cap


def train_kwargs(args, embed_size) -> dict:
    return dict(method=args.method, init="lite0", batch_size=args.batch_size, image_size=args.image_size,
                embed_size=embed_size or None, lr=args.lr, temperature=args.temperature, seed=0,
                workers=args.workers)


def train_with_curve(name, paths, workdir: Path, args, epochs: int, cap: int | None, fractions, repeats,
                     store, size):
    """Train ``epochs`` epochs in chunks (stop, then ``resume``), probing the encoder after each chunk."""
    import agcurate
    from agcurate.training import export_checkpoint

    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = workdir / "model.pt.ckpt"
    ckpt.unlink(missing_ok=True)
    points, last, total_train = [], None, 0.0
    every = max(1, args.probe_every or (1 if epochs <= 10 else epochs // 8))
    for e in [*range(every, epochs, every), epochs]:
        cfg = agcurate.PretrainConfig(epochs=epochs, max_steps_per_epoch=cap, **train_kwargs(args, size))

        def stop(rec, e=e):
            if rec["epoch"] == e and e < epochs:
                raise KeyboardInterrupt  # the checkpoint of epoch e is on disk

        t = time.perf_counter()
        try:
            agcurate.pretrain(paths, workdir / "model.pt", cfg, resume=bool(points), progress=False,
                              on_epoch_end=stop, log=lambda m: print("    " + m, flush=True),
                              keep_checkpoint=True)  # exported below, after the last chunk too
        except KeyboardInterrupt:
            pass
        total_train += time.perf_counter() - t
        out = export_checkpoint(ckpt, workdir / f"epoch{e}.pt")
        last = probe_at(paths, f"file:{out}", store, size, fractions, repeats, label=f"{name} pretrained ep{e}")
        points.append({"epoch": e, "train_s": round(total_train), "linear@0.1": last["linear@0.1"],
                       "knn@0.1": last["knn@0.1"], "linear@0.01": last["linear@0.01"]})
        print(f"    after epoch {e}: 10%-label linear {last['linear@0.1']:.2f}, k-NN {last['knn@0.1']:.2f}; "
              f"1%-label linear {last['linear@0.01']:.2f} (training so far {total_train:.0f} s)", flush=True)
    return last, points, total_train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("AGCURATE_SHARED_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--store", type=Path, default=ROOT / ".bench" / "store")
    ap.add_argument("--work", type=Path, default=ROOT / ".bench" / "pretrain_probe")
    ap.add_argument("--budget-min", type=float, default=8.0, help="EuroSAT pretraining wall-clock budget")
    ap.add_argument("--rice-budget-min", type=float, default=3.0)
    ap.add_argument("--epochs", type=int, default=0, help="fixed number of epochs instead of the budget")
    ap.add_argument("--method", default="simclr")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--embed-size", type=int, default=112)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--temperature", type=float, default=0.2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--calibration-steps", type=int, default=3)
    ap.add_argument("--probe-every", type=int, default=0, help="epochs between probes (default: ~8 probes per run)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-rice", action="store_true")
    ap.add_argument("--skip-eurosat", action="store_true")
    args = ap.parse_args()

    import torch

    fractions = (0.01, 0.1, 1.0)
    eurosat = args.data / "eurosat-rgb" / "images"
    rice = args.data / "rice-leaf"
    print(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, torch {torch.__version__}, "
          f"cuda {torch.cuda.is_available()}")
    results = {}

    # 1. probe speed on 1,500 cached embeddings (lite0 at its default 224 px)
    import agcurate
    from agcurate.ops.probe import probe
    from agcurate.workflows.labels import labels_from_folders

    emb = agcurate.embed([eurosat], "lite0", store=args.store, progress=False)
    y = labels_from_folders(emb.paths).astype(str)
    t = time.perf_counter()
    runs = probe(emb.vectors, y, fractions=fractions, repeats=5, seed=0)
    probe_s = time.perf_counter() - t
    print(f"probe speed: {len(y)} items x {len(fractions)} fractions x 5 repeats x 2 classifiers "
          f"({len(runs)} scored runs) in {probe_s:.1f} s (embedding from cache: {emb.stats.seconds:.1f} s, "
          f"{emb.stats.encoded} newly encoded)")
    results["probe_seconds_1500x3x5"] = round(probe_s, 2)
    ref = probe_at([eurosat], "lite0", args.store, None, fractions, args.repeats, label="lite0 (224, default)")

    for name, paths, budget in (("eurosat", [str(eurosat)], args.budget_min),
                                ("rice", rice_originals(rice), args.rice_budget_min)):
        if (name == "rice" and args.skip_rice) or (name == "eurosat" and args.skip_eurosat):
            continue
        print(f"\n== {name}: {len(paths) if name == 'rice' else 1500} images ==")
        before = probe_at(paths, "lite0", args.store, args.embed_size, fractions, args.repeats,
                          label=f"lite0 ImageNet")
        rows = [before] + ([ref] if name == "eurosat" else [])
        epochs, cap = plan(name, paths, args.work / name, args, budget * 60)
        after, points, train_s = train_with_curve(name, paths, args.work / name, args, epochs, cap, fractions,
                                                  args.repeats, args.store, args.embed_size)
        rows.append(after)
        print(f"  accuracy (%) mean±std over {args.repeats} repeats; fraction 1 = 5-fold CV:")
        show(rows)
        d = after["linear@0.1"] - before["linear@0.1"]
        print(f"  10%-label linear probe: {before['linear@0.1']:.2f} -> {after['linear@0.1']:.2f} "
              f"({d:+.2f} points) after {train_s / 60:.1f} min of pretraining")
        results[name] = {"before": before, "after": after, "train_s": round(train_s), "curve": points}
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nresults: {args.work / 'results.json'}")


if __name__ == "__main__":
    main()
