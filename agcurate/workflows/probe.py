"""``agcurate.probe``: embed a labelled collection with each model and compare few-label accuracy."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..embedding.config import EmbedConfig
from ..errors import UsageError
from .common import check_range, embed_input, output_record, record_outputs


@dataclass
class ProbeResult:
    """Per-repeat scores (``runs``, the ``probe_runs.csv`` rows), their summary (``summary``, the
    ``probe.csv`` rows) and what was probed per model."""

    runs: "pd.DataFrame"  # noqa: F821
    summary: "pd.DataFrame"  # noqa: F821
    models: list[str]
    n_labelled: dict[str, int] = field(default_factory=dict)
    n_unlabelled: dict[str, int] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    probe_seconds: dict[str, float] = field(default_factory=dict)
    embeddings: dict = field(default_factory=dict)
    csv: Path | None = None
    runs_csv: Path | None = None


def item_labels(emb, labels: str | Path | dict | None = None, from_folders: bool = False) -> np.ndarray:
    """One label (or ``None``) per embedded item, from a CSV (or its parsed ``{path: label}``) or
    from parent folder names."""
    from .labels import labels_from_folders, match_labels, read_labels_csv

    if from_folders == (labels is not None):
        raise UsageError("give exactly one of --labels FILE or --labels-from-folders")
    if from_folders:
        return labels_from_folders(emb.paths)
    return match_labels(emb.paths, labels if isinstance(labels, dict) else read_labels_csv(labels))


def probe(paths: Iterable[str | Path] | None = None, *, labels: str | Path | None = None,
          labels_from_folders: bool = False, models: Sequence[str] | None = None,
          fractions: Sequence[float] | str = (0.01, 0.1, 1.0), repeats: int = 5, seed: int = 0,
          knn_k: int = 10, out: str | Path | None = None, config: EmbedConfig | None = None,
          progress: bool | None = None, on_embedded: Callable | None = None, **options) -> ProbeResult:
    """Embed (from the cache when possible) with every model, then probe each at every fraction.

    ``labels``: a CSV of path and label; or ``labels_from_folders``. ``models`` (default: the
    config's model) are compared side by side. ``fractions`` are label shares (``"1%,10%"`` works
    too; 1 = all labels, scored by 5-fold cross-validation). With ``out`` ``probe.csv`` (the
    summary) and ``probe_runs.csv`` (one row per repeat) are written there. ``options``:
    ``EmbedConfig`` fields.
    """
    import pandas as pd

    from ..ops.probe import probe as run_probe
    from ..ops.probe import summarize
    from .labels import read_labels_csv

    if labels_from_folders == (labels is not None):
        raise UsageError("give exactly one of --labels FILE or --labels-from-folders")
    fractions = parse_fractions(fractions) if isinstance(fractions, str) else list(fractions)
    if not fractions or not all(0 < f <= 1 for f in fractions):
        raise UsageError(f"--fractions must lie in (0, 1], got {fractions}")
    check_range("--repeats", repeats, 1)
    check_range("--knn-k", knn_k, 1)
    cfg = EmbedConfig.make(config, **options)
    models = list(dict.fromkeys(models or [cfg.model]))  # the same model twice is probed once
    for m in models:  # every model name is resolved (not built) before anything is embedded
        replace(cfg, model=m).encoder()
    table = read_labels_csv(labels) if labels is not None else None  # a broken labels file fails first
    paths = list(paths) if paths is not None else None
    all_runs, result = [], ProbeResult(runs=None, summary=None, models=models)
    for model in models:
        emb = embed_input(paths, replace(cfg, model=model), progress=progress, on_embedded=on_embedded)
        y = item_labels(emb, table, labels_from_folders)
        keep = np.array([v is not None and str(v) != "" for v in y], dtype=bool)
        n_lab = int(keep.sum())
        result.n_labelled[model], result.n_unlabelled[model] = n_lab, int(len(y) - n_lab)
        if n_lab == 0:
            raise UsageError("no embedded item has a label: check the paths in the labels file")
        yk = y[keep].astype(str)
        classes = sorted(set(yk))
        if len(classes) < 2:
            raise UsageError(f"probing needs at least two classes, the labels hold {len(classes)}")
        result.classes = classes
        t0 = time.perf_counter()
        runs = run_probe(emb.vectors[keep], yk, fractions=fractions, repeats=repeats, seed=seed, knn_k=knn_k)
        result.probe_seconds[model] = time.perf_counter() - t0
        runs.insert(0, "model", model)
        all_runs.append(runs)
        result.embeddings[model] = emb
    result.runs = pd.concat(all_runs, ignore_index=True)
    result.summary = summarize(result.runs)
    if out is not None:
        from ..report import write_csv

        result.csv = write_csv(result.summary, Path(out) / "probe.csv")
        result.runs_csv = write_csv(result.runs, Path(out) / "probe_runs.csv")
        embs = [result.embeddings[m] for m in models]  # one collection, one entry per model compared
        record = output_record("probe", embs[0], encoder=[e.encoder.name for e in embs],
                               encoder_id=[e.encoder.id for e in embs], items=[len(e) for e in embs])
        record_outputs(out, [result.csv, result.runs_csv], record)
    return result


def parse_fractions(text: str) -> list[float]:
    """``"0.01,0.1,1"`` -> ``[0.01, 0.1, 1.0]``; percentages such as ``"1%,10%"`` work too."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            v = float(part[:-1]) / 100 if part.endswith("%") else float(part)
        except ValueError as exc:
            raise UsageError(f"--fractions: {part!r} is not a number") from exc
        if not 0 < v <= 1:
            raise UsageError(f"--fractions: {part} is not in (0, 1]")
        out.append(v)
    if not out:
        raise UsageError("--fractions is empty")
    return out
