"""agcurate dedup: planted duplicates from real images are grouped exactly, look-alikes are not,
files stay untouched unless --move-to, and the page shows each group safely."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from agcurate.cli import app
from agcurate.ops.dedup import candidate_pairs, duplicates_table, find_duplicates, summary
from agcurate.workflows.dedup import pixel_loader
from agcurate.ops.verify import compare, features

runner = CliRunner()
ODD = "<img src=x onerror=alert(1)>.jpg"
EXAMPLE_GROUPS = [
    {"AnnualCrop_1.jpg", "AnnualCrop_1_rot90.jpg"},
    {"OSBS_029.jpg", "OSBS_029_crop.jpg"},
    {"SOAP_061.png", "SOAP_061_reencoded.jpg", "SOAP_061_bright.jpg"},
]


def _groups(csv: Path) -> list[set[str]]:
    df = pd.read_csv(csv)
    return [set(Path(p).name for p in g["path"]) for _, g in df.groupby("group")]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


# -- the examples -------------------------------------------------------------------------------

def test_examples_give_exactly_the_three_planted_groups(examples_dir, examples_store, tmp_path):
    before = _snapshot(examples_dir)
    out = tmp_path / "out"
    res = runner.invoke(app, ["dedup", str(examples_dir), "--store", str(examples_store), "--out", str(out),
                              "--workers", "0"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "duplicates.csv")
    assert list(df.columns[:4]) == ["group", "path", "keep", "score"]
    assert sorted(map(sorted, _groups(out / "duplicates.csv"))) == sorted(map(sorted, EXAMPLE_GROUPS))
    assert (df.groupby("group")["keep"].sum() == 1).all()
    kept = set(Path(p).name for p in df.loc[df["keep"], "path"])
    assert kept == {"AnnualCrop_1.jpg", "OSBS_029.jpg", "SOAP_061.png"}  # largest: pixels, then bytes
    assert df.loc[df["keep"], "score"].eq(1.0).all()
    assert df.loc[~df["keep"], "score"].between(0.85, 1.0).all()
    freed = int(df.loc[~df["keep"], "bytes"].sum())
    assert freed == sum((examples_dir / n).stat().st_size for n in
                        ("AnnualCrop_1_rot90.jpg", "OSBS_029_crop.jpg", "SOAP_061_reencoded.jpg", "SOAP_061_bright.jpg"))
    text = " ".join(res.output.split())
    assert "duplicate groups │ 3" in text and "could be removed │ 4" in text and f"{freed:,}" in text
    assert "candidate pairs" in text and "rejected" in text  # the cheap rejection is reported
    assert (out / "dedup.html").exists()
    assert _snapshot(examples_dir) == before  # no --move-to: nothing touched


def test_keep_policies(examples_embeddings):
    emb = examples_embeddings
    items = emb.items.copy()
    names = [Path(p).name for p in emb.paths]
    first = find_duplicates(emb.vectors, items, keep="first", load=pixel_loader(items))
    kept = {names[i] for i in np.flatnonzero(first["keep"].to_numpy())}
    assert kept == {"AnnualCrop_1.jpg", "OSBS_029.jpg", "SOAP_061.png"}  # path order
    items["sharpness"] = [5.0 if n == "SOAP_061_bright.jpg" else 1.0 for n in names]
    sharp = find_duplicates(emb.vectors, items, keep="sharpest", load=pixel_loader(items))
    assert names[int(np.flatnonzero(sharp["keep"].to_numpy() & (sharp["group"] == 2).to_numpy())[0])] == \
        "SOAP_061_bright.jpg"
    assert int(sharp["is_duplicate"].sum()) == 4 and summary(sharp)["groups"] == 3
    with pytest.raises(ValueError):
        find_duplicates(emb.vectors, items, keep="smallest", load=pixel_loader(items))


def test_embedding_alone_is_not_enough(examples_embeddings):
    """Cosine alone: a pair of different lakes is closer than the planted rotation; verification sorts it."""
    emb = examples_embeddings
    names = [Path(p).name for p in emb.paths]
    i, j = names.index("SeaLake_2.jpg"), names.index("SeaLake_5.jpg")
    a, b = names.index("AnnualCrop_1.jpg"), names.index("AnnualCrop_1_rot90.jpg")
    assert emb.vectors[i] @ emb.vectors[j] > emb.vectors[a] @ emb.vectors[b]
    res = find_duplicates(emb.vectors, emb.items, load=pixel_loader(emb.items))
    assert res["group"][i] == -1 and res["group"][j] == -1
    assert res["group"][a] == res["group"][b] >= 0


def test_pair_verification_scores(examples_dir):
    def f(name):
        return features(np.asarray(Image.open(examples_dir / name).convert("RGB")))

    assert compare(f("OSBS_029.jpg"), f("OSBS_029_crop.jpg")).score > 0.95
    assert compare(f("SOAP_061.png"), f("SOAP_061_bright.jpg")).score > 0.95
    rot = compare(f("AnnualCrop_1.jpg"), f("AnnualCrop_1_rot90.jpg"))
    assert rot.score > 0.9 and abs(abs(rot.rotation) - 90) < 2
    assert compare(f("SOAP_061.png"), f("SOAP_031.jpg")).score < 0.5
    assert compare(f("Forest_2.jpg"), f("Forest_3.jpg")).score < 0.85
    assert compare(f("SeaLake_2.jpg"), f("SeaLake_5.jpg")).score < 0.85


def test_turned_queries_add_rotated_candidates():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(6, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert (1, 4) not in {(a, b) for a, b, _ in candidate_pairs(v, 0.9, k=3)}
    turned = v.copy()
    turned[4] = v[1]  # item 4 turned by 90 degrees looks like item 1
    assert (1, 4) in {(a, b) for a, b, _ in candidate_pairs(v, 0.9, k=3, turned={1: turned})}


def test_exact_duplicates_need_no_vectors():
    items = pd.DataFrame({"key": list("abcd"), "path": list("abcd"), "frame": -1, "x": -1, "y": -1, "w": -1, "h": -1,
                          "pixel_hash": ["p1", "p2", "p1", "p3"], "content_hash": ["c1", "c2", "c3", "c2"],
                          "width": 10, "height": 10, "bytes": [5, 9, 7, 1]})
    vecs = np.eye(4, dtype=np.float32)  # no two alike by embedding
    res = find_duplicates(vecs, items, load=lambda i: pytest.fail("no pixels needed"))
    assert res["group"].tolist() == [0, 1, 0, 1]
    assert res["keep"].tolist() == [False, True, True, False]  # same pixels count: more bytes wins
    assert res["reason"].tolist() == ["exact", "kept", "kept", "exact"] and res["score"].tolist() == [1.0] * 4
    table = duplicates_table(items, res)
    assert table["path"].tolist() == ["c", "a", "b", "d"] and table["keep"].tolist() == [True, False, True, False]


# -- planted duplicates from the shared real data -----------------------------------------------

@pytest.fixture(scope="module")
def planted(shared_data, tmp_path_factory):
    """Real rice-leaf and EuroSAT images with known copies, look-alikes of the same class, and an
    odd file name; dedup run once through the CLI."""
    rice = shared_data("rice-leaf") / "Bacterial"
    euro = shared_data("eurosat-rgb") / "images"
    root = tmp_path_factory.mktemp("planted")
    d = root / "images"
    (d / "leaves").mkdir(parents=True)
    (d / "fields").mkdir()
    leaf = Image.open(rice / "Bacterial_10.jpg").convert("RGB")
    w, h = leaf.size
    leaf.save(d / "leaves/leaf.jpg", quality=95)
    leaf.save(d / "leaves/leaf_q60.jpg", quality=60)
    leaf.crop((int(0.1 * w), int(0.1 * h), int(0.9 * w), int(0.9 * h))).save(d / "leaves/leaf_crop.jpg", quality=90)
    leaf.transpose(Image.ROTATE_90).save(d / "leaves/leaf_rot90.jpg", quality=90)
    leaf.transpose(Image.ROTATE_180).save(d / "leaves/leaf_rot180.png")
    for n in (20, 45, 60):  # other leaves of the same disease
        shutil.copyfile(rice / f"Bacterial_{n}.jpg", d / f"leaves/other_leaf_{n}.jpg")
    field = Image.open(euro / "Residential" / "Residential_10.jpg").convert("RGB")
    shutil.copyfile(euro / "Residential" / "Residential_10.jpg", d / "fields/field.jpg")
    field.resize((128, 128), Image.BICUBIC).save(d / "fields/field_x2.png")
    from PIL import ImageEnhance
    ImageEnhance.Brightness(field).enhance(1.25).save(d / "fields/field_bright.jpg", quality=92)
    shutil.copyfile(euro / "Residential" / "Residential_10.jpg", d / ODD)  # exact copy, odd name
    for n in (11, 12, 13):  # other patches of the same class
        shutil.copyfile(euro / "Residential" / f"Residential_{n}.jpg", d / f"fields/other_field_{n}.jpg")
    river = euro / "River" / "River_5.jpg"
    shutil.copyfile(river, d / "river.jpg")
    Image.open(river).save(d / "river_lossless.png")  # same decoded pixels, other format
    out = root / "out"
    store = root / "store"
    res = runner.invoke(app, ["dedup", str(d), "--store", str(store), "--out", str(out), "--workers", "0"])
    assert res.exit_code == 0, res.output
    return {"dir": d, "out": out, "store": store, "output": res.output}


def test_planted_groups_are_exact(planted):
    groups = _groups(planted["out"] / "duplicates.csv")
    assert sorted(map(sorted, groups)) == sorted(map(sorted, [
        {"leaf.jpg", "leaf_q60.jpg", "leaf_crop.jpg", "leaf_rot90.jpg", "leaf_rot180.png"},
        {"field.jpg", "field_x2.png", "field_bright.jpg", ODD},
        {"river.jpg", "river_lossless.png"},
    ]))
    df = pd.read_csv(planted["out"] / "duplicates.csv", keep_default_na=False)
    by_name = {Path(p).name: r for p, r in zip(df["path"], df.itertuples())}
    assert {by_name["river.jpg"].reason, by_name["river_lossless.png"].reason} == {"kept", "exact"}
    assert by_name["river.jpg"].score == by_name["river_lossless.png"].score == 1.0
    assert by_name["field_x2.png"].keep  # largest picture; the two byte-equal copies score alike against it
    assert by_name[ODD].score == by_name["field.jpg"].score and by_name[ODD].reason == by_name["field.jpg"].reason
    assert by_name["field.jpg"].reason == "resized"  # the kept file is the 128 px enlargement
    assert by_name["field_bright.jpg"].reason == "resized+colour"
    kept_leaf = next(n for n in ("leaf.jpg", "leaf_rot90.jpg", "leaf_rot180.png") if by_name[n].keep)
    assert kept_leaf == "leaf_rot180.png" and by_name[kept_leaf].reason == "kept"  # most bytes (PNG)
    assert by_name["leaf_crop.jpg"].reason == "rotated+cropped" and 0.85 <= by_name["leaf_crop.jpg"].score < 1.0
    assert by_name["leaf_q60.jpg"].reason == by_name["leaf.jpg"].reason == "rotated"  # turned 180 from the kept
    assert all("rotated" in by_name[n].reason for n in ("leaf_rot90.jpg", "leaf_rot180.png") if n != kept_leaf)
    assert "could be removed │ 8" in " ".join(planted["output"].split())


def test_dedup_page_in_browser(planted, page, artifacts):
    html = planted["out"] / "dedup.html"
    dialogs = []
    page.on("dialog", lambda dlg: (dialogs.append(dlg.message), dlg.dismiss()))
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    assert page.locator("section.group").count() == 3
    imgs = page.locator("section.group figure img")
    assert imgs.count() == 11
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    assert page.evaluate("Array.from(document.images).every(i => i.naturalWidth > 0)")
    assert page.locator("section.group figure.keep").count() == 3
    assert page.locator("header .sub").inner_text().startswith("17 items · 3 groups · 8 removable")
    assert ODD in page.locator("body").inner_text()  # shown as text ...
    assert page.locator("img[src=x]").count() == 0 and not dialogs  # ... never as markup
    # every copy beside its kept file, with the kind of change; the table sorts by score
    rows = page.locator("table#pairs tbody tr")
    assert rows.count() == 8
    reasons = set(page.locator("table#pairs td .tag.reason").all_inner_texts())
    assert {"rotated+cropped", "rotated", "resized", "resized+colour", "exact"} <= reasons
    page.locator("table#pairs th[data-key=score]").click()
    scores = [float(t) for t in page.locator("table#pairs td.score").all_inner_texts()]
    assert scores == sorted(scores) and scores[0] < scores[-1]
    page.locator("table#pairs th[data-key=score]").click()
    scores = [float(t) for t in page.locator("table#pairs td.score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    assert page.locator("table#pairs th[data-key=score]").get_attribute("aria-sort") == "descending"
    assert page.agcurate_errors == []
    page.screenshot(path=str(artifacts / "dedup.png"), full_page=True)


def test_move_to_then_undo_round_trip(planted, tmp_path):
    work = tmp_path / "collection"
    shutil.copytree(planted["dir"], work)
    before = {str(p.relative_to(work)): p.read_bytes() for p in work.rglob("*") if p.is_file()}
    dest = tmp_path / "removed"
    out = tmp_path / "out"
    res = runner.invoke(app, ["dedup", str(work), "--store", str(planted["store"]), "--out", str(out),
                              "--workers", "0", "--move-to", str(dest)])
    assert res.exit_code == 0, res.output
    moved = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and p.suffix != ".json")
    assert moved == sorted([ODD, "fields/field.jpg", "fields/field_bright.jpg", "leaves/leaf.jpg", "leaves/leaf_crop.jpg",
                            "leaves/leaf_q60.jpg", "leaves/leaf_rot90.jpg", "river.jpg"])
    for kept in ("fields/field_x2.png", "leaves/leaf_rot180.png", "river_lossless.png", "leaves/other_leaf_45.jpg"):
        assert (work / kept).exists()
    manifest = next(dest.glob("agcurate-moves-*.json"))
    assert "undo with: agcurate undo" in res.output
    res = runner.invoke(app, ["undo", str(manifest)])
    assert res.exit_code == 0, res.output
    assert "restored 8 file(s)" in res.output
    after = {str(p.relative_to(work)): p.read_bytes() for p in work.rglob("*") if p.is_file()}
    assert after == before


def test_bad_keep_and_missing_manifest_are_clear_errors(tmp_path):
    res = runner.invoke(app, ["dedup", str(tmp_path), "--keep", "smallest"])
    assert res.exit_code == 2 and "--keep" in res.output
    res = runner.invoke(app, ["undo", str(tmp_path / "nope.json")])
    assert res.exit_code == 1 and "no such manifest" in res.output


def test_turned_embeddings_match_turned_files(examples_dir, tmp_path, store, capfd):
    """`--rotations`: the collection embedded turned by 90 degrees finds the turned copy as itself."""
    from agcurate.embedding.rotations import turned_vectors

    import agcurate

    d = tmp_path / "few"
    d.mkdir()
    for n in ("AnnualCrop_1.jpg", "AnnualCrop_1_rot90.jpg", "Forest_1.jpg"):
        shutil.copyfile(examples_dir / n, d / n)
    emb = agcurate.embed([d], store=store, workers=0, progress=False)
    turned = turned_vectors(emb, turns=(1, 3), config=agcurate.EmbedConfig(store=store, workers=0), progress=False)
    names = [Path(p).name for p in emb.paths]
    a, r = names.index("AnnualCrop_1.jpg"), names.index("AnnualCrop_1_rot90.jpg")
    plain = float(emb.vectors[a] @ emb.vectors[r])
    best = max(float(turned[t][i] @ emb.vectors[j]) for t in (1, 3) for i, j in ((a, r), (r, a)))
    assert best > 0.92 and best > plain + 0.04  # 64 px JPEG copies: turned, they are nearly the same
    assert "Torch IR graph" not in capfd.readouterr().err  # no failed ONNX export attempt
    out = tmp_path / "out"
    res = runner.invoke(app, ["dedup", str(d), "--rotations", "--store", str(store), "--out", str(out),
                              "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert _groups(out / "duplicates.csv") == [{"AnnualCrop_1.jpg", "AnnualCrop_1_rot90.jpg"}]


def test_small_images_slightly_rotated(examples_dir, tmp_path):
    """64 px EuroSAT patches turned a few degrees (black corners, few keypoints) still verify as
    copies in either order; a turned look-alike of the same class does not."""
    def f(img):
        return features(np.asarray(img.convert("RGB")))

    def turned(name, angle):
        p = tmp_path / f"{angle}_{name}"
        Image.open(examples_dir / name).convert("RGB").rotate(angle, resample=Image.BICUBIC).save(p, quality=90)
        return Image.open(p)

    base = f(Image.open(examples_dir / "Forest_2.jpg"))
    for angle in (-7, 4):
        copy = f(turned("Forest_2.jpg", angle))
        assert compare(base, copy).score >= 0.85
        assert compare(copy, base).score >= 0.85
        assert compare(base, f(turned("Forest_3.jpg", angle))).score < 0.85


def test_no_turns_skips_the_thumbnail_stage(examples_dir, examples_store, examples_embeddings, tmp_path, monkeypatch):
    """``--turns`` (default) measures turn/mirror thumbnails of every item; ``--no-turns`` does not,
    and the copies the embeddings propose are still found."""
    import agcurate.workflows.dedup as wd

    calls = []
    real = wd.item_views
    monkeypatch.setattr(wd, "item_views", lambda load, n, **kw: calls.append(n) or real(load, n, **kw))
    groups = {}
    for flag in ("--turns", "--no-turns"):
        out = tmp_path / flag
        res = runner.invoke(app, ["dedup", str(examples_dir), flag, "--store", str(examples_store), "--out", str(out),
                                  "--workers", "0"])
        assert res.exit_code == 0, res.output
        groups[flag] = sorted(map(sorted, _groups(out / "duplicates.csv")))
    assert calls == [len(examples_embeddings)]                     # only the default run measured them
    assert groups["--turns"] == groups["--no-turns"] == sorted(map(sorted, EXAMPLE_GROUPS))
