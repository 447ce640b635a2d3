"""Shared fixtures: real data locations, a private store per test, one embedding of the examples,
and a headless Chromium for HTML reports."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
ARTIFACTS = ROOT / "test-artifacts"


def shared_data_root() -> Path | None:
    """``$AGCURATE_SHARED_DATA``, else ``shared/data`` beside or inside the checkout."""
    env = os.environ.get("AGCURATE_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [ROOT.parent / "shared" / "data", ROOT / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data():
    """Function giving a folder of ``shared/data``; skips the test (with the reason) when absent."""

    def get(name: str) -> Path:
        root = shared_data_root()
        if root is None or not (root / name).exists():
            pytest.skip(f"shared data set {name!r} not present (set AGCURATE_SHARED_DATA)")
        return root / name

    return get


@pytest.fixture
def store(tmp_path) -> Path:
    """A private, empty embedding store for one test."""
    return tmp_path / "store"


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory) -> Path:
    """One ONNX export cache for the whole session (exporting costs seconds per encoder)."""
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path_factory, monkeypatch, onnx_cache):
    """Never touch the user's real cache: the default store points into the test's temp dir."""
    monkeypatch.setenv("AGCURATE_STORE", str(tmp_path_factory.mktemp("default-store")))
    monkeypatch.setenv("AGCURATE_ONNX_CACHE", str(onnx_cache))
    monkeypatch.setenv("AGCURATE_NO_PROGRESS", "1")


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES / "images"


@pytest.fixture(scope="session")
def examples_store(tmp_path_factory, examples_dir) -> Path:
    """A store that already holds the examples' lite0 embeddings (embedded once per session)."""
    import agcurate

    root = tmp_path_factory.mktemp("examples-store")
    agcurate.embed([examples_dir], store=root, workers=0, progress=False)
    return root


@pytest.fixture(scope="session")
def examples_embeddings(examples_store, examples_dir):
    import agcurate

    return agcurate.embed([examples_dir], store=examples_store, progress=False)


def chromium_path() -> str | None:
    for c in CHROMIUM_CANDIDATES:
        if Path(c).exists():
            return c
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright; required in CI, skipped elsewhere if missing."""
    exe = chromium_path()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                     "--disable-component-update", "--no-first-run", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors and failed requests in ``page.agcurate_errors``."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.agcurate_errors = errors
    yield pg
    ctx.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Folder where tests keep screenshots for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def make_image(path: Path, size=(64, 48), color=(120, 160, 80), mode="RGB", fmt=None, seed=0) -> Path:
    """A small generated image with some texture (so encoders see structure)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    base = np.zeros((h, w, 3), np.float32) + np.array(color, np.float32)
    base += rng.normal(0, 25, (h, w, 3))
    arr = np.clip(base, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr).convert(mode) if mode != "RGB" else Image.fromarray(arr)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path
