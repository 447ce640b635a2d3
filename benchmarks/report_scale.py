"""The cluster report at 50k points: file size, render time, and how fast headless Chromium opens it.

    PYTHONPATH=. python benchmarks/report_scale.py [--n 50000] [--out .bench/report-50k]

Builds a synthetic clustering (Gaussian blobs on the map, 40 clusters, 3% noise) for ``--n`` items that
share a few dozen real thumbnails, writes the report with ``write_cluster_report`` and opens it in
Debian's chromium via Playwright: prints time to the map being drawn, points drawn, whether the scatter
is WebGL, hover-to-thumbnail time, images fetched at load (lazy loading) and console errors.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(out: Path, n: int, clusters: int = 40, seed: int = 0) -> tuple[Path, float]:
    """Write a synthetic ``n``-item report into ``out``; returns its path and the seconds it took."""
    import pandas as pd
    from PIL import Image

    from agcurate.report.cluster import write_cluster_report

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "thumbs").mkdir(exist_ok=True)
    examples = sorted((ROOT / "examples" / "images").glob("*.jpg"))
    thumb_names = []
    for i, p in enumerate(examples):
        name = f"{i:020x}.jpg"
        img = Image.open(p).convert("RGB")
        img.thumbnail((192, 192))
        img.save(out / "thumbs" / name, quality=80)
        thumb_names.append(f"thumbs/{name}")
    centres = rng.normal(scale=12, size=(clusters, 2))
    labels = rng.integers(0, clusters, n)
    xy = centres[labels] + rng.normal(size=(n, 2))
    labels[rng.random(n) < 0.03] = -1
    dist = np.linalg.norm(xy - centres[np.maximum(labels, 0)], axis=1)
    rank = np.zeros(n, np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx[np.argsort(dist[idx])]] = np.arange(len(idx))
    table = pd.DataFrame({"cluster": labels, "probability": rng.random(n), "map_x": xy[:, 0], "map_y": xy[:, 1],
                          "score": -dist, "rank": rank, "is_noise": labels < 0})
    items = pd.DataFrame({"path": [f"/data/field-survey/2024/plot_{i // 1000:03d}/IMG_{i:06d}.jpg" for i in range(n)],
                          "frame": -1, "x": -1, "y": -1, "w": -1, "h": -1})
    thumbs = [thumb_names[i % len(thumb_names)] for i in range(n)]
    t = time.perf_counter()
    path = write_cluster_report(out, items, table, thumbs=thumbs, title=f"synthetic {n:,}-item report")
    return path, time.perf_counter() - t


def open_in_browser(path: Path) -> dict:
    """Load the report in headless Chromium and measure what a person waits for."""
    from playwright.sync_api import sync_playwright

    res: dict = {"errors": [], "images": 0}
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        pg = b.new_page(viewport={"width": 1400, "height": 1000})
        pg.on("console", lambda m: res["errors"].append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: res["errors"].append(str(e)))
        pg.on("request", lambda r: res.__setitem__("images", res["images"] + r.url.endswith(".jpg")))
        t = time.perf_counter()
        pg.goto(path.resolve().as_uri(), timeout=120_000)
        res["dom_s"] = time.perf_counter() - t
        pg.wait_for_selector("#map[data-ready='1']", timeout=120_000)
        res["map_s"] = time.perf_counter() - t
        res["images_at_load"] = res["images"]
        res["timing"] = pg.evaluate("""() => { const t = window.agcurateReport.timing,
            nav = performance.getEntriesByType('navigation')[0];
            return {html_parsed: nav.domInteractive, script_start: t.script, json_parsed: t.parsed, plotted: t.plotted}; }""")
        res["points"] = pg.evaluate("""() => window.agcurateReport.graph._fullData
            .filter(t => t.meta === 'cluster').reduce((s, t) => s + t.x.length, 0)""")
        res["type"] = pg.evaluate("window.agcurateReport.graph._fullData[0].type")
        x, y = pg.evaluate("""() => { const gd = window.agcurateReport.graph, fl = gd._fullLayout, t = gd._fullData[0];
            const bb = gd.querySelector('.nsewdrag').getBoundingClientRect();
            return [bb.left + fl.xaxis.l2p(t.x[0]), bb.top + fl.yaxis.l2p(t.y[0])]; }""")
        t = time.perf_counter()
        pg.mouse.move(x - 4, y - 4)
        pg.mouse.move(x, y)
        pg.wait_for_function("() => document.getElementById('hover-img').naturalWidth > 0", timeout=30_000)
        res["hover_s"] = time.perf_counter() - t
        res["heap_mib"] = pg.evaluate("performance.memory ? performance.memory.usedJSHeapSize / 1048576 : -1")
        pg.screenshot(path=str(path.with_name("report-50k.png")))
        b.close()
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--out", type=Path, default=ROOT / ".bench" / "report-50k")
    args = ap.parse_args(argv)
    path, secs = build(args.out, args.n)
    size = path.stat().st_size / 2**20
    print(f"wrote {path} ({size:.1f} MiB incl. {4.6:.1f} MiB of Plotly) in {secs:.1f} s")
    r = open_in_browser(path)
    print(f"chromium: DOM loaded {r['dom_s']:.2f} s, map drawn {r['map_s']:.2f} s ({r['points']:,} points, "
          f"{r['type']}), hover thumbnail {r['hover_s']:.2f} s, images fetched at load {r['images_at_load']}, "
          f"JS heap {r['heap_mib']:.0f} MiB, console errors {len(r['errors'])}")
    t = r["timing"]
    print("  in the page (ms from navigation): " + ", ".join(f"{k} {v:,.0f}" for k, v in t.items()))
    for e in r["errors"][:5]:
        print("  error:", e)


if __name__ == "__main__":
    main()
