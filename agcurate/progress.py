"""Progress bars that show on a terminal and stay quiet in a pipe, a log or CI."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from contextlib import contextmanager


def interactive() -> bool:
    """True when stderr is a terminal and we are not in CI."""
    if os.environ.get("CI") or os.environ.get("AGCURATE_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


class _Quiet:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, **_kw) -> None:
        pass


class _Bar:
    def __init__(self, progress, task):
        self._p, self._t = progress, task

    def advance(self, n: int = 1) -> None:
        self._p.advance(self._t, n)

    def update(self, **kw) -> None:
        self._p.update(self._t, **kw)


@contextmanager
def progress_bar(total: int | None, description: str, enabled: bool | None = None, unit: str = "items"):
    """A rich progress bar with rate and ETA; a no-op object when not interactive."""
    if enabled is None:
        enabled = interactive()
    if not enabled:
        yield _Quiet()
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), _rate_column(unit), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield _Bar(progress, task)


@contextmanager
def phase_status(phases: Sequence[str], description: str, enabled: bool | None = None):
    """A status line for work that has named steps but no item count (``cluster``: reducing,
    clustering, map, report): yields ``phase(name)``, which shows ``description: name``, the steps
    done out of ``phases`` and the time elapsed. A name outside ``phases`` only changes the text.
    Quiet (``phase`` does nothing) when not interactive."""
    if enabled is None:
        enabled = interactive()
    if not enabled:
        yield lambda name: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    known = list(phases)
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=len(known))
        done: list[str] = []

        def phase(name: str) -> None:
            if name in known and name not in done:
                done.append(name)
            # a step counts as done once the next one starts; the last one when the block ends
            progress.update(task, description=f"{description}: {name}", completed=max(len(done) - 1, 0))

        yield phase
        progress.update(task, completed=len(known))


def _rate_column(unit: str):
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Recent speed while running; once finished, items over the whole elapsed time: the same
        measure the command's summary prints (``EmbedStats.rate``), so the two agree."""

        def render(self, task):
            if task.finished and task.finished_time:
                speed = task.completed / task.finished_time
            else:
                speed = task.speed
            return Text("" if speed is None else f"{speed:,.1f} {unit}/s")

    return RateColumn()
