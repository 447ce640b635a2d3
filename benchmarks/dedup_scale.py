"""dedup at scale: candidates + verification for N items (default 100,000) with planted copies.

The items are 64 px tiles cut from real pictures in ``shared/data`` (NEON aerial rasters, maize
photos, video frames), generated on demand (nothing is written), so the figures are those of
``ops.dedup.find_duplicates`` itself: the embedding stage is replaced by synthetic vectors with
the structure of a warm store (clusters of look-alikes with cosine ~0.6-0.85 and planted copies
at ~0.93-0.99), which is what decides how many pairs reach pixel verification. 2% of the items
are copies of another (mirrored, turned, cropped, re-encoded). A warm store keeps the approximate
neighbour index of its vectors (``embedding.ann_index``): it is built first and timed apart, then
attached to the vectors as the store attaches it. Prints each stage's time, the candidate pairs,
those rejected cheaply (thumbnails, embeddings, previews: ``ops.dedup.gate_pairs``), the pairs
verified and time per pair, the features computed, the planted copies found and any false pair,
and peak memory and the load (the machine may be shared).

    PYTHONPATH=. nice python benchmarks/dedup_scale.py [--n 100000] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TILE = 64
COPY_SHARE = 0.02


def sources(data: Path, names: list[str] | None = None) -> list[np.ndarray]:
    """The pictures tiles are cut from (``names``, when given, receives their file names)."""
    from PIL import Image

    paths = [p for p in sorted((data / "deepforest-aerial").glob("*")) if p.suffix in (".png", ".JPG")]
    paths += sorted((data / "maize-croprow-video").rglob("*.jpg"))[:8]
    out = []
    for p in paths:
        img = Image.open(p).convert("RGB")
        if min(img.size) >= 4 * TILE:
            out.append(np.asarray(img))
            if names is not None:
                names.append(p.name)
    return out


class Collection:
    """Item ``i``: a tile of a real picture; a planted copy: a changed tile of its base item."""

    def __init__(self, pics: list[np.ndarray], n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.pics = pics
        self.n = n
        self.pic = rng.integers(0, len(pics), n)
        self.x = np.array([rng.integers(0, pics[p].shape[1] - TILE) for p in self.pic])
        self.y = np.array([rng.integers(0, pics[p].shape[0] - TILE) for p in self.pic])
        n_copy = int(COPY_SHARE * n)
        self.copy_of = np.full(n, -1)
        copies = rng.choice(n, n_copy, replace=False)
        bases = rng.choice(np.setdiff1d(np.arange(n), copies), n_copy, replace=False)
        self.copy_of[copies] = bases
        self.kind = rng.integers(0, 4, n)

    def base_tile(self, i: int) -> np.ndarray:
        p = self.pics[self.pic[i]]
        return p[self.y[i]:self.y[i] + TILE, self.x[i]:self.x[i] + TILE]

    def load(self, i: int) -> np.ndarray:
        import cv2

        b = int(self.copy_of[i])
        if b < 0:
            return np.ascontiguousarray(self.base_tile(i))
        t = self.base_tile(b)
        k = int(self.kind[i])
        if k == 0:
            t = t[:, ::-1]
        elif k == 1:
            t = np.rot90(t, 1)
        elif k == 2:
            t = cv2.resize(np.ascontiguousarray(t[8:56, 6:58]), (TILE, TILE), interpolation=cv2.INTER_CUBIC)
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(t), [cv2.IMWRITE_JPEG_QUALITY, 70])
        return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)

    def vectors(self, dim: int = 256, clusters: int = 2000, seed: int = 1) -> np.ndarray:
        rng = np.random.default_rng(seed)
        centres = rng.normal(size=(clusters, dim)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        cl = rng.integers(0, clusters, self.n)
        v = centres[cl] + rng.normal(scale=0.045, size=(self.n, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        copies = np.flatnonzero(self.copy_of >= 0)
        v[copies] = v[self.copy_of[copies]] + rng.normal(scale=0.012, size=(len(copies), dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = ap.parse_args()

    import pandas as pd

    from agcurate.ops import dedup as D

    load0 = open("/proc/loadavg").read().split()[0]
    t0 = time.perf_counter()
    names: list[str] = []
    col = Collection(sources(Path(args.data), names), args.n)
    vec = col.vectors()
    items = pd.DataFrame({"key": [str(i) for i in range(args.n)], "path": [f"t{i}" for i in range(args.n)],
                          "frame": -1, "x": -1, "y": -1, "w": -1, "h": -1, "width": TILE, "height": TILE,
                          "bytes": 0})
    print(f"{args.n:,} items, {int((col.copy_of >= 0).sum()):,} planted copies; set up in {time.perf_counter() - t0:.1f} s")

    from agcurate.ops.neighbors import AnnIndex, attach_index

    t = time.perf_counter()
    index = None
    if AnnIndex.wanted(args.n):  # what a warm store keeps beside the vectors (``embedding.ann_index``)
        rng = np.random.default_rng(0)
        index = AnnIndex.train(vec[np.sort(rng.choice(args.n, AnnIndex.training_size(args.n), replace=False))], args.n)
        index.add(vec)
        attach_index(vec, index)
    print(f"neighbour index (kept with a warm store) {time.perf_counter() - t:.1f} s", flush=True)

    from agcurate.workflows.dedup import item_views

    t = time.perf_counter()  # one read per item: the thumbnail and the preview, as agcurate.dedup does
    thumbs, previews = item_views(col.load, args.n, progress=False)
    t_thumb = time.perf_counter() - t
    print(f"thumbnails and previews {t_thumb:.1f} s", flush=True)

    # each stage of find_duplicates timed where it runs (nothing is computed twice)
    spent: dict[str, float] = {}
    sizes: dict[str, int] = {}
    real = {name: getattr(D, name) for name in ("candidate_pairs", "dihedral_pairs", "gate_pairs")}

    def timed(name):
        def run(*a, **kw):
            t = time.perf_counter()
            out = real[name](*a, **kw)
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
            sizes[name] = len(out)
            print(f"  {name}: {len(out):,} in {time.perf_counter() - t:.1f} s", flush=True)
            return out
        return run

    for name in real:
        setattr(D, name, timed(name))
    t = time.perf_counter()
    res = D.find_duplicates(vec, items, load=col.load, thumbs=thumbs, previews=previews)
    t_all = time.perf_counter() - t
    for name, f in real.items():
        setattr(D, name, f)
    counts = res.attrs["pairs"]
    calls = {"pairs": counts["checked"]}
    group = res["group"].to_numpy()
    copies = np.flatnonzero(col.copy_of >= 0)
    found = sum(1 for c in copies if group[c] >= 0 and group[c] == group[col.copy_of[c]])
    by_kind = {name: (lambda m: f"{sum(1 for c in copies[m] if group[c] >= 0 and group[c] == group[col.copy_of[c]])}"
                                f"/{int(m.sum())}")(col.kind[copies] == k)
               for k, name in enumerate(("mirrored", "rotated", "cropped", "reencoded"))}
    # a member that is no planted copy of the kept item is either a tile overlapping it (tiles are
    # cut at random places, so some share most of their pixels: copies by any measure) or false
    root = np.where(col.copy_of >= 0, col.copy_of, np.arange(args.n))
    keep = res["keep"].to_numpy()
    kept_of = {int(g): i for i, g in enumerate(group) if keep[i]}
    false = overlapping = 0
    for i in np.flatnonzero((group >= 0) & ~keep):
        k = kept_of[int(group[i])]
        a, b = int(root[i]), int(root[k])
        if a == b:
            continue
        shared = 0.0
        if col.pic[a] == col.pic[b]:
            dx = max(0, TILE - abs(int(col.x[a]) - int(col.x[b])))
            dy = max(0, TILE - abs(int(col.y[a]) - int(col.y[b])))
            shared = dx * dy / TILE ** 2
        if shared >= 0.5:
            overlapping += 1
        else:
            false += 1
            if false <= 10:  # say what they are: which pictures, where, how they were verified
                print(f"  false member: {names[col.pic[a]]} tile at ({col.x[a]}, {col.y[a]}) in the group of "
                      f"{names[col.pic[b]]} tile at ({col.x[b]}, {col.y[b]}) (overlap {shared:.2f}); score "
                      f"{res['score'].iat[i]:.3f}, reason {res['reason'].iat[i]}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t_cand = spent["candidate_pairs"] + spent["dihedral_pairs"]
    t_check = t_all - t_cand - spent["gate_pairs"]
    print(f"candidates: embedding {sizes['candidate_pairs']:,} in {spent['candidate_pairs']:.1f} s, turn/mirror "
          f"{sizes['dihedral_pairs']:,} in {spent['dihedral_pairs']:.1f} s; candidate pairs {counts['candidates']:,}")
    print(f"rejected cheaply {counts['rejected_cheaply']:,} in {spent['gate_pairs']:.1f} s "
          f"({1000 * spent['gate_pairs'] / max(1, counts['candidates']):.3f} ms per candidate)")
    print(f"pairs verified {calls['pairs']:,} in {t_check:.1f} s (with grouping): "
          f"{1000 * t_check / max(1, calls['pairs']):.1f} ms per verified pair; features computed "
          f"{counts['features']:,} for {counts['pictures']:,} pictures")
    print(f"find_duplicates (candidates + cheap rejection + verification + groups): {t_all:.1f} s")
    print(f"planted copies grouped with their original: {found}/{len(copies)} ({found / max(1, len(copies)):.3f}) "
          + " ".join(f"{k}={v}" for k, v in by_kind.items()) + f"; members that are tiles overlapping their kept tile by >= 50%: {overlapping}; false members: {false}")
    print(f"total with thumbnails {t_thumb + t_all:.1f} s; peak memory {peak:.0f} MiB; "
          f"load average at the start {load0}, at the end {open('/proc/loadavg').read().split()[0]}")


if __name__ == "__main__":
    main()
