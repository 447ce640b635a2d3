"""The embedding store: Parquet parts per encoder, written atomically chunk by chunk.

Layout under the store root (``~/.cache/agcurate`` unless ``--store``/``AGCURATE_STORE``; a local
folder or a URL such as ``s3://bucket/agcurate``, see ``location.py``)::

    last.json                          the collection the last ``embed`` worked on
    models/<encoder-slug>/encoder.json what the encoder is (its full id)
    models/<encoder-slug>/parts/*.parquet  rows: item key, path, fingerprint, signals, vector
    models/<encoder-slug>/skipped.csv  files the last run could not use, and why

A part is written under a temporary name and renamed, so a killed run loses at most the chunk in
flight. Rows are never edited in place: a re-encoded item gets a newer row, reads keep the newest
(one row per key, however many writers stored it), and ``compact`` rewrites the parts without stale
rows, keeping each row's age. Concurrent writers claim what they encode (``claims.py``), so two
runs on one store do not encode an item twice; compaction holds the folder's lock, and a read that
meets a part another process just compacted away lists the parts again.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StoreError
from .claims import ClaimResult, claim_missing, folder_lock
from .location import arrow_target, is_remote, store_path, user_cache, write_atomic, write_text_atomic

ITEM_COLUMNS = {  # name -> pyarrow type name; signals are float32
    "key": "string", "path": "string", "kind": "string", "frame": "int32", "time_s": "float32",
    "x": "int32", "y": "int32", "w": "int32", "h": "int32", "variant": "string",
    "fingerprint": "string", "content_hash": "string", "pixel_hash": "string",
    "width": "int32", "height": "int32", "meta": "string",
}
BASE_SIGNALS = ("brightness", "saturation", "sharpness", "nodata")
COMPACT_PARTS = 24
CHUNK_ITEMS = int(os.environ.get("AGCURATE_CHUNK_ITEMS", 256))  # rows per store part: a killed run
CHUNK_SECONDS = 30.0                                             # loses at most this much work


def default_store_root() -> Path:
    """``$AGCURATE_STORE``, else ``$XDG_CACHE_HOME/agcurate``, else ``~/.cache/agcurate``."""
    env = os.environ.get("AGCURATE_STORE")
    if env:
        return store_path(env)
    return user_cache()


def resolve_store_root(store: str | os.PathLike | None) -> Path:
    """The store folder ``store`` names (a local path or a URL), else the default one."""
    return store_path(store) if store else default_store_root()


@dataclass
class StoredEmbeddings:
    """Rows read back from the store: item columns (pandas) and their vectors (float32)."""

    items: "pd.DataFrame"  # noqa: F821
    vectors: np.ndarray


class EmbeddingStore:
    """The part of the store that holds one encoder's vectors."""

    def __init__(self, root: str | os.PathLike, encoder_id: str, slug: str, dim: int):
        self.root = root if isinstance(root, Path) else store_path(root)
        self.encoder_id = encoder_id
        self.dim = dim
        self.dir = self.root / "models" / slug
        self.parts_dir = self.dir / "parts"
        self._seq = 0

    # -- writing ---------------------------------------------------------------------------------
    def _ensure(self) -> None:
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "encoder.json"
        if not meta.exists():
            write_text_atomic(meta, json.dumps({"id": self.encoder_id, "dim": self.dim}, indent=2))

    def schema(self, signal_names=()):
        import pyarrow as pa

        fields = [pa.field(name, getattr(pa, typ)()) for name, typ in ITEM_COLUMNS.items()]
        fields += [pa.field(name, pa.float32()) for name in signal_names]
        fields += [pa.field("seq", pa.int64()), pa.field("vector", vector_type(self.dim))]
        return pa.schema(fields)

    def append(self, rows: list[dict], vectors: np.ndarray, seq: list[int] | None = None) -> Path | None:
        """Write one chunk of rows (dicts of item columns + signals) with their vectors.

        ``seq`` orders rows of one key (newest wins); new rows get the current time in ns, and
        ``compact`` passes the rows' own so that they keep their age.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not rows:
            return None
        self._ensure()
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(rows), self.dim)
        signal_names = sorted({k for r in rows for k in r if k not in ITEM_COLUMNS})
        schema = self.schema(signal_names)
        seq0 = time.time_ns()
        cols = {}
        for name, typ in ITEM_COLUMNS.items():
            default = -1 if typ.startswith("int") else (np.nan if typ == "float32" else "")
            cols[name] = [r.get(name, default) for r in rows]
        for name in signal_names:
            cols[name] = [float(r.get(name, np.nan)) for r in rows]
        cols["seq"] = list(seq) if seq is not None else list(range(seq0, seq0 + len(rows)))
        cols["vector"] = vector_column(vectors)
        table = pa.table(cols, schema=schema)
        self._seq += 1
        name = f"part-{seq0}-{os.getpid()}-{uuid.uuid4().hex[:6]}-{self._seq:05d}.parquet"
        write_atomic(self.parts_dir / name,
                     lambda target: _write_parquet(table, target))
        return self.parts_dir / name

    # -- reading ---------------------------------------------------------------------------------
    def parts(self) -> list[Path]:
        if not self.parts_dir.is_dir():
            return []
        return sorted(self.parts_dir.glob("part-*.parquet"), key=lambda p: p.name)

    def _read(self, columns: list[str] | None = None, parts: list[Path] | None = None, _tries: int = 5):
        """All rows of ``parts`` (default: every part) as one Arrow table, None when there is none."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = []
        for part in self.parts() if parts is None else parts:
            try:
                where, fs = arrow_target(part)
                table = pq.read_table(where, filesystem=fs, columns=_present(part, columns))
            except FileNotFoundError:
                if parts is None and _tries > 1:  # compacted into a new part meanwhile: list again
                    return self._read(columns, None, _tries - 1)
                continue
            except (OSError, pa.ArrowInvalid):
                continue  # a damaged part only costs its rows: they are encoded again
            if "vector" in table.column_names and table.schema.field("vector").type != vector_type(self.dim):
                # parts of older stores (raw float16 bytes, list<float16>) read as today's column
                table = table.set_column(table.column_names.index("vector"), "vector",
                                         vector_column(_vectors_of(table.column("vector"), self.dim)))
            tables.append(table)
        if not tables:
            return None
        return pa.concat_tables(tables, promote_options="default")

    def index(self) -> dict[str, str]:
        """Newest fingerprint per item key (what is cached)."""
        table = self._read(["key", "fingerprint", "seq"])
        if table is None:
            return {}
        df = table.to_pandas().sort_values("seq")
        return dict(zip(df["key"], df["fingerprint"]))

    def load(self, keys: list[str] | None = None) -> StoredEmbeddings:
        """Newest row per key, in the order of ``keys`` when given (keys not stored are left out)."""
        return self._load(keys)

    def _load(self, keys: list[str] | None, parts: list[Path] | None = None) -> StoredEmbeddings:
        import pandas as pd

        table = self._read(None, parts)
        if table is None:
            return StoredEmbeddings(pd.DataFrame(columns=list(ITEM_COLUMNS)), np.zeros((0, self.dim), np.float32))
        key_col = table.column("key").to_pandas()
        seq = table.column("seq").to_numpy()
        order = np.argsort(seq, kind="stable")
        newest = pd.Series(order, index=key_col.to_numpy()[order])
        newest = newest[~newest.index.duplicated(keep="last")]
        if keys is not None:  # a key asked for twice is given once
            newest = newest.reindex(list(dict.fromkeys(keys))).dropna().astype(np.int64)
        rows = newest.to_numpy()
        import pyarrow as pa

        all_vectors = _vectors_of(table.column("vector"), self.dim)
        if (all_vectors.dtype == np.float32 and all_vectors.flags.writeable and len(rows) == len(all_vectors)
                and np.array_equal(rows, np.arange(len(rows)))):
            vectors = all_vectors  # every row, in stored order, already a copy of ours: no second copy
        else:
            vectors = all_vectors[rows].astype(np.float32, copy=False)
        # stored vectors are unit length; float16 rounding moves norms by ~1e-3, so rescale them
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))[:, None]
        vectors /= np.where(norms > 0, norms, 1.0)
        items = table.drop_columns(["vector"]).take(pa.array(rows, type=pa.int64())).to_pandas()
        return StoredEmbeddings(items.reset_index(drop=True), vectors)

    def compact(self, keep_keys: set[str] | None = None, force: bool = False) -> int:
        """Rewrite all parts into one without stale rows (and without keys outside ``keep_keys``).

        Runs when there are many parts or ``force``; returns how many rows were dropped. Holds the
        folder's lock (one compaction at a time); parts another writer adds meanwhile are left as
        they are, and the kept rows keep their ``seq``, so a newer row elsewhere still wins. On an
        object store there is no lock (see ``_compaction_lock``).
        """

        def due(parts) -> bool:
            return len(parts) >= 2 and (force or len(parts) >= COMPACT_PARTS)

        if not due(self.parts()):  # checked before locking too: a read-only store is read on
            return 0
        with _compaction_lock(self.dir):
            parts = self.parts()
            if not due(parts):
                return 0
            total = sum(_num_rows(p) for p in parts)
            stored = self._load(None, parts)
            if keep_keys is not None:
                mask = stored.items["key"].isin(keep_keys).to_numpy()
                stored = StoredEmbeddings(stored.items[mask].reset_index(drop=True), stored.vectors[mask])
            dropped = total - len(stored.items)
            seq = stored.items["seq"].astype("int64").tolist() if "seq" in stored.items else None
            rows = stored.items.drop(columns=["seq"], errors="ignore").to_dict("records")
            # NaN signals stay NaN; pandas gives numpy scalars, pyarrow takes them
            self._seq = 0
            new = self.append(rows, stored.vectors, seq=seq) if rows else None
            for p in parts:
                if p != new:
                    p.unlink(missing_ok=True)
            return dropped

    def claim(self, wanted: dict[str, str]) -> ClaimResult:
        """Claim the items of ``wanted`` (key -> fingerprint) that are neither stored nor claimed by a
        live writer; see ``claims.claim_missing``."""
        return claim_missing(self.dir, wanted, self.index, coordinate=not is_remote(self.dir))

    # -- run records -----------------------------------------------------------------------------
    def write_skipped(self, skipped) -> Path:
        """Write ``skipped.csv`` (path, reason) beside this encoder's parts; returns its path."""
        import csv
        import io

        self._ensure()
        out = self.dir / "skipped.csv"
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["path", "reason"])
        for s in skipped:
            w.writerow([s.path, s.reason])
        write_text_atomic(out, buf.getvalue())
        return out


