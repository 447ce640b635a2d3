"""The cluster report in a real headless browser: loads offline with no console errors, one point per
item, hover shows a thumbnail, click-through links, dedup/outliers sections, names escaped."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agcurate.cli import app

runner = CliRunner()
XSS_NAME = "<img src=x onerror=alert(1)>.jpg"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def collection(tmp_path_factory, examples_dir) -> Path:
    """A few example images plus one whose file name is an HTML injection attempt."""
    src = tmp_path_factory.mktemp("collection")
    picks = sorted(examples_dir.glob("*.jpg"))
    for p in picks[:20]:
        shutil.copy(p, src / p.name)
    shutil.copy(picks[0], src / XSS_NAME)
    return src


@pytest.fixture(scope="module")
def col_store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def report_dir(collection, col_store, tmp_path_factory) -> Path:
    """``agcurate cluster --report`` run once on the collection (via the CLI, in-process)."""
    store = col_store
    out = tmp_path_factory.mktemp("out")
    res = runner.invoke(app, ["cluster", str(collection), "--report", "--out", str(out), "--store", str(store),
                              "--workers", "0", "--min-cluster-size", "3"])
    assert res.exit_code == 0, res.output
    return out


def open_report(page, path: Path):
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("#map[data-ready='1']", timeout=60_000)
    page.agc_requests, page.agc_dialogs = requests, dialogs
    return page


def trace_points(page, meta: str = "cluster") -> int:
    return page.evaluate("""(meta) => window.agcurateReport.graph._fullData
        .filter(t => t.meta === meta).reduce((s, t) => s + t.x.length, 0)""", meta)


def hover_point(page, curve: int = 0, point: int = 0) -> int:
    """Move the real mouse onto one point of the scatter; returns that item's index."""
    x, y, i = page.evaluate("""([c, p]) => {
        const gd = window.agcurateReport.graph, fl = gd._fullLayout, t = gd._fullData[c];
        const bb = gd.querySelector('.nsewdrag').getBoundingClientRect();
        return [bb.left + fl.xaxis.l2p(t.x[p]), bb.top + fl.yaxis.l2p(t.y[p]), t.customdata[p]]; }""", [curve, point])
    page.mouse.move(x - 6, y - 6)
    page.mouse.move(x, y)
    return i


def test_report_loads_offline_with_one_point_per_item(report_dir, page, artifacts):
    csv = pd.read_csv(report_dir / "clusters.csv")
    open_report(page, report_dir / "report.html")
    assert page.agcurate_errors == []
    assert trace_points(page) == len(csv) == 21
    # nothing but local files: no CDN, no server
    assert all(u.startswith(("file:", "data:", "blob:")) for u in page.agc_requests), page.agc_requests
    # legend entries, one per cluster (+ noise), and the sizes table agrees with the CSV
    n_groups = csv["cluster"].nunique()
    assert page.evaluate("window.agcurateReport.graph._fullData.length") == n_groups
    sizes = {int(r.get_attribute("data-cluster")): int(r.query_selector("td.num").inner_text())
             for r in page.query_selector_all("#sizes tbody tr")}
    assert sizes == csv["cluster"].value_counts().to_dict()
    # one gallery per cluster, most representative first, every image loads
    assert len(page.query_selector_all("section.cluster")) == n_groups
    imgs = page.query_selector_all("section.cluster img")
    assert len(imgs) == len(csv)
    assert all(img.get_attribute("loading") == "lazy" for img in imgs)
    for img in imgs:
        img.scroll_into_view_if_needed()
    page.wait_for_function("""() => [...document.querySelectorAll('section.cluster img')]
        .every(i => i.complete && i.naturalWidth > 0)""", timeout=20_000)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts / "cluster_report.png"), full_page=True)


