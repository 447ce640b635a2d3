"""What this machine lets agcurate use (cores), read in one place by every layer."""

from __future__ import annotations

import os

def cpu_threads() -> int:
    """Cores this process may use (respects CPU affinity / container limits); ``$AGCURATE_THREADS`` overrides."""
    env = os.environ.get("AGCURATE_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