class ChunkWriter:
    """Collects encoded rows and appends them to the store every ``CHUNK_ITEMS`` rows or
    ``CHUNK_SECONDS`` seconds (what a killed run can lose); ``flush`` writes the rest."""

    def __init__(self, st: EmbeddingStore):
        self.st = st
        self.rows: list[dict] = []
        self.vecs: list[np.ndarray] = []
        self.last = time.perf_counter()

    def add(self, rows: list[dict], vectors: np.ndarray) -> None:
        self.rows.extend(rows)
        self.vecs.append(vectors)
        if len(self.rows) >= CHUNK_ITEMS or (self.rows and time.perf_counter() - self.last > CHUNK_SECONDS):
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.st.append(self.rows, np.concatenate(self.vecs))
        self.rows, self.vecs, self.last = [], [], time.perf_counter()


def vector_type(dim: int):
    """The store's vector column: an Arrow ``fixed_size_list<float32>[dim]``.

    Any Arrow tool reads it as an array per row (pandas, DuckDB ``FLOAT[dim]``, Polars ``Array``,
    Ray); neither DuckDB nor Polars reads float16, so the values are float32 rounded to float16
    precision: zstd then packs the zero low mantissa bytes away and a 1280-d vector takes ~2.4 kB
    on disk, as much as float16 (``benchmarks/store_format.py``).
    """
    import pyarrow as pa

    return pa.list_(pa.float32(), dim)


