"""Outlier scoring: planted look-alike groups, signals, novelty mode, the CLI, CSV and gallery page."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from agcurate.ops.outliers import default_k, robust_z, score_outliers


def _items(n: int, **signals) -> pd.DataFrame:
    df = pd.DataFrame({"path": [f"/data/img_{i:03d}.png" for i in range(n)], "x": -1, "y": -1, "w": -1, "h": -1})
    df["key"] = df["path"]
    for name, values in signals.items():
        df[name] = values
    return df


def _cluster(rng, centre, n, spread=0.35):
    v = centre + spread * rng.normal(size=(n, len(centre)))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _ranked_paths(res: pd.DataFrame, top: int) -> set[str]:
    return set(res["path"].head(top))


def test_robust_z_sides_and_floor():
    x = np.array([0.0, 0.0, 0.0, 0.0, 0.5])
    # MAD is 0 here: the scale falls back to 1.2533 x mean absolute deviation (0.1)
    assert robust_z(x, side="high", floor=0.05).tolist() == [0, 0, 0, 0, pytest.approx(0.5 / 0.12533)]
    y = np.array([1.0, 2.0, 3.0, 4.0, 100.0, -100.0])
    assert (robust_z(y, side="both") > 0).sum() == 6
    assert robust_z(y, side="low")[4] == 0 and robust_z(y, side="low")[5] > 10


def test_planted_group_of_lookalikes_ranks_first():
    """8 near-identical outliers among 100: 5-NN sees them as ordinary, a large k does not."""
    rng = np.random.default_rng(0)
    dim = 32
    a, b = rng.normal(size=dim), rng.normal(size=dim)
    vec = np.vstack([_cluster(rng, a, 100), _cluster(rng, b, 8, spread=0.05)])
    items = _items(108)
    res = score_outliers(vec, items)
    assert default_k(108) == 32
    assert _ranked_paths(res, 8) == {f"/data/img_{i:03d}.png" for i in range(100, 108)}
    assert res["is_outlier"].head(8).all() and res["is_outlier"].sum() <= 10
    assert res["is_novel"].head(8).all() and (res["issues"].head(8) == "unusual content").all()
    assert res["score"][7] > res["score"][8] + 3  # a clear gap after the planted group
    assert res["rank"].tolist() == list(range(1, 109))
    assert list(res.columns[:6]) == ["path", "score", "is_outlier", "rank", "window", "issues"]
    five_nn = score_outliers(vec, items, method="knn", k=5)
    assert not _ranked_paths(five_nn, 8) & {f"/data/img_{i:03d}.png" for i in range(100, 108)}


def test_cloud_signal_flags_cloud_and_contamination():
    rng = np.random.default_rng(1)
    vec = _cluster(rng, rng.normal(size=16), 60)
    white = np.clip(rng.normal(0.02, 0.01, 60), 0, 1)
    white[[3, 17, 42]] = [0.97, 0.95, 0.99]  # three white (clouded) pictures, embeddings ordinary
    res = score_outliers(vec, _items(60, brightness=0.4, cloud_white=white, contrast=0.2, blur=0.2, clipped=0.0))
    assert set(res["path"].head(3)) == {"/data/img_042.png", "/data/img_003.png", "/data/img_017.png"}
    assert res["is_cloud"].sum() == 3 and res["is_cloud"].head(3).all()
    assert all(i.startswith("cloud") for i in res["issues"].head(3))
    assert res["cloud_score"].head(3).min() > 0.98 and res["cloud_score"][3:].max() < 0.2
    top = score_outliers(vec, _items(60, cloud_white=white), contamination=0.1)
    assert top["is_outlier"].sum() == 6 and top["is_outlier"].head(6).all()
    only = score_outliers(vec, _items(60, cloud_white=white), method="signals")
    assert only["is_outlier"].sum() == 3 and "novelty_score" not in only.columns


def test_fusion_keeps_weak_evidence_and_orders_every_item():
    """No clipping: a faintly hazy item ranks above clean ones; only identical items tie."""
    from agcurate.ops.outliers import damp, fuse_logits

    rng = np.random.default_rng(6)
    vec = _cluster(rng, rng.normal(size=16), 80)
    vec[79] = vec[78]  # an exact duplicate pair
    from agcurate.ops.quality import CALIBRATION

    t, sc = CALIBRATION["veil"]
    haze = np.linspace(t - 6 * sc, t - 3 * sc, 80)
    haze[79] = haze[78]
    haze[5] = t - sc  # weak haze evidence, below the flag threshold
    res = score_outliers(vec, _items(80, veil=haze, brightness=0.4), method="signals")
    assert not res["is_haze"].any() and res["haze_score"].max() < 0.5
    scores = res.set_index("path")["score"]
    clean = scores.drop(["/data/img_005.png"])
    assert scores["/data/img_005.png"] > clean.max()  # weak evidence still ranks above clean items
    assert res["path"][1:4].tolist() == ["/data/img_078.png", "/data/img_079.png", "/data/img_077.png"]
    assert res["score"].nunique() == 79  # every item strictly ordered but the duplicate pair
    full = score_outliers(vec, _items(80, veil=haze, brightness=0.4))
    assert full["score"].nunique() == 79 and not (full["score"] == 0).any()
    assert scores["/data/img_078.png"] == scores["/data/img_079.png"]
    # the fusion never saturates and is increasing in every input; NaN (not measurable) is skipped
    f = fuse_logits([np.array([-40.0, -39.0, 0.0, 40.0, 41.0, np.nan]), np.array([-50.0, -50, -50, 0, 0, np.nan])], 6)
    assert np.all(np.diff(f[:5]) > 0) and f[2] == pytest.approx(0.0, abs=1e-4) and f[5] == -np.inf
    assert fuse_logits([np.array([1.0])], 1)[0] == pytest.approx(damp(np.array(1.0)))  # one input: itself, damped
    assert damp(np.array(0.5)) == pytest.approx(0.5, abs=0.01) and damp(np.array(100.0)) < 20


def test_reference_novelty_mode_scores_against_clean_collection():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=24), rng.normal(size=24)
    ref = _cluster(rng, a, 120)
    new = np.vstack([_cluster(rng, a, 20), _cluster(rng, b, 3, spread=0.05)])
    res = score_outliers(new, _items(23), reference_vectors=ref, reference_items=_items(120))
    assert _ranked_paths(res, 3) == {"/data/img_020.png", "/data/img_021.png", "/data/img_022.png"}
    assert res["is_outlier"].sum() == 3
    # against itself the 3 look-alikes are 13% of 23 items; against the reference they are plainly new
    assert res["knn_z"].head(3).min() > 5


def test_bigearthnet_snowy_patch_is_the_top_outlier(shared_data, store):
    import agcurate

    emb = agcurate.embed([shared_data("bigearthnet-s2-example")], store=store, workers=0, progress=False)
    res = score_outliers(emb.vectors, emb.items)
    assert res.loc[0, "path"].endswith("S2B_MSIL2A_20180204T94161_57_38")
    assert res.loc[0, "is_outlier"] and res.loc[0, "is_snow"] and res["is_snow"].sum() == 1
    assert res.loc[0, "basis"] == "spectral" and res.loc[0, "sig_snow"] > 0.9 and res.loc[0, "snow_score"] > 0.8 and "snow / ice" in res.loc[0, "issues"]


def _green_and_clouds(folder, seed=0, clouds=3):
    from tests.conftest import make_image

    for i in range(24):
        make_image(folder / f"field_{i:02d}.png", size=(64, 64), color=(60 + 9 * (i % 8), 120 + 6 * (i % 5), 50),
                   seed=i + seed)
    for i in range(clouds):
        make_image(folder / f"cloud_{i}.png", size=(64, 64), color=(235, 238, 240), seed=100 + i)
    return folder


def test_outliers_cli_csv_and_gallery(tmp_path, store, page, artifacts):
    from typer.testing import CliRunner

    from agcurate.cli import app

    data = _green_and_clouds(tmp_path / "data")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["outliers", str(data), "--out", str(out), "--store", str(store), "--workers", "0"])
    assert res.exit_code == 0, res.output
    with open(out / "outliers.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = list(rows[0])
    assert header[:4] == ["path", "score", "is_outlier", "rank"] and "window" not in header
    assert {"issues", "cloud_score", "is_cloud", "novelty_score", "is_novel", "knn_z", "brightness",
            "white_share", "cloud_white"} <= set(header)
    assert all("cloud" in r["issues"] for r in rows[:3]) and rows[0]["basis"] == "rgb heuristic"
    assert {r["path"].split("/")[-1] for r in rows[:3]} == {"cloud_0.png", "cloud_1.png", "cloud_2.png"}
    assert [r["is_outlier"] for r in rows[:3]] == ["True", "True", "True"]
    assert float(rows[3]["score"]) < float(rows[2]["score"]) - 5  # the fields are far behind
    n_flagged = sum(r["is_outlier"] == "True" for r in rows)
    assert n_flagged <= 5
    assert [int(r["rank"]) for r in rows] == list(range(1, 28))

    page.goto((out / "outliers.html").as_uri())
    page.wait_for_load_state("load")
    assert page.agcurate_errors == []
    figs = page.locator("#gallery figure")
    assert figs.count() == 27
    assert page.locator("figure.outlier").count() == n_flagged
    # thumbnails are lazy-loaded: they may still be arriving after the page's load event
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
                           timeout=20_000)
    first = figs.first.inner_text()
    assert "#1 · score" in first and "cloud_" in first and "outlier" in first and "cloud" in first
    page.screenshot(path=str(artifacts / "outliers.png"), full_page=True)
    # the page filters by issue, in words
    page.locator("#filters button", has_text="cloud (").click()
    visible = page.locator("#gallery figure:not(.hidden)")
    assert visible.count() == 3 and all("cloud_" in t for t in visible.all_inner_texts())
    page.locator("#filters button", has_text="all (").click()
    assert page.locator("#gallery figure:not(.hidden)").count() == 27


def test_outliers_cli_reference_and_tiles(tmp_path, store):
    import rasterio
    from affine import Affine
    from typer.testing import CliRunner

    from agcurate.cli import app

    data = _green_and_clouds(tmp_path / "data")
    clean = _green_and_clouds(tmp_path / "clean", seed=500, clouds=0)  # other fields, no clouds
    runner = CliRunner()
    out = tmp_path / "ref-out"
    res = runner.invoke(app, ["outliers", str(data), "--reference", str(clean), "--out", str(out),
                              "--store", str(store), "--workers", "0"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "outliers.csv")
    names = df["path"].str.split("/").str[-1]
    assert set(names.head(3)) == {"cloud_0.png", "cloud_1.png", "cloud_2.png"} and df["is_outlier"].head(3).all()
    assert df["is_outlier"].sum() <= 4

    rng = np.random.default_rng(3)
    arr = rng.integers(400, 1500, (4, 96, 96)).astype(np.uint16)
    arr[:, 48:, 48:] = 0
    arr[:, :48, :48] = 9000  # a saturated (cloud) tile
    scene = tmp_path / "scene.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=96, height=96, count=4, dtype="uint16", nodata=0,
                       crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 5000000)) as ds:
        ds.write(arr)
    out2 = tmp_path / "tile-out"
    res = runner.invoke(app, ["outliers", str(scene), "--tile", "32", "--out", str(out2), "--store", str(store),
                              "--workers", "0", "--contamination", "0.2"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out2 / "outliers.csv", keep_default_na=False)
    assert list(df.columns[:6]) == ["path", "score", "is_outlier", "rank", "window", "reason"]
    nodata = df[df["reason"].str.startswith("no-data tile")]
    assert nodata["window"].tolist() == ["64,32,32,32", "32,64,32,32", "64,64,32,32"]  # row by row
    assert nodata["is_outlier"].all() and nodata["rank"].tolist() == [1, 2, 3]
    scored = df[df["reason"] == ""]
    assert len(scored) == 6 and scored.iloc[0]["window"] == "0,0,32,32"  # the cloud tile leads
    assert (out2 / "outliers.html").exists()


def test_outliers_cli_rejects_conflicting_rules(tmp_path):
    from typer.testing import CliRunner

    from agcurate.cli import app

    res = CliRunner().invoke(app, ["outliers", str(tmp_path), "--contamination", "0.1", "--threshold", "3"])
    assert res.exit_code == 2 and "either --contamination or --threshold" in res.output
    res = CliRunner().invoke(app, ["outliers", str(tmp_path), "--method", "magic"])
    assert res.exit_code == 2 and "--method 'magic' is not one of auto, knn, lof, mcd, signals, iforest" in res.output


def test_large_collection_uses_sampled_neighbours_and_still_finds_the_group():
    """Above SAMPLE_BASE items neighbours come from a seeded sample; the planted 3% still lead."""
    from agcurate.ops import outliers as ops

    rng = np.random.default_rng(4)
    n, n_out = ops.SAMPLE_BASE + 1000, 180
    a, b = rng.normal(size=16), rng.normal(size=16)
    vec = np.vstack([_cluster(rng, a, n - n_out), _cluster(rng, b, n_out, spread=0.1)])
    res = score_outliers(vec, _items(n))
    top = set(res["path"].head(n_out))
    planted = {f"/data/img_{i:03d}.png" for i in range(n - n_out, n)}
    assert len(top & planted) >= 0.95 * n_out
    again = score_outliers(vec, _items(n))
    assert again["score"].tolist() == res["score"].tolist()  # deterministic


@pytest.mark.slow
def test_rows_from_an_older_store_get_their_quality_measured(tmp_path, store):
    """Store rows written before the quality signals existed: measured again from the files."""
    import agcurate
    from agcurate.embedding.signals import QUALITY_SIGNALS
    from agcurate.workflows.outliers import fill_quality_signals

    data = _green_and_clouds(tmp_path / "data", clouds=2)
    emb = agcurate.embed([data], store=store, workers=0, progress=False)
    want = emb.items[list(QUALITY_SIGNALS)].to_numpy()
    old = emb.subset(np.arange(len(emb)))
    old.items = old.items.drop(columns=[*QUALITY_SIGNALS, "quality_v"])
    old.items.loc[3, "path"] = str(tmp_path / "gone.png")  # a file that is no longer there
    filled, failed = fill_quality_signals(old, progress=False)
    assert failed == 1
    keep = np.arange(len(emb)) != 3
    np.testing.assert_allclose(filled[list(QUALITY_SIGNALS)].to_numpy()[keep], want[keep], rtol=1e-5)
    assert filled.loc[3, list(QUALITY_SIGNALS)].isna().all()
    res = score_outliers(old.vectors, filled)
    assert res["is_cloud"].sum() == 2
