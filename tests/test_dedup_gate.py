"""The cheap rejection in front of pixel verification (``ops.dedup.gate_pairs``): copies of every
kind pass it, look-alikes and neighbour tiles do not, and ``find_duplicates`` still finds the
copies with it while fully checking far fewer pairs. Generated cases with known answers from the
bundled example pictures; the symmetric and robust checks of ``ops.verify`` that came with it."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from agcurate.ops import dedup as D
from agcurate.ops.verify import compare, features

THRESHOLD = 0.85


def _jpeg(rgb: np.ndarray, quality: int = 80) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _open(examples_dir, name: str) -> np.ndarray:
    return np.asarray(Image.open(examples_dir / name).convert("RGB"))


@pytest.fixture(scope="module")
def aerial(examples_dir) -> np.ndarray:
    return _open(examples_dir, "OSBS_029.jpg")


@pytest.fixture(scope="module")
def other(examples_dir) -> np.ndarray:
    return _open(examples_dir, "SOAP_031.jpg")


def _quick(a: np.ndarray, b: np.ndarray) -> float:
    return D.quick_score(D.preview(a), a.shape[1::-1], D.preview(b), b.shape[1::-1])


def _copies(aerial: np.ndarray) -> dict[str, np.ndarray]:
    """Copies the thumbnails and embeddings may not see: re-framed, padded, erased, re-captured."""
    h, w = aerial.shape[:2]
    erased = aerial.copy()
    erased[int(0.5 * h):, int(0.55 * w):] = 0
    shifted = np.asarray(Image.fromarray(aerial[int(0.04 * h):, int(0.03 * w):int(0.98 * w)]).resize((w, h)))
    return {
        "cropped": _jpeg(aerial[int(0.3 * h):int(0.75 * h), int(0.2 * w):int(0.7 * w)]),
        "padded": _jpeg(np.pad(aerial, ((0, 0), (w // 4, w // 4), (0, 0)))),
        "edited": _jpeg(erased),
        "recapture": _jpeg(shifted),
    }


def test_quick_score_passes_reframed_and_edited_copies(aerial, other):
    for name, copy in _copies(aerial).items():
        assert _quick(aerial, copy) >= D.GATE_QUICK, name
        assert _quick(copy, aerial) >= D.GATE_QUICK, name  # either order
    h, w = aerial.shape[:2]
    assert _quick(aerial, other) < D.GATE_QUICK  # another tile of the same forest
    assert _quick(aerial[:, : w // 2], aerial[:, w // 2:]) < D.GATE_QUICK  # adjacent tiles


def test_same_size_scores_agrees_with_quick_score(examples_dir):
    pics = [_open(examples_dir, f"{c}_{i}.jpg") for c in ("Forest", "River", "Pasture") for i in (1, 2)]
    prev = np.stack([D.preview(p) for p in pics])
    a, b = prev[[0, 1, 2, 3]], prev[[1, 2, 3, 3]]
    batch = D.same_size_scores(a, b)
    one = [D.quick_score(x, (64, 64), y, (64, 64)) for x, y in zip(a, b)]
    assert np.allclose(batch, one, atol=1e-5)
    assert batch[3] == pytest.approx(1.0, abs=1e-4)  # a picture with itself
    assert (batch[:3] < D.GATE_QUICK).all()  # EuroSAT patches of other places


def test_gate_keeps_copies_and_rejects_look_alikes(examples_dir, aerial):
    looks = [_open(examples_dir, f"{c}_{i}.jpg") for c in ("Forest", "River", "Pasture", "AnnualCrop")
             for i in range(1, 7)]
    copies = list(_copies(aerial).values())
    images = [aerial] + copies + looks
    n = len(images)
    pairs = [(0, j) for j in range(1, 1 + len(copies))]
    pairs += [(a, b) for a in range(1 + len(copies), n) for b in range(a + 1, n)]
    thumbs = np.stack([D.thumbnail(im) for im in images])
    vec = np.random.default_rng(0).normal(size=(n, 32)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)  # embeddings that see nothing alike
    sizes = np.array([im.shape[1::-1] for im in images])
    keep = D.gate_pairs(pairs, vec, thumbs, [D.preview(im) for im in images], sizes)
    assert keep[:len(copies)].all()
    assert keep[len(copies):].mean() < 0.1  # patches of one land-cover class: nearly all rejected


@pytest.mark.slow
def test_find_duplicates_with_the_gate_checks_fewer_pairs(examples_dir, aerial):
    looks = [_open(examples_dir, f"{c}_{i}.jpg") for c in ("Forest", "River") for i in range(1, 5)]
    copies = list(_copies(aerial).values()) + [_jpeg(aerial[:, ::-1]), _jpeg(np.rot90(aerial))]
    images = [aerial] + copies + looks
    n = len(images)
    items = pd.DataFrame({"key": [str(i) for i in range(n)], "path": [f"img{i}.jpg" for i in range(n)],
                          "frame": -1, "x": -1, "y": -1, "w": -1, "h": -1,
                          "width": [im.shape[1] for im in images], "height": [im.shape[0] for im in images],
                          "bytes": 1000})
    vec = np.full((n, 8), 0.1, np.float32) + np.random.default_rng(1).normal(scale=0.05, size=(n, 8)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)  # everything a candidate of everything
    thumbs = np.stack([D.thumbnail(im) for im in images])
    kw = dict(load=lambda i: images[i], thumbs=thumbs, k=n - 1, candidate_similarity=0.0)
    full = D.find_duplicates(vec, items, **kw)
    gated = D.find_duplicates(vec, items, previews=[D.preview(im) for im in images], **kw)
    for res in (full, gated):
        assert res["group"].tolist()[:len(copies) + 1] == [0] * (len(copies) + 1)
        assert (res["group"].to_numpy()[len(copies) + 1:] < 0).all()
    counts = gated.attrs["pairs"]
    assert counts["candidates"] == n * (n - 1) // 2 and counts["rejected_cheaply"] > counts["candidates"] // 2
    assert counts["checked"] < full.attrs["pairs"]["checked"] // 2


def test_watermarked_small_copy_and_order_do_not_matter(examples_dir):
    """A 64 px patch under large half-transparent text still verifies (robust line through the
    aligned pixels), and the score does not depend on which picture comes first."""
    from PIL import ImageDraw, ImageFont

    base = _open(examples_dir, "Residential_2.jpg")
    img = Image.fromarray(base).convert("RGBA")
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((4, 24), "SAMPLE", fill=(255, 255, 255, 160), font=ImageFont.load_default(size=9))
    marked = _jpeg(np.asarray(Image.alpha_composite(img, layer).convert("RGB")))
    fa, fb = features(base), features(marked)
    ab, ba = compare(fa, fb), compare(fb, fa)
    assert ab.score >= THRESHOLD and ba.score >= THRESHOLD
    for name in ("Forest_2.jpg", "Residential_3.jpg"):  # look-alikes of the same classes stay apart
        assert compare(features(base), features(_open(examples_dir, name))).score < THRESHOLD

