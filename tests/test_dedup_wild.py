"""dedup on copies as they occur in the wild: mirrored, turned, heavily cropped, thumbnailed,
colour-graded, partly erased; groups hold only files verified against their kept file; every
change is named in ``reason``. Small generated cases with known answers (from the bundled
examples), plus the rice-leaf set's own turned copies (slow)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from agcurate.ops.dedup import dihedral_pairs, find_duplicates, reason_of, thumbnail
from agcurate.ops.verify import compare, features

THRESHOLD = 0.85


@pytest.fixture(scope="module")
def aerial(examples_dir) -> np.ndarray:
    """A 400 px NEON aerial tile (textured, keypoint-rich)."""
    return np.asarray(Image.open(examples_dir / "OSBS_029.jpg").convert("RGB"))


@pytest.fixture(scope="module")
def other(examples_dir) -> np.ndarray:
    """Another aerial tile of the same kind of forest: a look-alike, not a copy."""
    return np.asarray(Image.open(examples_dir / "SOAP_031.jpg").convert("RGB"))


def _jpeg(rgb: np.ndarray, quality: int = 85) -> np.ndarray:
    import io

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _items(images: list[np.ndarray]) -> pd.DataFrame:
    n = len(images)
    return pd.DataFrame({"key": [str(i) for i in range(n)], "path": [f"img{i}.jpg" for i in range(n)],
                         "frame": -1, "x": -1, "y": -1, "w": -1, "h": -1,
                         "width": [im.shape[1] for im in images], "height": [im.shape[0] for im in images],
                         "bytes": 1000})


def _run(images: list[np.ndarray], vectors: np.ndarray | None = None, **kw) -> pd.DataFrame:
    """find_duplicates on in-memory images; by default every pair is an embedding candidate."""
    n = len(images)
    if vectors is None:
        vectors = np.full((n, 4), 0.5, np.float32)
    return find_duplicates(vectors, _items(images), load=lambda i: images[i],
                           thumbs=np.stack([thumbnail(im) for im in images]), **kw)


def _curves(rgb: np.ndarray) -> np.ndarray:
    """A colour grade: other white balance and a gamma curve per channel."""
    x = rgb.astype(np.float32) / 255.0
    out = np.stack([x[..., 0] ** 0.7 * 1.0, x[..., 1] ** 1.1 * 0.92, x[..., 2] ** 1.4 * 0.8], axis=-1)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def test_chain_is_split_at_the_kept_file(aerial):
    """A~B and B~C (B lies inside both) but A and C only half overlap: with A kept, C leaves."""
    wide = np.concatenate([aerial, aerial[:, ::-1]], axis=1)  # 800 px wide, no repeated content
    a, c = wide[:, 0:400], wide[:, 200:600]
    b = wide[:, 220:380]  # inside both
    res = _run([_jpeg(a, 95), _jpeg(b), _jpeg(c)], keep="first")
    assert res["group"].tolist() == [0, 0, -1]
    assert res["keep"].tolist() == [True, False, False]
    assert res.loc[1, "score"] >= THRESHOLD and res.loc[1, "reason"] == "cropped"
    members = res[(res["group"] >= 0) & ~res["keep"]]
    assert (members["score"] >= THRESHOLD).all()


def test_mirrored_turned_and_reframed_copies_are_found_and_named(aerial, other):
    h, w = aerial.shape[:2]
    copies = {
        "mirrored": _jpeg(aerial[:, ::-1]),
        "rotated": _jpeg(np.rot90(aerial, 1)),
        "mirrored+rotated": _jpeg(np.rot90(aerial[::-1], 1)),  # a transpose
        "cropped": _jpeg(aerial[int(0.3 * h):int(0.75 * h), int(0.2 * w):int(0.7 * w)]),
        "resized": np.asarray(Image.fromarray(aerial).resize((100, 100), Image.LANCZOS)),
        "colour": _jpeg(_curves(aerial)),
    }
    images = [aerial] + list(copies.values()) + [other, _jpeg(other[:, ::-1])]
    # embeddings that see nothing alike: the thumbnails must propose the turned copies, and for
    # the rest every pair is a candidate through an all-alike embedding below
    res = _run(images)
    assert res["group"].tolist()[:len(copies) + 1] == [0] * (len(copies) + 1)
    assert res.loc[0, "keep"] and res.loc[0, "reason"] == "kept"
    got = dict(zip(copies, res["reason"].tolist()[1:len(copies) + 1]))
    assert got == {name: name for name in copies}, got
    assert (res["score"][1:len(copies) + 1] >= THRESHOLD).all()
    # the mirrored look-alike pair is a copy pair of its own, not part of the first group
    assert res["group"].tolist()[-2:] == [1, 1] and res.loc[len(images) - 1, "reason"] == "mirrored"


def test_turned_copies_are_proposed_by_thumbnails_alone(aerial, other):
    images = [aerial, _jpeg(np.rot90(aerial, 3)), _jpeg(aerial[:, ::-1]), other]
    pairs = {(a, b) for a, b, _ in dihedral_pairs(np.stack([thumbnail(im) for im in images]))}
    assert {(0, 1), (0, 2), (1, 2)} <= pairs and not any(3 in p for p in pairs)
    rng = np.random.default_rng(0)
    vec = rng.normal(size=(4, 32)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)  # no embedding candidate at all
    res = _run(images, vectors=vec)
    assert res["group"].tolist() == [0, 0, 0, -1]
    off = find_duplicates(vec, _items(images), load=lambda i: images[i])
    assert off["group"].tolist() == [-1] * 4  # without the thumbnail stage: nothing found


def test_neighbours_and_look_alikes_are_not_copies(aerial, other):
    h, w = aerial.shape[:2]
    left, right = aerial[:, :int(0.6 * w)], aerial[:, int(0.4 * w):]  # overlapping neighbour tiles
    assert compare(features(left), features(right)).score < THRESHOLD
    assert compare(features(aerial), features(other)).score < THRESHOLD
    assert compare(features(aerial), features(_jpeg(other[:, ::-1]))).score < THRESHOLD


def test_edited_copy_with_part_erased(aerial):
    edited = aerial.copy()
    h, w = edited.shape[:2]
    edited[int(0.55 * h):, int(0.6 * w):] = 0  # a fifth of the picture erased to black
    c = compare(features(aerial), features(_jpeg(edited)))
    assert c.score >= THRESHOLD and c.edited > 0.05
    assert reason_of(c, True) == "edited"
    written = aerial.copy()  # a bright caption box across the picture
    written[int(0.4 * h):int(0.55 * h), int(0.1 * w):int(0.9 * w)] = 235
    c = compare(features(aerial), features(_jpeg(written)))
    assert c.score >= THRESHOLD and "edited" in reason_of(c, True)


class _Known:
    """Stand-in verification features: the item's number (``find_duplicates`` only keeps them)."""

    _mirror = None

    def __init__(self, i: int):
        self.i = i

    def nbytes(self) -> int:
        return 8


