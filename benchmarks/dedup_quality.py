"""Near-duplicate detection quality on real images: agcurate dedup vs cosine threshold vs hashes.

Builds a set from ``shared/data`` (rice-leaf photos, EuroSAT patches, NEON aerial tiles): each base
image plus transformed copies (JPEG re-encode, resize, crop up to 15% per edge, brightness/contrast,
blur, slight rotation, 90/180 rotation; for rice leaves the data set's own rot90/rot180 copies) and
same-class hard negatives (other leaves of the same disease, other patches of the same class).
Prints pair precision / recall / F1 for each method. The "agcurate dedup" rows are ``agcurate.dedup``
itself (the workflow behind the CLI); the step-by-step rows and the threshold sweep use its public
pieces (``candidate_pairs``, ``turned_vectors``, ``pixel_loader`` + ``verify_pairs``). One run takes
a few minutes on 2 cores.

    PYTHONPATH=. python benchmarks/dedup_quality.py [--data ../shared/data] [--bases 20] [--keep-set DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRANSFORMS = ("jpeg", "resize", "crop", "bright", "blur", "rotate", "rot90", "rot180")


def transform(img: Image.Image, name: str, rng: random.Random) -> Image.Image:
    """One named change applied to ``img`` with random strength (seeded by ``rng``)."""
    w, h = img.size
    if name == "jpeg":
        return img  # the change is the lossy save below
    if name == "resize":
        s = rng.uniform(0.5, 0.8) if min(w, h) > 128 else rng.uniform(1.5, 2.0)
        return img.resize((max(8, round(w * s)), max(8, round(h * s))), Image.BICUBIC)
    if name == "crop":
        cut = [rng.uniform(0.03, 0.15) for _ in range(4)]
        return img.crop((round(cut[0] * w), round(cut[1] * h), w - round(cut[2] * w), h - round(cut[3] * h)))
    if name == "bright":
        img = ImageEnhance.Brightness(img).enhance(rng.choice([rng.uniform(0.65, 0.85), rng.uniform(1.15, 1.35)]))
        return ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.2))
    if name == "blur":
        return img.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.0) * max(w, h) / 256))
    if name == "rotate":
        return img.rotate(rng.choice([-1, 1]) * rng.uniform(2, 8), resample=Image.BICUBIC)
    if name == "rot90":
        return img.transpose(Image.ROTATE_90)
    if name == "rot180":
        return img.transpose(Image.ROTATE_180)
    raise ValueError(name)


def _pick(files: list[Path], n: int, rng: random.Random) -> list[Path]:
    return rng.sample(files, min(n, len(files)))


def _thumb(path: Path, k: int = 0) -> np.ndarray:
    a = np.rot90(np.asarray(Image.open(path).convert("L").resize((32, 32)), np.float32), k)
    a = a - a.mean()
    return (a / (np.linalg.norm(a) + 1e-6)).ravel()


def _rotated_copies(base: Path, candidates: list[Path]) -> list[Path]:
    """The data set's rotated files that are exactly this base turned (their numbers do not match
    the originals', so they are found by pixels: correlation >= 0.99 after turning back)."""
    t = _thumb(base)
    return [q for q in candidates if max(float(_thumb(q, k) @ t) for k in range(4)) >= 0.99]


