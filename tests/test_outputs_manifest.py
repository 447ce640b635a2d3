"""Outputs say which collection and encoder they belong to (``outputs.json``), and the cluster report
merges only the dedup / outliers CSVs of its own collection and encoder, saying what it left out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from agcurate.cli import app
from agcurate.report.cluster import side_files
from agcurate.report.outputs import MANIFEST, read_manifest, record_outputs

runner = CliRunner()


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory, examples_dir) -> tuple[Path, Path]:
    """Folder A (10 example images) and folder B (3 others): two collections."""
    root = tmp_path_factory.mktemp("collections")
    picks = sorted(examples_dir.glob("*.jpg"))
    a, b = root / "A", root / "B"
    for folder, files in ((a, picks[:10]), (b, picks[-3:])):
        folder.mkdir()
        for p in files:
            shutil.copy(p, folder / p.name)
    return a, b


@pytest.fixture(scope="module")
def mixed_out(two_folders, tmp_path_factory) -> tuple[Path, object]:
    """``dedup A`` and ``outliers A`` into one folder, then ``cluster B --report`` into the same one."""
    a, b = two_folders
    store = tmp_path_factory.mktemp("store")
    out = tmp_path_factory.mktemp("out")
    common = ["--out", str(out), "--store", str(store), "--workers", "0"]
    for args in (["dedup", str(a), "--no-verify"], ["outliers", str(a), "--contamination", "0.3"]):
        res = runner.invoke(app, args + common)
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["cluster", str(b), "--report"] + common)
    assert res.exit_code == 0, res.output
    return out, res


def _subheading(html: str) -> str:
    return html.split('<div class="sub">', 1)[1].split("</div>", 1)[0].strip()


def test_report_of_b_leaves_out_the_outputs_of_a(mixed_out, two_folders):
    out, res = mixed_out
    a, b = two_folders
    # the CLI says what the report left out and why
    assert "report.html leaves out duplicates.csv" in res.output
    assert "report.html leaves out outliers.csv" in res.output
    assert f"made by `agcurate outliers` for another collection ({a.resolve()}" in res.output
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="duplicates"' not in html and 'id="outliers"' not in html
    sub = _subheading(html)
    assert sub.startswith("3 items · ") and "outlier" not in sub and "duplicate" not in sub
    assert 'id="ignored"' in html and "outliers.csv" in html and "another collection" in html
    # the CSVs keep their columns
    assert list(pd.read_csv(out / "outliers.csv").columns[:4]) == ["path", "score", "is_outlier", "rank"]
    assert list(pd.read_csv(out / "duplicates.csv").columns[:4]) == ["group", "path", "keep", "score"]


def test_manifest_records_command_collection_and_encoder(mixed_out, two_folders):
    out, _ = mixed_out
    a, b = two_folders
    files = json.loads((out / MANIFEST).read_text(encoding="utf-8"))["files"]
    assert set(files) >= {"duplicates.csv", "dedup.html", "outliers.csv", "outliers.html", "clusters.csv",
                          "report.html"}
    dup, clu = files["duplicates.csv"], files["clusters.csv"]
    assert dup["command"] == "dedup" and dup["inputs"] == [str(a.resolve())] and dup["items"] == 10
    assert clu["command"] == "cluster" and clu["inputs"] == [str(b.resolve())] and clu["items"] == 3
    assert dup["encoder"] == clu["encoder"] == "lite0" and dup["encoder_id"] == clu["encoder_id"]
    assert dup["encoder_id"].startswith("lite0")
    assert files["outliers.csv"]["command"] == "outliers" and files["outliers.csv"]["time"]


def test_report_of_a_merges_its_own_outputs(mixed_out, two_folders, tmp_path):
    out, _ = mixed_out
    a, _ = two_folders
    mine = tmp_path / "out"
    shutil.copytree(out, mine)
    store = tmp_path / "store"
    res = runner.invoke(app, ["cluster", str(a), "--report", "--out", str(mine), "--store", str(store),
                              "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "leaves out" not in res.output
    html = (mine / "report.html").read_text(encoding="utf-8")
    assert 'id="outliers"' in html and 'id="ignored"' not in html
    assert _subheading(html).endswith(" outliers")  # "· N outliers" of A's own outliers.csv


# --- the matching rule on small hand-made folders ------------------------------------------------

COLL = {"command": "cluster", "inputs": ["/data/B"], "encoder_id": "lite0@224", "encoder": "lite0", "items": 3}
PATHS = ["/data/B/x.jpg", "/data/B/y.jpg", "/data/B/z.jpg"]


def _csvs(out: Path, paths: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"group": [0] * len(paths), "path": paths, "keep": [True] + [False] * (len(paths) - 1),
                  "score": [1.0] * len(paths)}).to_csv(out / "duplicates.csv", index=False)
    pd.DataFrame({"path": paths, "score": [9.0] * len(paths), "is_outlier": [True] * len(paths),
                  "rank": range(1, len(paths) + 1)}).to_csv(out / "outliers.csv", index=False)


def test_matching_entries_are_merged(tmp_path):
    _csvs(tmp_path, PATHS[:2])
    record_outputs(tmp_path, ["duplicates.csv"], {**COLL, "command": "dedup", "items": 3})
    record_outputs(tmp_path, ["outliers.csv"], {**COLL, "command": "outliers", "inputs": ["/data/B/"]})
    side = side_files(tmp_path, PATHS, COLL)
    assert side.ignored == []
    assert len(side.duplicates) == 2 and len(side.outliers) == 2


def test_other_collection_or_encoder_is_left_out_with_the_reason(tmp_path):
    _csvs(tmp_path, PATHS)  # paths that would even match: the record decides
    record_outputs(tmp_path, ["duplicates.csv"], {**COLL, "command": "dedup", "inputs": ["/data/A"], "items": 40})
    record_outputs(tmp_path, ["outliers.csv"], {**COLL, "command": "outliers", "encoder_id": "lite0-ml@224",
                                                "encoder": "lite0-ml"})
    side = side_files(tmp_path, PATHS, COLL)
    assert side.duplicates is None and side.outliers is None
    why = dict(side.ignored)
    assert why["duplicates.csv"] == ("made by `agcurate dedup` for another collection (/data/A, 40 items); "
                                     "this report is of /data/B")
    assert why["outliers.csv"] == "made with encoder lite0-ml; this report uses lite0"


def test_old_folder_without_record_merges_only_a_subset_of_the_collection(tmp_path):
    _csvs(tmp_path / "inside", PATHS[1:])
    side = side_files(tmp_path / "inside", PATHS, COLL)
    assert side.ignored == [] and len(side.outliers) == 2 and len(side.duplicates) == 2
    _csvs(tmp_path / "outside", PATHS[:1] + ["/data/A/1.jpg", "/data/A/2.jpg"])
    side = side_files(tmp_path / "outside", PATHS, COLL)
    assert side.duplicates is None and side.outliers is None
    assert dict(side.ignored)["outliers.csv"] == ("no record of the collection it was made for, and 2 of its "
                                                  "3 paths are not in this collection")


def test_unreadable_manifest_falls_back_to_the_path_rule(tmp_path):
    _csvs(tmp_path, PATHS)
    (tmp_path / MANIFEST).write_text("{not json", encoding="utf-8")
    assert read_manifest(tmp_path) == {}
    side = side_files(tmp_path, PATHS, COLL)
    assert side.ignored == [] and len(side.outliers) == 3
    record_outputs(tmp_path, ["clusters.csv"], COLL)  # a broken manifest is replaced, not a crash
    assert set(read_manifest(tmp_path)) == {"clusters.csv"}


def test_record_keeps_other_entries_and_replaces_its_own(tmp_path):
    record_outputs(tmp_path, ["a.csv", "a.html"], {**COLL, "command": "dedup"})
    record_outputs(tmp_path, ["b.csv"], {**COLL, "command": "outliers"})
    record_outputs(tmp_path, ["a.csv"], {**COLL, "command": "dedup", "items": 7})
    files = read_manifest(tmp_path)
    assert set(files) == {"a.csv", "a.html", "b.csv"}
    assert files["a.csv"]["items"] == 7 and files["a.html"]["items"] == 3
    assert not list(tmp_path.glob("*.tmp"))


def test_two_processes_recording_at_once_keep_every_entry(tmp_path):
    """Each record is a read-modify-write of one file: the folder lock keeps concurrent writers'
    entries (without it, one process overwrites what the other added meanwhile)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys; from agcurate.report.outputs import record_outputs\n"
            "for i in range(40):\n"
            "    record_outputs(sys.argv[1], [f'{sys.argv[2]}{i}.csv'], {'command': sys.argv[2]})\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), tag], cwd=ROOT) for tag in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    files = read_manifest(tmp_path)
    assert len(files) == 80 and files["a39.csv"]["command"] == "a" and files["b0.csv"]["command"] == "b"
    assert not list(tmp_path.glob("*.tmp"))
