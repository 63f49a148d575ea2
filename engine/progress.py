"""A rich progress bar with records/s and ETA over the copy, fed by the executor's Reporter calls."""

from __future__ import annotations

import threading

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from vecmig.model import Action


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rec/s" if speed else "– rec/s", style="cyan")


class RichReporter:
    def __init__(self, console: Console, actions: tuple[Action, ...]) -> None:
        self.console = console
        self._lock = threading.Lock()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
        )
        copy_total = sum(a.estimate.records for a in actions if a.kind == "copy_shard")
        self.copy_task: TaskID | None = None
        self.copy_total = copy_total
        self._started: set[str] = set()

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, action: Action, total: int, done: int) -> None:
        with self._lock:
            if action.kind == "copy_shard":
                if self.copy_task is None:
                    self.copy_task = self.progress.add_task("copy", total=max(self.copy_total, 1))
                self._started.add(action.id)

    def advance(self, action: Action, records: int) -> None:
        if action.kind == "copy_shard" and self.copy_task is not None:
            self.progress.advance(self.copy_task, records)

    def finish(self, action: Action, status: str, detail: str = "") -> None:
        if action.kind == "copy_shard" and status == "done":
            return
        style = "green" if status in ("done", "rolled back") else "red"
        self.progress.console.print(f"  [{style}]{status}[/{style}] {action.id}  [dim]{detail}[/dim]")

    def note(self, message: str) -> None:
        self.progress.console.print(f"  [yellow]{message}[/yellow]")
