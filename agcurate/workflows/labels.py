"""Class labels for embedded items: from a CSV (path, label) or from each file's parent folder."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import UsageError

PATH_COLUMNS = ("path", "file", "filename", "file_name", "image", "key")
LABEL_COLUMNS = ("label", "class", "category", "target", "y")


def read_labels_csv(path: str | Path) -> dict[str, str]:
    """``{file path: label}`` from a CSV with a path and a label column (header names or first two).

    Relative paths are resolved against the CSV's folder. A path that does not exist is kept as
    written, so it can still match an item by file name.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read labels file {path}: {exc.strerror or exc}") from exc
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if not rows:
        raise UsageError(f"{path} holds no labels")
    head = [c.strip().lower() for c in rows[0]]
    pcol = next((head.index(c) for c in PATH_COLUMNS if c in head), None)
    lcol = next((head.index(c) for c in LABEL_COLUMNS if c in head), None)
    if pcol is not None and lcol is not None:
        rows = rows[1:]
    else:
        pcol, lcol = 0, 1
    base = path.resolve().parent
    out: dict[str, str] = {}
    for n, r in enumerate(rows):
        if len(r) <= max(pcol, lcol):
            raise UsageError(f"{path}, row {n + 1}: expected a path and a label")
        p, label = r[pcol].strip(), r[lcol].strip()
        if not p or not label:
            continue
        q = Path(p).expanduser()
        q = q if q.is_absolute() else base / q
        out[str(q.resolve()) if q.exists() else p] = label
    return out


def match_labels(paths: Sequence[str], table: dict[str, str]) -> np.ndarray:
    """One label per item path (``None`` where the table has none): by full path, then by file name.

    Matching by name is used only for names that occur once in the table.
    """
    by_name: dict[str, str | None] = {}
    for p, label in table.items():
        name = Path(p).name
        by_name[name] = None if name in by_name else label
    out = []
    for p in paths:
        label = table.get(p)
        if label is None:
            label = by_name.get(Path(p).name)
        out.append(label)
    return np.asarray(out, dtype=object)


def labels_from_folders(paths: Sequence[str]) -> np.ndarray:
    """The parent folder name of each item's file (the usual ``class/image.jpg`` layout)."""
    return np.asarray([Path(p).parent.name for p in paths], dtype=object)