def test_hover_shows_thumbnail_and_path(report_dir, page, artifacts):
    open_report(page, report_dir / "report.html")
    assert not page.is_visible("#hover-img")
    i = hover_point(page, 0, 0)
    page.wait_for_selector("#hover-img", state="visible", timeout=5_000)
    page.wait_for_function("() => document.getElementById('hover-img').naturalWidth > 0", timeout=5_000)
    path = page.evaluate("(i) => window.agcurateReport.data.path[i]", i)
    assert page.inner_text("#hover-path") == path
    assert page.get_attribute("#hover-img", "src").startswith("thumbs/")
    # the gallery links (and a click on the map) open the full image through a file:// link
    link = page.get_attribute(f"figure[data-item='{i}'] a", "href")
    assert link == Path(path).resolve().as_uri()
    assert page.evaluate("(i) => window.agcurateReport.href(i)", i) == link
    page.screenshot(path=str(artifacts / "cluster_report_hover.png"))
    # the legend shows and hides clusters
    page.click(".legend .traces >> nth=0")
    page.wait_for_function("() => window.agcurateReport.graph._fullData[0].visible === 'legendonly'")
    page.click(".legend .traces >> nth=0")
    page.wait_for_function("() => window.agcurateReport.graph._fullData[0].visible === true")
    assert page.agcurate_errors == []


def test_hostile_file_name_is_text(report_dir, page):
    open_report(page, report_dir / "report.html")
    assert page.agc_dialogs == []
    assert page.query_selector_all("img[src='x']") == []
    captions = page.eval_on_selector_all("figcaption", "els => els.map(e => e.textContent)")
    assert any(XSS_NAME in c for c in captions)
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    assert XSS_NAME not in html                      # never raw in the markup
    # hovering that very point shows its path as text too
    i = page.evaluate("(name) => window.agcurateReport.data.path.findIndex(p => p.endsWith(name))", XSS_NAME)
    page.evaluate("(i) => window.agcurateReport.show(i)", i)
    assert page.inner_text("#hover-path").endswith(XSS_NAME)
    assert page.query_selector_all("img[src='x']") == []
    assert page.agc_dialogs == [] and page.agcurate_errors == []


def test_dedup_and_outliers_sections(report_dir, col_store, tmp_path, page, artifacts):
    out = tmp_path / "out"
    shutil.copytree(report_dir, out)
    csv = pd.read_csv(out / "clusters.csv")
    paths = csv["path"].tolist()
    # as `agcurate dedup` and `agcurate outliers` write them (exact columns)
    pd.DataFrame({"group": [0, 0, 1, 1, 1], "path": [paths[0], paths[1], paths[2], paths[3], paths[4]],
                  "keep": [True, False, True, False, False], "score": [1.0, 0.98, 1.0, 0.97, 0.96]}
                 ).to_csv(out / "duplicates.csv", index=False)
    pd.DataFrame({"path": paths, "score": np.linspace(1, 0, len(paths)),
                  "is_outlier": [i < 3 for i in range(len(paths))], "rank": range(1, len(paths) + 1)}
                 ).to_csv(out / "outliers.csv", index=False)
    res = runner.invoke(app, ["cluster", str(Path(paths[0]).parent), "--report", "--out", str(out),
                              "--store", str(col_store), "--workers", "0", "--min-cluster-size", "3"])
    assert res.exit_code == 0, res.output
    open_report(page, out / "report.html")
    assert page.agcurate_errors == []
    assert page.is_visible("#duplicates") and page.is_visible("#outliers")
    assert len(page.query_selector_all("#duplicates .dupgroup")) == 2
    assert len(page.query_selector_all("#duplicates figure.keep")) == 2
    assert len(page.query_selector_all("#outliers figure")) == 3
    assert trace_points(page, "duplicates") == 5
    assert trace_points(page, "outliers") == 3
    assert trace_points(page) == len(paths)              # marks are extra layers, not extra items
    page.screenshot(path=str(artifacts / "cluster_report_dedup_outliers.png"), full_page=True)


