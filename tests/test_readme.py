"""The README's Python examples run as shown (that every command is in the README: test_cli)."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_python_examples_for_every_command():
    code = "\n".join(python_blocks())
    for name in ("embed", "dedup", "frames", "outliers", "cluster", "search", "probe", "pretrain"):
        assert f"agcurate.{name}(" in code, name


@pytest.mark.slow
def test_readme_python_examples_run(examples_store, tmp_path, monkeypatch, capsys):
    """Run every ```python block of the README, in order, from a folder laid out like the repository
    (examples/ beside it) with a store that already holds the examples' vectors."""
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    store = tmp_path / "store"
    shutil.copytree(examples_store, store)
    monkeypatch.setenv("AGCURATE_STORE", str(store))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), scope)  # noqa: S102 - the README's own examples
    printed = capsys.readouterr().out
    assert "SOAP_061" in printed
    # the results hold what the CSVs hold, and the files the examples asked for exist
    assert list(scope["dups"].table.columns[:4]) == ["group", "path", "keep", "score"]
    assert scope["dups"].summary["groups"] == 3
    assert (tmp_path / "agcurate-out" / "report.html").is_file()
    on_disk = pd.read_csv(tmp_path / "agcurate-out" / "clusters.csv", keep_default_na=False)
    assert on_disk["cluster"].tolist() == scope["groups"].table["cluster"].tolist()
    assert len(scope["keys"].table) >= 3 and scope["keys"].table["path"].eq("").all()
    assert set(scope["acc"].summary["classifier"]) == {"linear", "knn"}
    assert (tmp_path / "agcurate-out" / "model.pt").is_file()