def _known_answers(monkeypatch, scores: dict[tuple[int, int], float],
                   inside: dict[tuple[int, int], float] | None = None) -> list[tuple[int, int]]:
    """Make the pixel check answer from ``scores`` (either order; 0 when absent) and ``inside``
    (share of the second picture's frame inside the first; 1 when absent); returns the list of
    pairs it was asked about."""
    from agcurate.ops import dedup as dd
    from agcurate.ops.verify import PairCheck

    asked = []

    def compare(fa, fb):
        asked.append((fa.i, fb.i))
        return PairCheck(scores.get((fa.i, fb.i), scores.get((fb.i, fa.i), 0.0)), "keypoints",
                         inside=(inside or {}).get((fa.i, fb.i), 1.0))

    monkeypatch.setattr(dd, "features", lambda rgb: _Known(int(rgb[0, 0, 0])))
    monkeypatch.setattr(dd, "compare", compare)
    return asked


def _textures(sizes: list[tuple[int, int]], pad: dict[int, int] | None = None) -> list[np.ndarray]:
    """Random pictures of the given (w, h); item ``i`` has ``pad[i]`` black columns on each side;
    the first pixel holds the item's number (what the stand-in features read)."""
    rng = np.random.default_rng(0)
    out = []
    for i, (w, h) in enumerate(sizes):
        x = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        p = (pad or {}).get(i, 0)
        if p:
            x[:, :p], x[:, w - p:] = 0, 0
        x[0, 0, 0] = i
        out.append(x)
    return out