def build_set(data: Path, out: Path, bases_per_class: int = 4, seed: int = 0) -> dict[str, int]:
    """Write the benchmark images under ``out``; returns file name -> group id (-1 = no duplicate)."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    truth: dict[str, int] = {}
    bases: list[tuple[str, Path, list[Path]]] = []  # (tag, base file, data-set rotated copies)
    negatives: list[Path] = []
    rice = data / "rice-leaf"
    for cls in ("Bacterial", "Brownspot", "Leafsmut"):
        originals = sorted(p for p in (rice / cls).glob(f"{cls}_*.jpg") if "_rot" not in p.name)
        chosen = _pick(originals, bases_per_class * 2, rng)
        rotated = sorted(p for p in (rice / cls).iterdir() if "_rot" in p.name)
        for p in chosen[:bases_per_class]:
            bases.append((f"rice-{cls}", p, _rotated_copies(p, rotated)))
        negatives += chosen[bases_per_class:]
    euro = data / "eurosat-rgb" / "images"
    for cls in sorted(d.name for d in euro.iterdir() if d.is_dir()):
        files = sorted((euro / cls).glob("*.jpg"))
        chosen = _pick(files, bases_per_class * 2, rng)
        bases += [(f"eurosat-{cls}", p, []) for p in chosen[:bases_per_class]]
        negatives += chosen[bases_per_class:]
    forest = data / "deepforest-aerial"
    for name in ("OSBS_029.png", "SOAP_061.png", "SOAP_031.png", "2019_YELL_2_541000_4977000_image_crop.png"):
        if (forest / name).exists():
            bases.append(("neon", forest / name, []))
    for gid, (tag, src, rots) in enumerate(bases):
        img = Image.open(src).convert("RGB")
        stem = f"{gid:03d}_{tag}_{src.stem}"
        img.save(out / f"{stem}.png" if src.suffix.lower() == ".png" else out / f"{stem}.jpg", quality=95)
        truth[f"{stem}.png" if src.suffix.lower() == ".png" else f"{stem}.jpg"] = gid
        names = rng.sample(TRANSFORMS, 4)
        for q in rots:  # the data set's own rotated copies are real duplicates
            Image.open(q).convert("RGB").save(out / f"{stem}_ds{q.stem.split('_')[1]}.jpg", quality=95)
            truth[f"{stem}_ds{q.stem.split('_')[1]}.jpg"] = gid
            names = [t for t in names if not t.startswith("rot")]
        for t in names:
            copy = transform(img, t, rng)
            fname = f"{stem}_{t}.jpg"
            copy.save(out / fname, quality=rng.randint(50, 75) if t == "jpeg" else 90)
            truth[fname] = gid
    for p in negatives:
        fname = f"neg_{p.parent.name}_{p.name}"
        shutil.copyfile(p, out / fname)
        truth[fname] = -1
    return truth


FLAT_STD = 2.0


def _spread(path: Path) -> float:
    """Grey-level standard deviation after a light blur: near 0 for a featureless patch."""
    from PIL import ImageFilter as F

    return float(np.asarray(Image.open(path).convert("L").filter(F.GaussianBlur(1)), np.float32).std())


def truth_pairs(truth: dict[str, int]) -> set[tuple[str, str]]:
    groups: dict[int, list[str]] = {}
    for f, g in truth.items():
        if g >= 0:
            groups.setdefault(g, []).append(f)
    return {tuple(sorted(p)) for fs in groups.values() for p in itertools.combinations(fs, 2)}


def group_pairs(groups: list[list[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for g in groups for p in itertools.combinations(g, 2)}


def dedup_groups(res) -> list[list[str]]:
    """File names per duplicate group of an ``agcurate.dedup`` result (its duplicates.csv rows)."""
    return [[Path(p).name for p in g["path"]] for _, g in res.table.groupby("group", sort=True)]


def prf(pred: set, true: set) -> tuple[float, float, float]:
    tp = len(pred & true)
    p = tp / len(pred) if pred else 1.0
    r = tp / len(true) if true else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def row(name: str, pred: set, true: set, note: str = "") -> None:
    p, r, f = prf(pred, true)
    print(f"{name:<44} {p:9.3f} {r:7.3f} {f:6.3f} {len(pred):7d}  {note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("AGCURATE_SHARED_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--bases", type=int, default=4, help="base images per class (rice: 3 classes, EuroSAT: 10)")
    ap.add_argument("--keep-set", default=None, help="write the set here and keep it (default: a temp dir)")
    ap.add_argument("--no-hashes", action="store_true", help="skip imagededup's hashes")
    args = ap.parse_args()

    import agcurate
    from agcurate.ops.dedup import DEFAULT_THRESHOLD, verify_pairs
    from agcurate.workflows.dedup import pixel_loader

    tmp = Path(args.keep_set) if args.keep_set else Path(tempfile.mkdtemp(prefix="agcurate-dedup-bench-"))
    set_dir = tmp / "images"
    saved = tmp / f"truth-{args.bases}.json"
    if saved.exists():  # a kept set is reused as it is (its embeddings stay cached)
        truth = json.loads(saved.read_text())
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        truth = build_set(Path(args.data), set_dir, args.bases)
        saved.write_text(json.dumps(truth))
    true = truth_pairs(truth)
    n_dup = sum(g >= 0 for g in truth.values())
    print(f"set: {len(truth)} images, {len(set(g for g in truth.values() if g >= 0))} groups "
          f"({n_dup} images in groups), {len(truth) - n_dup} hard negatives, {len(true)} true pairs")

    t0 = time.perf_counter()
    emb = agcurate.embed([set_dir], store=tmp / "store", progress=False)
    t_embed = time.perf_counter() - t0
    names = [Path(p).name for p in emb.paths]
    print(f"embedded with {emb.encoder.name} in {t_embed:.1f} s\n")
    print(f"{'method':<44} {'precision':>9} {'recall':>7} {'F1':>6} {'pairs':>7}")

    # 1. plain cosine threshold on the embeddings (pairs, no grouping)
    sims = emb.vectors @ emb.vectors.T
    iu = np.triu_indices(len(names), 1)
    all_pairs = [tuple(sorted((names[i], names[j]))) for i, j in zip(*iu)]
    s = sims[iu]
    is_true = np.array([p in true for p in all_pairs])
    best = (0.0, 0.0)
    for t in np.arange(0.50, 0.995, 0.005):
        sel = s >= t
        tp = int((sel & is_true).sum())
        p = tp / max(1, int(sel.sum()))
        r = tp / max(1, len(true))
        f = 2 * p * r / (p + r) if p + r else 0
        best = max(best, (f, t))
    for t, note in ((0.90, "fixed threshold"), (best[1], "best threshold chosen on the answers")):
        row(f"cosine >= {t:.3f}", {p for p, v in zip(all_pairs, s >= t) if v}, true, note)

    # 2. agcurate, step by step: candidates from kNN, + rotation-aware candidates, + verification
    from agcurate.ops.dedup import CANDIDATE_SIMILARITY, K, candidate_pairs
    from agcurate.embedding.rotations import turned_vectors

    t0 = time.perf_counter()
    turned = turned_vectors(emb, progress=False)  # emb's own config: cached in the same store
    t_turn = time.perf_counter() - t0

    def named(pairs):
        return {tuple(sorted((names[a], names[b]))) for a, b in pairs}

    plain = candidate_pairs(emb.vectors, CANDIDATE_SIMILARITY, K)
    rot = candidate_pairs(emb.vectors, CANDIDATE_SIMILARITY, K, turned)
    row(f"candidates: kNN k={K}, cosine >= {CANDIDATE_SIMILARITY}", named((a, b) for a, b, _ in plain), true,
        "before verification")
    row("candidates + turned 90/180 queries", named((a, b) for a, b, _ in rot), true,
        f"before verification; turned embeddings {t_turn:.1f} s")
    checked = verify_pairs([(a, b) for a, b, _ in rot], pixel_loader(emb.items))
    for t in (0.8, DEFAULT_THRESHOLD, 0.9, 0.95):
        row(f"  verified candidate pairs at {t} (no grouping)",
            named(p for p, c in checked.items() if c.score >= t), true)
    # 3. agcurate dedup itself (embeddings and turned embeddings come from the store's cache)
    for label, rotations in (("agcurate dedup --rotations", True), ("agcurate dedup (default)", False)):
        t0 = time.perf_counter()
        res = agcurate.dedup([set_dir], rotations=rotations, store=tmp / "store", progress=False)
        t_dedup = time.perf_counter() - t0
        groups = dedup_groups(res)
        row(f"{label}", group_pairs(groups), true, f"threshold {res.threshold}; {t_dedup:.1f} s")
    # featureless bases (calm water: grey spread under FLAT_STD levels) have no identity to find:
    # their copies are indistinguishable from other patches of the same colour, so report without them
    flat = {g for f, g in truth.items() if g >= 0 and _spread(set_dir / f) < FLAT_STD}
    if flat:
        keep_t = {p for p in true if truth[p[0]] not in flat}
        pred_t = {p for p in group_pairs(groups) if truth.get(p[0], -1) not in flat or truth.get(p[1], -1) not in flat}
        row(f"  same, without {len(flat)} featureless base(s)", pred_t, keep_t,
            f"{len(true) - len(keep_t)} of {len(true)} true pairs are copies of featureless patches")
    missed = sorted(true - group_pairs(groups))
    wrong = sorted(group_pairs(groups) - true)
    if missed:
        print("  missed e.g.:", ", ".join(f"{a}~{b}" for a, b in missed[:6]))
    if wrong:
        print("  wrong e.g.:", ", ".join(f"{a}~{b}" for a, b in wrong[:6]))

    # 4. perceptual hashes (imagededup)
    if not args.no_hashes:
        try:
            from imagededup import methods
        except ImportError:
            print("imagededup not installed: hashes skipped")
        else:
            for cls in ("PHash", "DHash", "WHash"):
                hasher = getattr(methods, cls)(verbose=False)
                t0 = time.perf_counter()
                dup = hasher.find_duplicates(image_dir=str(set_dir))
                pred = {tuple(sorted((a, b))) for a, bs in dup.items() for b in bs}
                row(f"imagededup {cls} (max distance 10)", pred, true, f"{time.perf_counter() - t0:.1f} s")
    if not args.keep_set:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
