"""``agcurate probe``: stratified sampling, known-answer accuracy, labels from CSV and folders, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agcurate.cli import app
from agcurate.errors import AgcurateError
from agcurate.workflows.probe import parse_fractions
from agcurate.workflows.labels import labels_from_folders, match_labels, read_labels_csv
from agcurate.ops.probe import RUN_COLUMNS, SUMMARY_COLUMNS, probe, stratified_sample, summarize


def separable(n_per_class=40, classes=4, dim=32, noise=0.05, seed=0):
    """Well separated Gaussian blobs on the unit sphere: any decent classifier is perfect on them."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, dim))
    x = np.concatenate([c + noise * rng.normal(size=(n_per_class, dim)) for c in centers])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.repeat([f"class{i}" for i in range(classes)], n_per_class)
    return x.astype(np.float32), y


def random_labels(n=160, classes=4, dim=32, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), rng.integers(0, classes, n).astype(str)


def test_stratified_sample_keeps_every_class_and_the_fraction():
    y = np.array(["a"] * 100 + ["b"] * 50 + ["c"] * 3 + ["d"] * 1)
    rng = np.random.default_rng(0)
    idx = stratified_sample(y, 0.01, rng)
    assert set(y[idx]) == {"a", "b", "c", "d"}          # at least one per class even at 1 %
    assert len(idx) == len(set(idx.tolist()))
    idx = stratified_sample(y, 0.5, np.random.default_rng(0))
    counts = pd.Series(y[idx]).value_counts()
    assert counts["a"] == 50 and counts["b"] == 25      # proportional
    assert counts["c"] in (1, 2) and counts["d"] == 1   # never all of a class with more than one item
    a = stratified_sample(y, 0.2, np.random.default_rng(5))
    b = stratified_sample(y, 0.2, np.random.default_rng(5))
    assert np.array_equal(a, b)


def test_probe_is_near_perfect_on_separable_embeddings():
    x, y = separable()
    runs = probe(x, y, fractions=(0.05, 0.5, 1.0), repeats=3, seed=0)
    assert list(runs.columns) == RUN_COLUMNS
    assert len(runs) == 3 * 3 * 2
    assert runs["accuracy"].min() >= 0.97
    assert runs["macro_f1"].min() >= 0.97
    holdout = runs[runs["fraction"] == 0.05]
    assert (holdout["evaluation"] == "holdout").all()
    assert (holdout["n_train"] == 8).all() and (holdout["n_test"] == 152).all()
    full = runs[runs["fraction"] == 1.0]
    assert (full["evaluation"] == "cv5").all() and (full["n_test"] == 160).all()


def test_probe_is_at_chance_on_random_labels_and_deterministic():
    x, y = random_labels()
    runs = probe(x, y, fractions=(0.1, 1.0), repeats=4, seed=3)
    assert runs["accuracy"].mean() < 0.40                # 4 classes: chance is 0.25
    again = probe(x, y, fractions=(0.1, 1.0), repeats=4, seed=3)
    pd.testing.assert_frame_equal(runs, again)
    other = probe(x, y, fractions=(0.1,), repeats=4, seed=4)
    assert not np.allclose(other["accuracy"].to_numpy(), runs[runs.fraction == 0.1]["accuracy"].to_numpy())


def test_summarize_gives_mean_and_spread():
    x, y = separable(noise=0.6, seed=2)
    runs = probe(x, y, fractions=(0.05, 0.2), repeats=5, seed=0)
    s = summarize(runs)
    assert list(s.columns) == SUMMARY_COLUMNS
    assert len(s) == 4 and (s["repeats"] == 5).all()
    lin = runs[(runs.classifier == "linear") & (runs.fraction == 0.05)]["accuracy"]
    row = s[(s.classifier == "linear") & (s.fraction == 0.05)].iloc[0]
    assert row.accuracy_mean == pytest.approx(lin.mean(), abs=1e-4)
    assert row.accuracy_std == pytest.approx(lin.std(), abs=1e-4)
    # more labels help on a harder problem
    assert s[s.fraction == 0.2]["accuracy_mean"].mean() >= s[s.fraction == 0.05]["accuracy_mean"].mean()


def test_probe_rejects_bad_input():
    x, y = separable()
    with pytest.raises(ValueError, match="two classes"):
        probe(x, np.array(["a"] * len(x)))
    with pytest.raises(ValueError, match="not in"):
        probe(x, y, fractions=(0.0,))
    with pytest.raises(AgcurateError):
        parse_fractions("0.1,abc")
    assert parse_fractions("1%, 10%,1") == [0.01, 0.1, 1.0]


