"""What the commands print: readable at 80 columns and in a pipe, honest speeds, grouped skips,
correct plurals."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agcurate.cli import app

runner = CliRunner()
NARROW = {"COLUMNS": "80"}


def _table_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line[:1] in "┏┃┡│└┌├"]


# --- 9: tables at 80 columns -----------------------------------------------------------------------

def test_outliers_table_shows_file_names_at_80_columns(tmp_path, examples_dir, store):
    deep = tmp_path / "a-rather-long-folder-name" / "with" / "several" / "levels" / "of" / "nesting" / "images"
    deep.mkdir(parents=True)
    for p in sorted(examples_dir.glob("*.jpg"))[:8]:
        shutil.copy(p, deep / p.name)
    out = tmp_path / "out"
    res = runner.invoke(app, ["outliers", str(deep), "--contamination", "0.5", "--out", str(out),
                              "--store", str(store), "--workers", "0"], env=NARROW)
    assert res.exit_code == 0, res.output
    flagged = pd.read_csv(out / "outliers.csv").query("is_outlier")
    assert len(flagged) == 4
    lines = _table_lines(res.output)
    assert lines and max(len(line) for line in lines) <= 80
    for p in flagged["path"]:
        assert Path(p).name in res.output, (Path(p).name, res.output)
    assert "paths relative to" in res.output and "nesting/images" in res.output


def test_search_table_tells_same_named_files_apart(tmp_path, examples_dir, store):
    picks = sorted(examples_dir.glob("*.jpg"))
    coll = tmp_path / "collection"
    for sub, src in (("north", picks[0]), ("south", picks[5]), ("east", picks[9])):
        (coll / sub).mkdir(parents=True)
        shutil.copy(src, coll / sub / "field.jpg")
    query = tmp_path / "queries" / "q.jpg"
    query.parent.mkdir()
    shutil.copy(picks[5], query)
    res = runner.invoke(app, ["search", str(query), "--in", str(coll), "-k", "1", "--out", str(tmp_path / "o"),
                              "--store", str(store), "--workers", "0"], env=NARROW)
    assert res.exit_code == 0, res.output
    assert "south/field.jpg" in res.output
    assert "agcurate search · 1 query in 3 items" in res.output  # 12: not "1 queries"
    from agcurate.report.outputs import read_manifest

    entry = read_manifest(tmp_path / "o")["matches.csv"]  # 6: what the matches were searched in
    assert entry["command"] == "search" and entry["inputs"] == [str(coll.resolve())]
    assert entry["queries"] == [str(query.resolve())] and entry["items"] == 3


def test_models_table_keeps_whole_model_names_at_80_columns():
    from agcurate.encoders import list_encoders

    res = runner.invoke(app, ["models"], env=NARROW)
    assert res.exit_code == 0, res.output
    lines = _table_lines(res.output)
    assert max(len(line) for line in lines) <= 80
    first_column = "".join(line.split("│")[1].strip() for line in lines if line.startswith("│"))
    for row in list_encoders():
        assert row["name"] in first_column, (row["name"], res.output)
    assert "…" not in res.output


# --- 8: skipped no-data tiles ------------------------------------------------------------------------

def test_skipped_nodata_tiles_are_grouped_with_their_windows(tmp_path, store):
    import rasterio
    from rasterio.transform import Affine

    rng = np.random.default_rng(2)
    data = rng.integers(300, 2500, (4, 64, 64)).astype(np.uint16)
    data[:, :, :48] = 0  # 12 of 16 tiles hold no data
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=4, dtype="uint16", nodata=0,
                       crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 5000000)) as ds:
        ds.write(data)
    res = runner.invoke(app, ["embed", str(path), "--tile", "16", "--workers", "0", "--store", str(store)],
                        env=NARROW)
    assert res.exit_code == 0, res.output
    assert res.output.count("no-data tile: 100% of pixels hold no data") == 1  # one line for the file
    assert "12 tiles" in res.output
    assert "0,0,16,16" in res.output and "16,0,16,16" in res.output    # the windows are shown


def test_print_skipped_groups_identical_reasons_per_file():
    import io

    from rich.console import Console

    from agcurate.cli.common import print_skipped
    from agcurate.sources import Skipped

    class Emb:
        store_dir = None
        skipped = ([Skipped("/d/a.tif", "no-data tile: 100% of pixels hold no data", key=f"/d/a.tif#window={x},0,8,8")
                    for x in range(0, 80, 8)]
                   + [Skipped("/d/a.tif", "no-data tile: 60% of pixels hold no data", key="/d/a.tif#window=0,8,8,8"),
                      Skipped("/d/v.mp4", "cannot decode", key="/d/v.mp4#frame=12"),
                      Skipped("/d/b.jpg", "cannot identify image file")])

    buf = io.StringIO()
    print_skipped(Emb(), Console(file=buf, width=80, soft_wrap=True), limit=10)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith("  skipped /d/a.tif, 10 tiles (0,0,8,8 · 8,0,8,8 ·")
    assert lines[0].endswith(": no-data tile: 100% of pixels hold no data")
    assert "and 4 more" in lines[0]
    assert lines[1] == "  skipped /d/a.tif, tile 0,8,8,8: no-data tile: 60% of pixels hold no data"
    assert lines[2] == "  skipped /d/v.mp4, frame 12: cannot decode"
    assert lines[3] == "  skipped /d/b.jpg: cannot identify image file"
    buf = io.StringIO()
    print_skipped(Emb(), Console(file=buf, width=80, soft_wrap=True), limit=2)
    assert buf.getvalue().splitlines()[-1] == "  ... and 2 more"


# --- 7: the embedding speed ------------------------------------------------------------------------

def test_embed_speed_excludes_start_up_and_says_so(tmp_path, examples_dir, monkeypatch):
    from agcurate.embedding import encode

    real = encode.make_runner

    def slow_start(*args, **kwargs):  # a model that takes a second to build (ONNX export, weights)
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(encode, "make_runner", slow_start)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in sorted(examples_dir.glob("*.jpg"))[:4]:
        shutil.copy(p, folder / p.name)
    import agcurate

    emb = agcurate.embed([folder], store=tmp_path / "s1", workers=0, progress=False)
    s = emb.stats
    assert s.encoded == 4
    assert s.startup_seconds >= 1.0                 # the model build is start-up, not encoding speed
    assert s.rate == pytest.approx(s.encoded / s.loop_seconds)
    assert s.startup_seconds + s.loop_seconds <= s.encode_seconds <= s.seconds
    res = runner.invoke(app, ["embed", str(folder), "--store", str(tmp_path / "s2"), "--workers", "0"],
                        env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    assert "encoding speed (after start-up)" in res.output
    assert "start-up (model load)" in res.output


def test_progress_bar_final_rate_is_items_over_elapsed_time():
    """The bar's final figure is the same measure as the summary: items / seconds of the loop."""
    from rich.progress import Progress

    from agcurate.progress import _rate_column

    clock = [0.0]
    p = Progress(get_time=lambda: clock[0], disable=True)
    t = p.add_task("embedding", total=100)
    clock[0] = 1.5
    p.advance(t, 10)   # the first batch, after worker start
    clock[0] = 2.0
    p.advance(t, 90)
    task = p.tasks[0]
    assert task.finished
    assert _rate_column("items").render(task).plain == "50.0 items/s"


