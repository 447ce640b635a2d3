"""agcurate search: planted copies come first, queries never match themselves, folders work as
queries, and the page shows each query beside its matches."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from agcurate.cli import app
from agcurate.ops.search import search

runner = CliRunner()
ODD = "<img src=x onerror=alert(1)>.jpg"


def test_search_ranks_planted_copies_first(examples_dir, examples_store, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["search", str(examples_dir / "SOAP_061.png"), str(examples_dir / "OSBS_029.jpg"),
                              "--in", str(examples_dir), "-k", "4", "--store", str(examples_store),
                              "--out", str(out), "--workers", "0"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "matches.csv")
    assert list(df.columns[:4]) == ["query", "rank", "path", "score"]
    assert len(df) == 8 and df.groupby("query")["rank"].apply(list).tolist() == [[1, 2, 3, 4]] * 2
    soap = df[df["query"].str.endswith("SOAP_061.png")]
    assert {Path(p).name for p in soap["path"][:2]} == {"SOAP_061_bright.jpg", "SOAP_061_reencoded.jpg"}
    assert "SOAP_061.png" not in {Path(p).name for p in soap["path"]}  # not its own match
    osbs = df[df["query"].str.endswith("OSBS_029.jpg")]
    assert Path(osbs["path"].iloc[0]).name == "OSBS_029_crop.jpg"
    assert (np.diff(soap["score"].to_numpy()) <= 0).all() and soap["score"].between(-1, 1).all()
    assert "SOAP_061_bright.jpg" in res.output


def test_outside_query_folder_and_odd_name(examples_dir, examples_store, tmp_path, page, artifacts):
    """Queries from elsewhere (a folder, one with an odd name) are embedded with the collection's encoder."""
    qdir = tmp_path / "queries"
    qdir.mkdir()
    shutil.copyfile(examples_dir / "AnnualCrop_1_rot90.jpg", qdir / ODD)
    shutil.copyfile(examples_dir / "River_3.jpg", qdir / "river.jpg")
    out = tmp_path / "out"
    res = runner.invoke(app, ["search", str(qdir), "--in", str(examples_dir), "-k", "3", "--store",
                              str(examples_store), "--out", str(out), "--workers", "0"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "matches.csv")
    assert sorted({Path(q).name for q in df["query"]}) == sorted([ODD, "river.jpg"])
    first = df[df["rank"] == 1].set_index(df[df["rank"] == 1]["query"].map(lambda q: Path(q).name))
    assert Path(first.loc[ODD, "path"]).name == "AnnualCrop_1_rot90.jpg" and first.loc[ODD, "score"] > 0.99
    assert Path(first.loc["river.jpg", "path"]).name == "River_3.jpg"

    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto((out / "search.html").as_uri())
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    assert page.locator("section.search").count() == 2
    assert page.locator("figure.query img").count() == 2 and page.locator("figure.match img").count() == 6
    assert page.evaluate("Array.from(document.images).every(i => i.naturalWidth > 0)")
    assert ODD in page.locator("body").inner_text() and page.locator("img[src=x]").count() == 0 and not dialogs
    assert page.agcurate_errors == []
    page.screenshot(path=str(artifacts / "search.png"), full_page=True)


def test_search_without_in_uses_last_collection(examples_dir, tmp_path, store):
    import agcurate

    sub = tmp_path / "coll"
    sub.mkdir()
    for n in ("Forest_1.jpg", "Forest_2.jpg", "SeaLake_1.jpg", "River_1.jpg"):
        shutil.copyfile(examples_dir / n, sub / n)
    agcurate.embed([sub], store=store, workers=0, progress=False)
    out = tmp_path / "out"
    res = runner.invoke(app, ["search", str(examples_dir / "Forest_3.jpg"), "-k", "2", "--store", str(store),
                              "--out", str(out), "--workers", "0"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "matches.csv")
    assert len(df) == 2 and all(Path(p).parent == sub for p in df["path"])
    assert Path(df["path"].iloc[0]).name.startswith("Forest_")


def test_search_function_on_known_vectors():
    v = np.eye(4, dtype=np.float32)
    items = pd.DataFrame({"key": list("abcd"), "path": list("abcd"), "frame": -1, "x": -1, "y": -1, "w": -1, "h": -1})
    q = np.array([[0.9, 0.1, 0, 0], [0, 0, 0.6, 0.8]], np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    res = search(q, v, items, k=2)
    assert res["path"].tolist() == ["a", "b", "d", "c"] and res["rank"].tolist() == [1, 2, 1, 2]
    res = search(v[:1], v, items, k=2, query_keys=["a"])  # a query inside the collection skips itself
    assert res["path"].tolist()[0] != "a" and len(res) == 2
    assert search(q, v, items, k=10)["rank"].max() == 4  # k beyond the collection: all there is


def test_missing_query_is_a_clear_error(examples_dir, examples_store, tmp_path):
    res = runner.invoke(app, ["search", str(tmp_path / "nope.jpg"), "--in", str(examples_dir), "--store",
                              str(examples_store), "--out", str(tmp_path / "o"), "--workers", "0"])
    assert res.exit_code == 2 and "query: " in res.output and "does not exist" in res.output
    assert "Traceback" not in res.output