def vector_column(vectors: np.ndarray):
    """(n, dim) vectors as the store's column (values rounded to float16 precision)."""
    import pyarrow as pa

    v = np.ascontiguousarray(np.asarray(vectors).astype(np.float16).astype(np.float32))
    return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])


def _vectors_of(column, dim: int) -> np.ndarray:
    """(n, dim) array of a vector column: today's fixed-size list, or the raw float16 bytes
    (``fixed_size_binary``) and ``list<float16>`` of older stores. float32, or float16 for the
    raw bytes."""
    import pyarrow as pa

    blocks = []
    for chunk in column.chunks:
        if len(chunk) == 0:
            continue
        if pa.types.is_fixed_size_binary(chunk.type):
            buf = np.frombuffer(chunk.buffers()[1], dtype="<f2", count=len(chunk) * dim,
                                offset=chunk.offset * dim * 2)
            blocks.append(buf.reshape(-1, dim))
        else:  # flatten() honours a sliced chunk's offset; float32 without nulls comes zero-copy
            flat = chunk.flatten().to_numpy(zero_copy_only=False)
            blocks.append(flat.astype(np.float32, copy=False).reshape(-1, dim))
    if not blocks:
        return np.zeros((0, dim), np.float32)
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def _present(part: Path, columns: list[str] | None) -> list[str] | None:
    if columns is None:
        return None
    import pyarrow.parquet as pq

    where, fs = arrow_target(part)
    names = set(pq.read_schema(where, filesystem=fs).names)
    return [c for c in columns if c in names]


def _num_rows(part: Path) -> int:
    import pyarrow.parquet as pq

    where, fs = arrow_target(part)
    return pq.read_metadata(where, filesystem=fs).num_rows


def _write_parquet(table, target: Path) -> None:
    import pyarrow.parquet as pq

    where, fs = arrow_target(target)
    pq.write_table(table, where, filesystem=fs, compression="zstd")


def _compaction_lock(folder: Path):
    """The folder's lock for a local store; none on an object store, where two compactions at once
    only waste work (each new part holds every row of the parts it replaces, at their ``seq``)."""
    from contextlib import nullcontext

    return nullcontext() if is_remote(folder) else folder_lock(folder)


def remember_collection(root: Path, record: dict) -> None:
    """Record the inputs and options of the last ``embed`` so later commands can omit PATH."""
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / "last.json", json.dumps(record, indent=2))


def last_collection(root: Path) -> dict:
    """The record written by the last ``embed``; a clear error when there is none."""
    path = root / "last.json"
    if not path.exists():
        raise StoreError(f"no PATH given and no earlier `agcurate embed` in the store {root}; "
                         "give a folder or run `agcurate embed DIR` first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