def test_a_member_that_does_not_verify_against_the_largest_lets_the_original_keep_the_group(monkeypatch):
    """0 = a padded copy (the largest file), 1 = the original, 2 = a crop of the original that the
    pixel check cannot place inside the padded frame, 3 = a look-alike of the crop only. The group
    keeps the original (every member verifies against it) instead of leaving the padded copy out;
    the look-alike stays out; every member scores >= the threshold against the kept file."""
    scores = {(0, 1): 0.999, (1, 2): 0.998, (0, 2): 0.0, (2, 3): 0.9, (1, 3): 0.2, (0, 3): 0.1}
    _known_answers(monkeypatch, scores, inside={(1, 0): 0.56, (2, 0): 0.56})  # the padded copy's bars
    n = 4
    items = pd.DataFrame({"key": [str(i) for i in range(n)], "path": [f"img{i}.jpg" for i in range(n)],
                          "frame": -1, "x": -1, "y": -1, "w": -1, "h": -1,
                          "width": [455, 256, 151, 151], "height": [256, 256, 170, 170], "bytes": 1000})
    pics = _textures([(455, 256), (256, 256), (151, 170), (151, 170)], pad={0: 100})
    res = find_duplicates(np.full((n, 4), 0.5, np.float32), items, load=lambda i: pics[i])
    assert res["group"].tolist() == [0, 0, 0, -1]
    assert res["keep"].tolist() == [False, True, False, False]
    assert (res.loc[[0, 2], "score"] >= THRESHOLD).all()


def test_an_upscaled_copy_that_not_every_member_verifies_against_lets_the_original_keep(monkeypatch):
    """0 = a copy upscaled x1.7 (the largest), 1 = the original, 2 = a turned copy that does not verify
    against the upscaled one: the original keeps all three (each lies inside it)."""
    _known_answers(monkeypatch, {(0, 1): 0.99, (1, 2): 0.97, (0, 2): 0.5})
    items = pd.DataFrame({"key": list("abc"), "path": ["a.jpg", "b.jpg", "c.jpg"], "frame": -1, "x": -1,
                          "y": -1, "w": -1, "h": -1, "width": [110, 64, 64], "height": [110, 64, 64],
                          "bytes": 1000})
    pics = _textures([(110, 110), (64, 64), (64, 64)])
    res = find_duplicates(np.full((3, 4), 0.5, np.float32), items, load=lambda i: pics[i])
    assert res["group"].tolist() == [0, 0, 0]
    assert res["keep"].tolist() == [False, True, False]


def test_no_fallback_keeper_joins_a_chain_whose_ends_differ(monkeypatch):
    """A~B and B~C, A and C no copies, A the largest: B (inside both, fewer pixels) may not keep
    them both, and C does not verify against A: C is left out."""
    # B (1) lies inside A and C: 40% of A's frame lies inside B, and as much of C's
    _known_answers(monkeypatch, {(0, 1): 0.99, (1, 2): 0.98}, inside={(1, 0): 0.4, (1, 2): 0.4, (0, 1): 1.0})
    items = pd.DataFrame({"key": list("abc"), "path": ["a.jpg", "b.jpg", "c.jpg"], "frame": -1, "x": -1,
                          "y": -1, "w": -1, "h": -1, "width": [400, 300, 200], "height": [400, 300, 200],
                          "bytes": 1000})
    pics = _textures([(400, 400), (300, 300), (200, 200)])
    res = find_duplicates(np.full((3, 4), 0.5, np.float32), items, load=lambda i: pics[i])
    assert res["group"].tolist() == [0, 0, -1]
    assert res["keep"].tolist() == [True, False, False]