def test_labels_from_csv_by_path_and_by_name(tmp_path):
    (tmp_path / "imgs").mkdir()
    a, b = tmp_path / "imgs" / "a.jpg", tmp_path / "imgs" / "b.jpg"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\nimgs/a.jpg,wheat\n/elsewhere/b.jpg,maize\n")
    table = read_labels_csv(csv)
    assert table[str(a.resolve())] == "wheat"
    got = match_labels([str(a.resolve()), str(b.resolve()), str(tmp_path / "c.jpg")], table)
    assert got.tolist() == ["wheat", "maize", None]     # b matched by its file name
    nohead = tmp_path / "nohead.csv"
    nohead.write_text("imgs/a.jpg,oat\n")
    assert read_labels_csv(nohead) == {str(a.resolve()): "oat"}
    assert labels_from_folders(["/d/Forest/x.jpg", "/d/River/y.jpg"]).tolist() == ["Forest", "River"]


@pytest.fixture(scope="module")
def eurosat_subset(shared_data, tmp_path_factory):
    """8 images of each of 4 EuroSAT classes (class = folder), embedded once into a private store."""
    import shutil

    import agcurate

    src = shared_data("eurosat-rgb") / "images"
    root = tmp_path_factory.mktemp("eurosat-sub")
    for cls in ("Forest", "Highway", "SeaLake", "Industrial"):
        (root / cls).mkdir()
        for i in range(1, 9):
            shutil.copy(src / cls / f"{cls}_{i}.jpg", root / cls / f"{cls}_{i}.jpg")
    store = tmp_path_factory.mktemp("eurosat-store")
    agcurate.embed([root], store=store, workers=0, progress=False, image_size=96)
    return root, store


def test_probe_cli_on_real_labelled_images(eurosat_subset, tmp_path):
    root, store = eurosat_subset
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["probe", str(root), "--labels-from-folders", "--store", str(store),
                                   "--image-size", "96", "--fractions", "0.25,1", "--repeats", "3",
                                   "--out", str(out), "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "agcurate probe" in res.output and "linear" in res.output
    s = pd.read_csv(out / "probe.csv")
    assert list(s.columns) == ["model", *SUMMARY_COLUMNS]
    assert set(s["model"]) == {"lite0"} and len(s) == 4
    assert s[s.fraction == 0.25]["n_train"].tolist() == [8, 8]
    # four visually distinct land-cover classes: ImageNet features separate them well
    assert s["accuracy_mean"].min() >= 0.75
    runs = pd.read_csv(out / "probe_runs.csv")
    assert len(runs) == 2 * 2 * 3


def test_probe_cli_labels_csv_two_models_side_by_side(eurosat_subset, tmp_path):
    """lite0 (ImageNet) against a randomly initialised lite0 saved as a checkpoint: ImageNet must win."""
    from agcurate.encoders import save_encoder
    from agcurate.encoders.hub import build_skeleton
    from agcurate.encoders.lite0 import TF_MEAN, TF_STD

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rand = save_encoder(tmp_path / "random.pt", build_skeleton("timm:tf_efficientnet_lite0"),
                        arch="timm:tf_efficientnet_lite0", dim=1280, input_size=96, mean=TF_MEAN, std=TF_STD)
    root, store = eurosat_subset
    rows = ["path,label"] + [f"{p},{p.parent.name}" for p in sorted(root.rglob("*.jpg"))
                             if p.parent.name != "Industrial"]
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["probe", str(root), "--labels", str(labels), "-m", "lite0", "-m", f"file:{rand}",
                                   "--store", str(store), "--image-size", "96", "--fractions", "0.5",
                                   "--repeats", "2", "--out", str(out), "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "8 items without a label ignored" in res.output
    assert "file:random.pt" in res.output                # one column per model
    s = pd.read_csv(out / "probe.csv")
    assert len(s) == 4 and set(s["model"]) == {"lite0", f"file:{rand}"}
    acc = s.set_index(["model", "classifier"])["accuracy_mean"]
    assert acc[("lite0", "linear")] > acc[(f"file:{rand}", "linear")]
    assert acc[("lite0", "linear")] >= 0.8


def test_probe_cli_errors_are_one_line(eurosat_subset, tmp_path):
    root, store = eurosat_subset
    res = CliRunner().invoke(app, ["probe", str(root), "--store", str(store), "--image-size", "96"])
    assert res.exit_code == 2 and "exactly one of --labels" in res.output
    empty = tmp_path / "labels.csv"
    empty.write_text("path,label\n/nowhere/x.jpg,a\n")
    res = CliRunner().invoke(app, ["probe", str(root), "--labels", str(empty), "--store", str(store),
                                   "--image-size", "96"])
    assert res.exit_code == 2 and "no embedded item has a label" in res.output