# --- 12: plurals -------------------------------------------------------------------------------------

def test_counts_are_singular_for_one():
    from agcurate.report.html import count

    assert count(1, "run") == "1 run" and count(2, "run") == "2 runs" and count(0, "query") == "0 queries"
    assert count(1, "query") == "1 query" and count(1500, "item") == "1,500 items"
    assert count(1, "video", "videos") == "1 video" and count(3, "copy") == "3 copies"
    assert count(2, "match") == "2 matches" and count(2, "day") == "2 days"


def test_frames_page_says_one_run(tmp_path):
    from agcurate.report.frames import write_frames_html
    from agcurate.workflows.frames import FramesResult, VideoKeyframes

    table = pd.DataFrame({"frame": [0, 10], "time_s": [0.0, 1.0], "segment": [0, 0], "is_repeat": [False, False],
                          "shot": [0, 0], "is_keyframe": [True, False], "score": [1.0, 0.9]})
    res = FramesResult(videos=[VideoKeyframes(path="/v/clip.mp4", table=table, duration_s=2.0, video_fps=5.0)])
    html = write_frames_html(res, tmp_path / "frames.html").read_text(encoding="utf-8")
    assert "1 run of similar frames" in html and "1 keyframe from 2 sampled frames of 1 video" in html
    assert "1 runs" not in html and "video(s)" not in html
