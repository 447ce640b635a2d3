"""The command line itself: cheap start-up, help for every command, README in step with it."""

from __future__ import annotations

import re
import subprocess
import sys

from typer.testing import CliRunner

from agcurate.cli import app
from tests.conftest import ROOT

runner = CliRunner()


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)


def test_import_and_help_do_not_load_heavy_libraries():
    code = ("import sys, agcurate.cli; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(agcurate.cli.app, ['--help']); assert r.exit_code == 0; "
            "heavy = [m for m in ('torch', 'timm', 'faiss', 'umap', 'hdbscan', 'cv2', 'lightly', 'plotly', "
            "'sklearn', 'pyarrow', 'pandas', 'rasterio') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_every_command_has_help_and_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    cmds = _commands()
    assert {"embed", "models"} <= set(cmds)
    for name in cmds:
        res = runner.invoke(app, [name, "--help"])
        assert res.exit_code == 0, name
        first = res.output.split("\n\n")[1].strip() if "\n\n" in res.output else ""
        assert len(first) > 10, f"{name} has no help text"
        assert re.search(rf"agcurate {name}\b", readme), f"`agcurate {name}` is not documented in README.md"


def test_version_and_no_args():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("agcurate ")
    res = runner.invoke(app, [])
    assert "embed" in res.output


def test_models_lists_default_encoder():
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0
    line = next(line for line in res.output.splitlines() if "lite0" in line)
    assert "1280" in line and "224" in line and "yes" in line


def test_errors_are_one_line_and_debug_shows_traceback(tmp_path):
    res = runner.invoke(app, ["embed", str(tmp_path / "nope"), "--store", str(tmp_path / "s"), "--model", "bogus"])
    assert res.exit_code == 2 and "error:" in res.output and "unknown model" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["--debug", "embed", str(tmp_path), "--store", str(tmp_path / "s"), "--model", "bogus"])
    assert res.exit_code != 0 and res.exception is not None