@pytest.mark.slow
def test_rice_leaf_turned_copies_join_their_originals(shared_data, tmp_path):
    """The rice-leaf set ships each original with a 90- and a 180-degree turned copy under other
    numbers: at default settings every turned file is grouped with its original (paired by pixels)
    and no member scores below the threshold."""
    from agcurate.workflows.dedup import dedup

    root = shared_data("rice-leaf")
    res = dedup([root], store=tmp_path / "store", workers=0, progress=False)
    table = res.table
    group = {p: g for p, g in zip(table["path"], table["group"])}
    originals = sorted(p for p in root.rglob("*.jpg") if "_rot" not in p.name) + \
        sorted(p for p in root.rglob("*.JPG") if "_rot" not in p.name)
    small = {str(p): np.asarray(Image.open(p).convert("L").resize((32, 32)), np.float32) for p in originals}
    stack = np.stack(list(small.values()))
    names = list(small)
    missed = []
    for p in sorted(root.rglob("*_rot*")):
        x = np.asarray(Image.open(p).convert("L").resize((32, 32)), np.float32)
        d = min(((stack - np.rot90(x, k)[None]) ** 2).mean(axis=(1, 2)).min() for k in range(4))
        best = min(range(4), key=lambda k: ((stack - np.rot90(x, k)[None]) ** 2).mean(axis=(1, 2)).min())
        orig = names[int(((stack - np.rot90(x, best)[None]) ** 2).mean(axis=(1, 2)).argmin())]
        assert d < 30
        if group.get(str(p), -1) < 0 or group.get(str(p)) != group.get(orig, -2):
            missed.append(p.name)
    assert not missed, json.dumps(missed[:20])
    members = table[~table["keep"]]
    assert (members["score"] >= res.threshold).all()


def _wild_benchmark():
    """``benchmarks/dedup_wild.py`` as a module (its drawing of distinct base pictures)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "dedup_wild.py"
    spec = importlib.util.spec_from_file_location("dedup_wild_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_photos_of_one_walk_a_few_frames_apart_are_one_scene():
    bench = _wild_benchmark()
    runs = bench._scenes([1637, 283, 1639, 548, 300, 900, 851])
    assert sorted(sorted(r) for r in runs) == [[0, 2], [1, 4], [3], [5], [6]]


def test_aerial_bases_are_distinct_pictures_and_no_negative_is_a_base(shared_data):
    """The benchmark's aerial bases are disjoint cells of their rasters; a negative shares at most
    60% with any other tile drawn (base or negative), so no negative is a copy the truth calls
    different."""
    import random

    bench = _wild_benchmark()
    data = shared_data("deepforest-aerial").parent
    rects: list = []
    bases, negs, _ = bench.distinct_bases(data, "aerial tiles", 20, random.Random(1), rects)
    assert len(bases) == 20 and len(negs) >= 15 and len(rects) == len(bases) + len(negs)
    for i, (r, x, y, t) in enumerate(rects):
        for j, (q, u, v, _) in enumerate(rects[:i]):
            if q == r:
                assert bench._shared((x, y), (u, v), t) <= (0.0 if i < len(bases) else 0.6), (i, j)
    small = [np.asarray(b.convert("L").resize((32, 32)), np.float32) for b in bases + negs]
    for i in range(len(small)):
        for j in range(i):
            assert np.abs(small[i] - small[j]).mean() > 3  # and no two alike by pixels
