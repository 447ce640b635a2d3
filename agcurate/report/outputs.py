"""``outputs.json``: which collection and encoder each file in an output folder belongs to.

Every command writes into ``./agcurate-out`` unless told otherwise, so one folder easily holds the
``duplicates.csv`` of one collection beside the ``clusters.csv`` of another. CSV columns stay as they
are; instead each workflow records the files it wrote in one manifest beside them::

    {"version": 1, "files": {"duplicates.csv": {"command": "dedup", "inputs": ["/data/A"],
        "encoder": "lite0", "encoder_id": "lite0@224...", "items": 1500, "time": "2026-..."}, ...}}

``inputs`` are the collection's resolved input paths, ``encoder_id`` the id that keys the embedding
store (``probe``, which compares encoders, lists several). The cluster report merges a side file only
when its entry names the report's own collection and encoder (:func:`mismatch`). The manifest is
rewritten whole (temporary file + rename) under an exclusive lock on the folder, so two commands
finishing at once both keep their entries.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from ..system import exclusive_lock

MANIFEST = "outputs.json"
VERSION = 1


def record_outputs(out_dir: str | os.PathLike, names: Iterable[str], entry: dict) -> Path:
    """Record ``entry`` (command, inputs, encoder, encoder_id, items...) for each file name in
    ``names`` (relative to ``out_dir``), keeping the entries of other files; returns the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entry = {**entry, "time": entry.get("time") or time.strftime("%Y-%m-%dT%H:%M:%S")}
    path = out_dir / MANIFEST
    with exclusive_lock(out_dir):
        files = read_manifest(out_dir)
        files.update({str(name): entry for name in names})
        tmp = path.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": VERSION, "files": files}, indent=2, sort_keys=True),
                       encoding="utf-8")
        os.replace(tmp, path)
    return path


def read_manifest(out_dir: str | os.PathLike) -> dict[str, dict]:
    """``{file name: entry}`` of ``out_dir``'s manifest; empty when there is none or it is unreadable
    (a folder written before outputs were recorded, or a damaged file)."""
    try:
        data = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}


def mismatch(entry: dict, collection: dict) -> str | None:
    """Why the output recorded by ``entry`` does not belong to ``collection`` (same keys: ``inputs``,
    ``encoder_id``, ``encoder``), or None when it does: the same set of input paths and the same
    encoder."""
    if _inputs(entry.get("inputs")) != _inputs(collection.get("inputs")):
        made = ", ".join(str(p) for p in entry.get("inputs") or ()) or "unknown inputs"
        if isinstance(entry.get("items"), int):
            made += f", {entry['items']:,} items"
        mine = ", ".join(str(p) for p in collection.get("inputs") or ())
        return (f"made by `agcurate {entry.get('command', '?')}` for another collection ({made}); "
                f"this report is of {mine}")
    if str(entry.get("encoder_id")) != str(collection.get("encoder_id")):
        return (f"made with encoder {entry.get('encoder') or entry.get('encoder_id')}; this report uses "
                f"{collection.get('encoder') or collection.get('encoder_id')}")
    return None


def _inputs(paths) -> set[str]:
    return {os.path.normpath(str(p)) for p in paths or ()}
