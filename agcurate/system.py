"""What this machine lets agcurate use (cores, advisory file locks), read in one place by every layer."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None


def cpu_threads() -> int:
    """Cores this process may use (respects CPU affinity / container limits); ``$AGCURATE_THREADS`` overrides."""
    env = os.environ.get("AGCURATE_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def opencv_threads(n: int) -> int:
    """Set OpenCV's thread count and return the previous one (1 before forking decode workers)."""
    import cv2

    prev = cv2.getNumThreads()
    cv2.setNumThreads(n)
    return prev


@contextmanager
def exclusive_lock(path: str | os.PathLike):
    """Hold an exclusive advisory lock (``flock``, blocking) on ``path``: a folder, or a lock file
    created when missing. The OS drops it when the process dies; a no-op without ``fcntl``."""
    if fcntl is None:
        yield
        return
    path = Path(path)
    fd = os.open(path, os.O_RDONLY) if path.is_dir() else os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock
