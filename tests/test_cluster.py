"""``agcurate cluster``: known-answer clustering on generated blobs and real images, determinism,
the clusters.csv contract and the CLI (in-process)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agcurate.cli import app
from agcurate.ops.cluster import (cluster, clusters_csv, default_min_cluster_size, summary)

runner = CliRunner()


def blobs(n_per: int = 60, k: int = 4, dim: int = 64, spread: float = 0.15, seed: int = 0):
    """``k`` well separated Gaussian blobs on the unit sphere, labels in input order."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    x = np.concatenate([c + spread * rng.normal(size=(n_per, dim)) * np.linalg.norm(c) / np.sqrt(dim)
                        for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(k), n_per)


def items_frame(n: int, **cols) -> pd.DataFrame:
    df = pd.DataFrame({"path": [f"/data/img_{i:03d}.jpg" for i in range(n)], "frame": -1,
                       "x": -1, "y": -1, "w": -1, "h": -1})
    for k, v in cols.items():
        df[k] = v
    return df


@pytest.fixture(scope="module")
def blob_result():
    x, y = blobs()
    return x, y, cluster(x)


def test_blobs_recovered(blob_result):
    from sklearn.metrics import adjusted_rand_score

    _, y, table = blob_result
    s = summary(table)
    assert s["clusters"] == 4
    assert s["noise_share"] < 0.05
    assert sorted(s["sizes"]) == [60, 60, 60, 60] or adjusted_rand_score(y, table["cluster"]) > 0.95
    clustered = table["cluster"] >= 0
    assert adjusted_rand_score(y[clustered], table["cluster"][clustered]) == pytest.approx(1.0)


def test_table_shape_and_ranks(blob_result):
    x, _, table = blob_result
    assert list(table.columns) == ["cluster", "probability", "map_x", "map_y", "score", "rank", "is_noise"]
    assert len(table) == len(x)
    assert table["is_noise"].equals(table["cluster"] < 0)
    assert table["probability"].between(0, 1).all()
    # clusters are numbered by size, largest first
    sizes = table[table.cluster >= 0].cluster.value_counts().sort_index().tolist()
    assert sizes == sorted(sizes, reverse=True)
    for c, part in table[table.cluster >= 0].groupby("cluster"):
        assert sorted(part["rank"]) == list(range(len(part)))
        # rank 0 is the member closest to the centre of its cluster (in the original space)
        centre = x[part.index].mean(axis=0)
        sims = x[part.index] @ (centre / np.linalg.norm(centre))
        assert part.index[part["rank"].to_numpy().argmin()] == part.index[sims.argmax()]
    # the 2-D map keeps blobs apart: each blob's points are nearer their own centroid than others'
    xy = table[["map_x", "map_y"]].to_numpy()
    lab = table["cluster"].to_numpy()
    cents = np.stack([xy[lab == c].mean(axis=0) for c in range(4)])
    nearest = np.linalg.norm(xy[lab >= 0, None] - cents[None], axis=2).argmin(axis=1)
    assert (nearest == lab[lab >= 0]).mean() > 0.95


def test_same_input_same_csv(blob_result, tmp_path):
    x, _, table = blob_result
    again = cluster(x)
    items = items_frame(len(x))
    a = clusters_csv(table, items).to_csv(index=False)
    b = clusters_csv(again, items).to_csv(index=False)
    assert a == b


def test_pca_reduction_also_clusters():
    from sklearn.metrics import adjusted_rand_score

    x, y = blobs(seed=3)
    table = cluster(x, reduction="pca", with_map=False)
    assert table.attrs["params"].reduction == "pca"
    assert adjusted_rand_score(y, table["cluster"]) > 0.9


def test_large_collections_fit_a_sample_and_place_the_rest():
    """Beyond the sample limit, items outside the sample take cluster and position from neighbours."""
    from sklearn.metrics import adjusted_rand_score

    x, y = blobs(n_per=80, k=4, seed=7)
    table = cluster(x, sample_limit=120)
    assert table.attrs["params"].sample_size == 120
    assert adjusted_rand_score(y, table["cluster"]) > 0.95
    assert table.loc[table.cluster >= 0, "probability"].gt(0).all()
    xy = table[["map_x", "map_y"]].to_numpy()
    cents = np.stack([xy[y == c].mean(axis=0) for c in range(4)])
    assert (np.linalg.norm(xy[:, None] - cents[None], axis=2).argmin(axis=1) == y).mean() > 0.95
    again = cluster(x, sample_limit=120)
    assert clusters_csv(table, items_frame(len(x))).equals(clusters_csv(again, items_frame(len(x))))


def test_assign_noise_leaves_no_item_out():
    from sklearn.metrics import adjusted_rand_score

    x, _ = blobs(n_per=40, k=4, seed=11)
    x = x[:124]                 # three blobs of 40 and 4 items of a fourth: too few for a cluster
    plain = cluster(x, with_map=False, min_cluster_size=10, min_samples=10, reduction="pca")
    assigned = cluster(x, with_map=False, min_cluster_size=10, min_samples=10, reduction="pca",
                       assign_noise=True)
    assert (plain["cluster"] < 0).sum() == 4
    assert (assigned["cluster"] >= 0).all() and not assigned["is_noise"].any()
    kept = plain["cluster"] >= 0                          # clustered items keep their grouping
    assert adjusted_rand_score(plain["cluster"][kept], assigned["cluster"][kept]) == 1.0
    assert assigned.attrs["params"].assign_noise


def test_min_cluster_size_controls_granularity():
    # 2 big blobs, each made of 2 tight sub-blobs of 30: small min size finds 4, large finds 2
    x, y = blobs(n_per=30, k=4, seed=5)
    x[30:60] = x[:30] + 0.02 * (x[30:60] - x[30:60].mean(axis=0))
    x[90:120] = x[60:90] + 0.02 * (x[90:120] - x[90:120].mean(axis=0))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    big = cluster(x, min_cluster_size=45, with_map=False)
    assert summary(big)["clusters"] == 2


def test_default_min_cluster_size_scales():
    assert default_min_cluster_size(3) == 2
    assert default_min_cluster_size(20) == 5
    assert default_min_cluster_size(40) == 6
    assert default_min_cluster_size(1_500) == 39
    assert default_min_cluster_size(100_000) == 316
    sizes = [default_min_cluster_size(n) for n in (10, 100, 1_000, 10_000, 100_000, 10**7)]
    assert sizes == sorted(sizes) and sizes[-1] == 1000


@pytest.mark.parametrize("n", [0, 1, 2, 3, 6])
def test_tiny_inputs_do_not_crash(n):
    x, _ = blobs(n_per=3, k=2, seed=1)
    table = cluster(x[:n])
    assert len(table) == n
    assert np.isfinite(table[["map_x", "map_y", "probability"]].to_numpy()).all()


def test_csv_columns_exact_for_images_tiles_and_frames(blob_result):
    _, _, table = blob_result
    n = len(table)
    csv = clusters_csv(table, items_frame(n))
    assert list(csv.columns) == ["path", "cluster", "x", "y", "probability"]
    tiles = items_frame(n, x=np.arange(n) * 64, y=0, w=64, h=64)
    csv = clusters_csv(table, tiles)
    assert list(csv.columns) == ["path", "cluster", "x", "y", "probability", "window"]
    assert csv["window"][1] == "64,0,64,64"
    # map coordinates, not the tile window, land in x/y
    assert csv["x"].tolist() == np.round(table["map_x"], 4).tolist()
    frames = items_frame(n, frame=np.arange(n))
    csv = clusters_csv(table, frames)
    assert list(csv.columns) == ["path", "cluster", "x", "y", "probability", "frame"]
    assert csv["frame"][5] == 5


def test_real_images_cluster_by_class(shared_data, store):
    """Three visually distinct EuroSAT classes (16 images each) come out as their own clusters.

    (Forest and SeaLake, both dark and smooth, share one cluster at this size with lite0 vectors.)
    """
    from sklearn.metrics import normalized_mutual_info_score

    import agcurate

    root = shared_data("eurosat-rgb") / "images"
    files = [root / c / f"{c}_{i}.jpg" for c in ("AnnualCrop", "Forest", "Residential") for i in range(1, 17)]
    emb = agcurate.embed(files, store=store, workers=0, progress=False)
    table = cluster(emb.vectors)
    truth = [Path(p).parent.name for p in emb.paths]
    nmi = normalized_mutual_info_score(truth, table["cluster"])
    assert summary(table)["clusters"] == 3
    assert nmi > 0.75, nmi


# --- the command line -----------------------------------------------------------------------------