def test_report_says_which_side_files_it_left_out(report_dir, col_store, tmp_path, page, artifacts):
    """An outliers.csv of another collection in the folder is not merged, and the page says so."""
    from agcurate.report.outputs import record_outputs

    out = tmp_path / "out"
    shutil.copytree(report_dir, out)
    paths = pd.read_csv(out / "clusters.csv")["path"].tolist()
    other = [f"/elsewhere/field_{i}.jpg" for i in range(12)]
    pd.DataFrame({"path": other, "score": np.linspace(9, 6, 12), "is_outlier": True, "rank": range(1, 13)}
                 ).to_csv(out / "outliers.csv", index=False)
    record_outputs(out, ["outliers.csv"], {"command": "outliers", "inputs": ["/elsewhere"], "encoder": "lite0",
                                           "encoder_id": "lite0", "items": 12})
    res = runner.invoke(app, ["cluster", str(Path(paths[0]).parent), "--report", "--out", str(out),
                              "--store", str(col_store), "--workers", "0", "--min-cluster-size", "3"])
    assert res.exit_code == 0, res.output
    assert "report.html leaves out outliers.csv: made by `agcurate outliers` for another collection" in res.output
    open_report(page, out / "report.html")
    assert page.agcurate_errors == []
    assert page.is_visible("#ignored")
    note = page.inner_text("#ignored")
    assert "outliers.csv" in note and "another collection (/elsewhere, 12 items)" in note
    assert page.query_selector("#outliers") is None
    assert "outliers" not in page.inner_text("header .sub")
    page.screenshot(path=str(artifacts / "cluster_report_ignored.png"))


def test_sections_absent_without_csvs(report_dir):
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    assert 'id="duplicates"' not in html and 'id="outliers"' not in html


def test_show_all_expands_a_gallery(report_dir, tmp_path, page, monkeypatch):
    """Large clusters render their top images; the rest come on request, built as text."""
    from agcurate.ops.cluster import cluster
    from agcurate.report import cluster as rc
    from agcurate.sources import discover

    monkeypatch.setattr(rc, "GALLERY_TOP", 2)
    monkeypatch.setattr(rc, "NOISE_TOP", 2)
    csv = pd.read_csv(report_dir / "clusters.csv")
    found = discover([Path(csv["path"][0]).parent])
    items = pd.DataFrame([{"path": it.path, "key": it.key, "kind": it.kind, "frame": it.frame,
                           "time_s": it.time_s, "x": -1, "y": -1, "w": -1, "h": -1, "variant": it.variant,
                           "fingerprint": it.fingerprint, "meta": ""} for it in found.items])
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(len(items), 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    table = cluster(vecs, min_cluster_size=3)
    table["cluster"] = np.arange(len(table)) % 2          # two clusters of about ten
    table["rank"] = np.arange(len(table)) // 2
    rc.write_cluster_report(tmp_path, items, table)
    open_report(page, tmp_path / "report.html")
    assert len(page.query_selector_all("#cluster-0 figure")) == 2
    page.click("#cluster-0 button.more")
    assert len(page.query_selector_all("#cluster-0 figure")) == int((table["cluster"] == 0).sum())
    assert page.query_selector_all("img[src='x']") == []
    captions = page.eval_on_selector_all("figcaption", "els => els.map(e => e.textContent)")
    assert any(XSS_NAME in c for c in captions)
    assert page.agcurate_errors == []


@pytest.mark.slow
def test_50k_points_stay_usable(tmp_path, page, artifacts):
    """50k points: every one on the map, hover still shows a thumbnail, images load lazily.

    Timings are printed by ``benchmarks/report_scale.py``; here only behaviour is asserted.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "report_scale", Path(__file__).resolve().parents[1] / "benchmarks" / "report_scale.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path, _ = bench.build(tmp_path, 50_000)
    images: list[str] = []
    page.on("request", lambda r: images.append(r.url) if r.url.endswith(".jpg") else None)
    open_report(page, path)
    assert trace_points(page) == 50_000
    assert len(images) < 200                            # lazy: only what is on screen, not 50k
    hover_point(page, 0, 0)
    page.wait_for_function("() => document.getElementById('hover-img').naturalWidth > 0", timeout=30_000)
    assert page.agcurate_errors == []
    page.screenshot(path=str(artifacts / "cluster_report_50k.png"))


def test_frames_and_tiles_say_where(tmp_path):
    """Frames and tiles are labelled with their frame / window beside the file name."""
    from agcurate.report.cluster import _where_labels

    items = pd.DataFrame({"path": ["/v.mp4", "/r.tif", "/a.jpg"], "frame": [12, -1, -1],
                          "x": [-1, 256, -1], "y": [-1, 0, -1], "w": [-1, 256, -1], "h": [-1, 256, -1]})
    assert _where_labels(items) == ["frame 12", "window 256,0,256,256", ""]
