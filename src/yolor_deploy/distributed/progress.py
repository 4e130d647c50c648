"""A rich progress bar for the Ray engine: done / total sources and the rate in images per second."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text


class RateColumn(ProgressColumn):
    """`12.3 img/s` (rich's own speed estimate over the recent updates)."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} img/s" if speed else "- img/s")


@contextlib.contextmanager
def shard_progress(total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; the bar shows on stderr only when it is a terminal and `enabled`."""
    from rich.console import Console

    err = Console(stderr=True)
    progress = Progress(TextColumn("[bold]predict (ray)"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                        TimeRemainingColumn(), console=err, transient=True,
                        disable=not enabled or total < 2 or not err.is_terminal)
    with progress:
        task = progress.add_task("predict", total=total)
        yield lambda n: progress.advance(task, n)