def test_cli_writes_csv_and_summary(examples_store, examples_dir, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["cluster", str(examples_dir), "--store", str(examples_store),
                              "--out", str(out), "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "clusters" in res.output and "noise" in res.output and "cluster sizes" in res.output
    df = pd.read_csv(out / "clusters.csv")
    assert list(df.columns) == ["path", "cluster", "x", "y", "probability"]
    n_images = len(list(examples_dir.glob("*.*")))
    assert len(df) == n_images
    assert df["cluster"].max() >= 1                     # more than one group in the examples
    assert not (out / "report.html").exists()          # only with --report
    # EuroSAT examples of one class mostly share a cluster
    df["cls"] = [Path(p).name.split("_")[0] for p in df["path"]]
    forest = df[df.cls == "Forest"]["cluster"]
    assert forest.value_counts().iloc[0] >= 4


def test_cli_is_deterministic_and_reuses_last_collection(examples_store, examples_dir, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    r1 = runner.invoke(app, ["cluster", str(examples_dir), "--store", str(examples_store), "--out", str(a)])
    # no PATH: the collection of the last `agcurate embed` in this store (the examples)
    r2 = runner.invoke(app, ["cluster", "--store", str(examples_store), "--out", str(b)])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    assert (a / "clusters.csv").read_bytes() == (b / "clusters.csv").read_bytes()


def test_cli_min_cluster_size_and_report(examples_store, examples_dir, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["cluster", str(examples_dir), "--store", str(examples_store), "--out", str(out),
                              "--min-cluster-size", "40", "--report"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "clusters.csv")
    assert df["cluster"].nunique() <= 2                 # at most one cluster of >= 40 (+ noise)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Plotly" in html and "cdn.plot.ly" not in html.split("<script>")[0]
    assert len(list((out / "thumbs").glob("*.jpg"))) == len(df)


def test_cli_bad_options(examples_store, tmp_path):
    res = runner.invoke(app, ["cluster", "--store", str(examples_store), "--out", str(tmp_path),
                              "--reduction", "tsne"])
    assert res.exit_code != 0
    assert res.exit_code == 2 and "--reduction 'tsne' is not one of umap, pca" in res.output
    res = runner.invoke(app, ["cluster", str(tmp_path / "missing"), "--store", str(examples_store),
                              "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "Traceback" not in res.output


def test_cli_goes_on_past_a_bad_file(tmp_path, examples_dir, store):
    src = tmp_path / "imgs"
    src.mkdir()
    for p in sorted(examples_dir.glob("*.jpg"))[:12]:
        shutil.copy(p, src / p.name)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    res = runner.invoke(app, ["cluster", str(src), "--store", str(store), "--out", str(tmp_path / "o"),
                              "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "broken.jpg" in res.output
    assert len(pd.read_csv(tmp_path / "o" / "clusters.csv")) == 12


# --- phases while UMAP and HDBSCAN run ----------------------------------------------------------------

def test_cluster_op_reports_its_phases():
    x, _ = blobs(n_per=30, k=3, seed=2)
    calls: list[str] = []
    cluster(x, on_phase=calls.append)
    assert calls == ["reducing", "clustering", "map"]
    calls.clear()
    cluster(x, sample_limit=60, with_map=False, reduction="pca", on_phase=calls.append)
    assert calls == ["reducing", "clustering", "placing"]


def test_workflow_reports_phases_and_cli_stays_quiet_in_a_pipe(examples_store, examples_dir, tmp_path,
                                                                monkeypatch):
    import agcurate

    calls: list[str] = []
    agcurate.cluster([examples_dir], store=examples_store, out=tmp_path / "a", report=True, progress=False,
                     on_phase=calls.append)
    assert calls == ["reducing", "clustering", "map", "report"]
    monkeypatch.delenv("AGCURATE_NO_PROGRESS")  # a pipe (CliRunner) is what keeps it quiet now
    monkeypatch.delenv("CI", raising=False)
    res = runner.invoke(app, ["cluster", str(examples_dir), "--store", str(examples_store), "--out",
                              str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert "reducing" not in res.output and "clustering:" not in res.output


def test_phase_status_shows_phases_when_enabled(capsys):
    from agcurate.progress import phase_status

    with phase_status(["reducing", "clustering", "map"], "cluster", enabled=True) as phase:
        phase("reducing")
        phase("clustering")
        phase("map")
    err = capsys.readouterr().err
    assert "cluster: map" in err and "3/3" in err
    with phase_status(["reducing"], "cluster") as phase:  # not a terminal (and AGCURATE_NO_PROGRESS)
        phase("reducing")
    assert capsys.readouterr().err == ""
