"""Progress bars for the long commands (``simulate --out``, ``evaluate``), on stderr so a
command's own output stays clean for a script; as ``replay`` shows its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

#: A bar's share done moves in steps of this much (a bar redrawn 100 000 times is slow).
_STEP = 0.005


@contextmanager
def stages(*names: str) -> Iterator[Callable[[str, float], None]]:
    """A bar per stage, in order; the callback takes a stage's name and its share done (0 to 1)."""
    columns = (TextColumn("{task.description:<10}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        tasks: dict[str, TaskID] = {name: progress.add_task(name, total=1.0, start=False) for name in names}
        shown: dict[str, float] = {}

        def advance(stage: str, done: float) -> None:
            if done - shown.get(stage, -1.0) < _STEP and done < 1.0:
                return
            if stage not in shown:
                progress.start_task(tasks[stage])
            shown[stage] = done
            progress.update(tasks[stage], completed=done)

        yield advance
