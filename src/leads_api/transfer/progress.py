"""Progress of a long import or export, drawn on stderr only when stderr is a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


class Tracker(Protocol):
    def start(self, total: int | None) -> None:
        """The number of leads to expect, when it is known."""

    def advance(self, count: int) -> None:
        """`count` more leads are done."""


class _Bar:
    def __init__(self, progress: Progress, label: str) -> None:
        self.progress = progress
        self.task = progress.add_task(label, total=None)

    def start(self, total: int | None) -> None:
        self.progress.update(self.task, total=total)

    def advance(self, count: int) -> None:
        self.progress.advance(self.task, count)


@contextmanager
def tracker(label: str, *, enabled: bool = True) -> Iterator[Tracker | None]:
    """A progress bar on stderr if it is a terminal (and `enabled`), else None."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("leads"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield _Bar(progress, label)
