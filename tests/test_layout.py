"""The package reads as the pipeline: each layer imports only the layers below it, and nothing cycles.

sources -> encoders -> embedding -> ops (pure) -> workflows -> report -> cli; imports inside functions
count as much as those at the top of a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "agcurate"

# plain types and helpers every layer may use ("" is the package root: its version and error classes)
BASE = {"", "errors", "items", "system", "progress"}
ALLOWED = {  # layer -> layers it may import (besides BASE and itself)
    "sources": set(),
    "encoders": set(),
    "embedding": {"sources", "encoders"},
    "ops": set(),  # pure: arrays and tables in, tables out
    "training": {"sources", "encoders", "embedding"},
    "report": {"sources", "ops"},  # ops are pure: names and constants of what the pages show
    "workflows": {"sources", "encoders", "embedding", "ops", "training", "report"},
    "cli": {"sources", "encoders", "embedding", "ops", "training", "report", "workflows"},
}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Internal modules ``name`` imports (module-level and function-level alike)."""
    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            prefix = ".".join(base + ([node.module] if node.module else []))
            targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name and t.split(".")[0] == "agcurate":
                out.add(t)
    return out


def _graph():
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (a package's own ``__init__``
    re-exporting its children is not a cycle)."""
    edges = {m: {t for t in ts if not t.startswith(m + ".") and not m.startswith(t + ".")} for m, ts in graph.items()}
    index, low, on, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "a.w": set()}) == [["a.x", "a.y", "a.z"]]


def test_each_layer_imports_only_layers_below_it():
    bad = []
    for mod, targets in _graph().items():
        layer = _layer(mod)
        if layer in ("", "cli", "__main__"):
            continue
        if layer in BASE:
            bad += [(mod, t) for t in targets if _layer(t) not in BASE]
            continue
        allowed = ALLOWED[layer] | BASE | {layer}
        bad += [(mod, t) for t in targets if _layer(t) not in allowed]
    assert bad == []


def test_every_layer_is_known():
    layers = {_layer(m) for m in _modules()} - {"__main__"}
    assert layers <= set(ALLOWED) | BASE


def test_ops_are_pure():
    """``ops`` reaches into no file-reading, model or output layer (what they need comes in as data
    or a callable)."""
    graph = _graph()
    up = [(m, t) for m, ts in graph.items() if _layer(m) == "ops" for t in ts
          if _layer(t) not in {"ops"} | BASE]
    assert up == []


def test_import_agcurate_is_cheap():
    code = ("import sys, agcurate; agcurate.EmbedConfig; import agcurate.cli; "
            "heavy = [m for m in ('torch', 'numpy', 'pandas', 'timm', 'faiss', 'cv2', 'pyarrow') "
            "if m in sys.modules]; print(heavy)")
    code_plain = "import sys, agcurate; print([m for m in ('torch', 'numpy', 'pandas') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code_plain], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "torch" not in out.stdout and "pandas" not in out.stdout


def test_every_command_has_a_library_twin():
    import agcurate

    for name in ("embed", "dedup", "frames", "outliers", "cluster", "search", "probe", "pretrain"):
        fn = getattr(agcurate, name)
        assert callable(fn) and fn.__doc__, name
    assert set(agcurate.__all__) >= {"dedup", "frames", "outliers", "cluster", "search", "probe", "pretrain",
                                     "EmbedConfig", "PretrainConfig"}
