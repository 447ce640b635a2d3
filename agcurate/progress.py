"""Progress bars that show on a terminal and stay quiet in a pipe, a log or CI."""

from __future__ import annotations

import os
import sys
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


def _rate_column(unit: str):
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:,.1f} {unit}/s")

    return RateColumn()
