"""Who encodes what in one encoder folder of the store, so concurrent writers never encode an item twice.

Two ``embed`` runs on one store (a second terminal, two jobs on a shared cache) coordinate through
files beside the parts::

    writers.lock            a short lock: "read what is stored + read claims + write my claim" is atomic
    claims/<token>.json     who claims (pid, host, how many items), for messages
    claims/<token>.keys     the claimed keys as 8-byte digests (a million items: 8 MB, read fast)
    claims/<token>.lock     held (``flock``) by that writer for as long as its claim lives

A writer claims the missing items nobody else claims, encodes and stores them, and drops its claim;
items another live writer claims are waited for (blocking on that writer's lock), then read from
the store, or claimed again if that writer could not store them. A claim is released before its
owner waits for anyone, so no two writers wait for each other. A writer that dies (even by
SIGKILL) loses its ``flock`` to the OS, so its claim counts as stale at once and is cleared by the
next writer: nobody waits for a dead process. (Decode workers forked while a claim is held share
its lock until they notice their parent is gone, a few seconds.) Where ``fcntl`` is missing
(Windows), and on an object store, writers do not coordinate; readers still keep one row per item.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..system import exclusive_lock, fcntl  # fcntl: None where the platform has no flock

LOCK_NAME = "writers.lock"
CLAIMS_DIR = "claims"


@contextmanager
def folder_lock(folder: Path):
    """Hold the folder's short exclusive lock (``writers.lock``, blocking)."""
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(folder / LOCK_NAME):
        yield


@dataclass
class Claim:
    """Keys this process encodes now; ``release`` (or the process's death) frees them."""

    token: str
    keys: list[str]
    folder: Path
    fd: int | None = None

    def release(self) -> None:
        if self.fd is None:
            return
        for suffix in (".json", ".keys", ".lock"):  # the lock file last: it marks a live claim
            (self.folder / f"{self.token}{suffix}").unlink(missing_ok=True)
        fcntl.flock(self.fd, fcntl.LOCK_UN)  # on the shared open file: forked workers lose it too
        os.close(self.fd)
        self.fd = None


@dataclass
class Busy:
    """Another live writer's claim on some of the keys asked for."""

    pid: int
    host: str
    keys: set[str]
    fd: int

    def wait(self) -> None:
        """Block until that writer drops its claim or dies."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_SH)
        finally:
            os.close(self.fd)

    def describe(self) -> str:
        host = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"pid {self.pid}{host}"


@dataclass
class ClaimResult:
    """What ``claim_missing`` found: my claim, others' claims on what I need, and what is still missing."""

    mine: list[str]
    claim: Claim | None
    busy: list[Busy] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)

    def release(self) -> None:
        """Drop my claim and the handles on others' claims (after an error, say)."""
        if self.claim is not None:
            self.claim.release()
        for b in self.busy:
            os.close(b.fd)
        self.busy = []

    def wait(self, what: str = "items", say: Callable[[str], None] | None = None) -> None:
        """Wait for every writer whose claim holds some of the keys, saying so once on stderr."""
        if not self.busy:
            return
        say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
        n = len(set().union(*(b.keys for b in self.busy)))
        who = ", ".join(b.describe() for b in self.busy)
        say(f"waiting for another agcurate process ({who}) that is encoding {n} of these {what} "
            "into the same store")
        busy, self.busy = self.busy, []
        for i, b in enumerate(busy):
            try:
                b.wait()
            except BaseException:
                for rest in busy[i + 1:]:
                    os.close(rest.fd)
                raise


def claim_missing(folder: Path, wanted: dict[str, str], stored: Callable[[], dict[str, str]],
                  coordinate: bool = True) -> ClaimResult:
    """Claim the keys of ``wanted`` (key -> fingerprint) that ``stored()`` lacks and no live writer claims.

    ``stored`` (newest fingerprint per stored key) is read under the folder's lock, so what another
    writer finished a moment ago is not encoded again. Without ``coordinate`` (a store on an object
    store, which has no locks) or ``fcntl``, everything missing is mine.
    """
    if fcntl is None or not coordinate:
        have = stored()
        mine = [k for k, fp in wanted.items() if have.get(k) != fp]
        return ClaimResult(mine, None, [], set(mine))
    import numpy as np

    claims = folder / CLAIMS_DIR
    busy: list[Busy] = []
    with folder_lock(folder):
        have = stored()
        order = [k for k, fp in wanted.items() if have.get(k) != fp]
        digests = key_digests(order)
        free = np.ones(len(order), bool)
        try:
            for other, theirs in _live_claims(claims) if order else ():
                hit = np.isin(digests, theirs)
                if hit.any():
                    other.keys = {k for k, h in zip(order, hit) if h}
                    busy.append(other)
                    free &= ~hit
                else:
                    os.close(other.fd)
            mine = [k for k, f in zip(order, free) if f]
            claim = _write_claim(claims, mine, digests[free]) if mine else None
        except BaseException:
            for b in busy:
                os.close(b.fd)
            raise
    return ClaimResult(mine, claim, busy, set(order))


def _write_claim(claims: Path, keys: list[str], digests) -> Claim:
    claims.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    fd = os.open(claims / f"{token}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX)
    claim = Claim(token, keys, claims, fd)
    try:
        digests.tofile(claims / f"{token}.keys")
        tmp = claims / f"{token}.json.tmp"
        tmp.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "items": len(keys)}),
                       encoding="utf-8")
        os.replace(tmp, claims / f"{token}.json")  # written last: a claim is complete once it exists
    except BaseException:
        claim.release()
        raise
    return claim


def key_digests(keys: Iterable[str]):
    """8-byte BLAKE2b digest of each key as a uint64 array (a collision only makes a writer wait once)."""
    import hashlib

    import numpy as np

    return np.array([int.from_bytes(hashlib.blake2b(k.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                                    "little") for k in keys], dtype="<u8")


def _live_claims(claims: Path) -> Iterable[tuple[Busy, "np.ndarray"]]:  # noqa: F821
    """Claims whose owner still holds its lock, each with an open handle on that lock and its key
    digests; removes the files of claims whose owner is gone (or died while writing them)."""
    import numpy as np

    if not claims.is_dir():
        return
    tokens: dict[str, list[Path]] = {}
    for f in claims.iterdir():
        tokens.setdefault(f.name.partition(".")[0], []).append(f)
    for token, files in sorted(tokens.items()):
        meta, keys = claims / f"{token}.json", claims / f"{token}.keys"
        try:
            fd = os.open(claims / f"{token}.lock", os.O_RDWR)
        except FileNotFoundError:  # released between the listing and now, or its lock is gone
            fd = None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its owner lives
                try:
                    info = json.loads(meta.read_text(encoding="utf-8"))
                    digests = np.fromfile(keys, dtype="<u8")
                except (OSError, ValueError):  # being released right now
                    os.close(fd)
                    continue
                yield Busy(int(info.get("pid", 0)), str(info.get("host", "")), set(), fd), digests
                continue
        for f in sorted(files, key=lambda f: f.suffix == ".lock"):  # nobody holds it: the owner is gone
            f.unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)
