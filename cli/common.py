"""Helpers shared by the command modules: progress bars on stderr, tables, the project folder, the promotion lock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def progress(description: str) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """A rich progress bar on stderr; yields (set_total, advance) callbacks for the core functions."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    with bar:
        task = bar.add_task(description, total=None)
        totals = {"n": 0}

        def set_total(n: int) -> None:
            totals["n"] += n
            bar.update(task, total=totals["n"])

        def advance(n: int) -> None:
            bar.advance(task, n)

        try:
            yield set_total, advance
        except BaseException:
            # a failed operation's bar is cleared (rich keeps a transient bar off non-terminals too): the single
            # `error: ...` line of cli.error_handler replaces it
            bar.live.transient = True
            raise


def print_table(table: Any) -> None:
    """Print a rich table on stdout."""
    from rich.console import Console

    Console().print(table)


def project_dir() -> Path:
    """The project folder (holding prefect.yaml) at or above the current directory; workers run flows from it."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "prefect.yaml").is_file():
            return folder
    return Path.cwd()


def promotion_lock(name: str) -> Callable[[], AbstractContextManager[Any]]:
    """The gate's lock for ``name`` (the publish task's Prefect lease, or a file lock without an API).

    Resolved when the lock is taken, not before: Prefect is imported only by a command that gets that far (a
    rollback of a model that does not exist fails without it).
    """

    def take() -> AbstractContextManager[Any]:
        from tasks.promotion_lock import promotion_lock as lock_factory

        return lock_factory(name)()

    return take
