"""The only owner of rich output. Results go to stdout, diagnostics and progress to stderr.

markup=False everywhere: AWS text such as `[...]` must never be read as rich markup.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from awsprac.engine.plan import Action, Plan, StatusRow

STYLES = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.ADOPT: "cyan", Action.DELETE: "red", Action.REPORT: "magenta"}
SYNC_STYLES = {"in sync": "green", "drifted": "yellow", "missing": "red", "not owned": "magenta"}


class Reporter:
    def __init__(self, verbose: bool = False, quiet_progress: bool = False):
        self.out = _console(stderr=False)
        self.err = _console(stderr=True)
        self.verbose = verbose
        self.quiet_progress = quiet_progress
        self._progress: Progress | None = None
        self._progress_lock = threading.Lock()
        self._waits = 0

    # diagnostics (stderr)
    def info(self, text: str) -> None:
        self.err.print(text)

    def debug(self, text: str) -> None:
        if self.verbose:
            self.err.print(text, style="dim")

    def warn(self, text: str) -> None:
        self.err.print(Text("warning: ", style="bold yellow") + Text(text))

    def error(self, text: str) -> None:
        self.err.print(Text("error: ", style="bold red") + Text(text))

    def banner(self, text: str) -> None:
        self.err.rule(Text(text, style="bold black on yellow"), style="yellow")

    @contextmanager
    def waiting(self, what: str) -> Iterator["_Line"]:
        """A live line with elapsed time while AWS works, one per wait, in one display shared by all the
        steps running at once (rich allows one live display). Plain lines when not on a terminal."""
        start = time.monotonic()
        if self.quiet_progress or not self.err.is_terminal:
            self.debug(f"waiting: {what}")
            yield _Line(None, self)
            self.debug(f"done: {what} ({time.monotonic() - start:.1f}s)")
            return
        with self._progress_lock:
            if self._progress is None:
                self._progress = Progress(
                    SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    console=self.err, transient=True,
                )
                self._progress.start()
            task = self._progress.add_task(what, total=None)
            self._waits += 1
        try:
            yield _Line((self._progress, task), self)
        finally:
            with self._progress_lock:
                self._progress.remove_task(task)
                self._waits -= 1
                if self._waits == 0:
                    self._progress.stop()
                    self._progress = None

    def applied(self, text: str) -> None:
        self.err.print(Text("  ✓ ", style="green") + Text(text))

    # results (stdout)
    def plan(self, plan: Plan, title: str) -> None:
        if not plan.changes:
            self.out.print(f"{title}: no changes, everything is in sync.")
            return
        table = Table(title=title, title_justify="left", show_lines=False, box=None, pad_edge=False)
        for column in ("", "step", "resource", "name", "id", "changes"):
            table.add_column(column, overflow="fold")
        for c in plan.changes:
            table.add_row(
                Text(c.action.symbol + (" adopt" if c.action is Action.ADOPT else ""), style=STYLES[c.action]),
                c.step, c.kind, c.name, c.id or "", "\n".join(c.details()),
            )
        self.out.print(table)
        self.out.print(f"Plan: {plan.summary()}.")

    def status(self, rows: list[StatusRow], title: str) -> None:
        table = Table(title=title, title_justify="left", box=None, pad_edge=False)
        for column in ("step", "resource", "name", "id", "state", "sync"):
            table.add_column(column, overflow="fold")
        last_step = None
        for r in rows:
            if last_step is not None and r.step != last_step:
                table.add_section()
            last_step = r.step
            sync = Text(r.sync, style=SYNC_STYLES.get(r.sync, ""))
            if r.detail:
                sync += Text(f" ({r.detail})", style="dim")
            table.add_row(r.step, r.kind, r.name, r.id or "-", r.state or "-", sync)
        self.out.print(table)

    def key_values(self, values: dict[str, Any], title: str) -> None:
        table = Table(title=title, title_justify="left", box=None, pad_edge=False, show_header=False)
        table.add_column("key", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in _flatten(values):
            table.add_row(key, str(value))
        self.out.print(table)

    def json(self, data: Any) -> None:
        # Plain write: JSON for machines must not be wrapped or styled.
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")

    def line(self, text: str) -> None:
        self.out.print(text)


class _Line:
    """The live status line of one wait; `update` shows the latest AWS state."""

    def __init__(self, task, reporter: "Reporter"):
        self._task, self._reporter, self._last = task, reporter, None

    def update(self, text: str) -> None:
        if self._task is not None:
            progress, task_id = self._task
            progress.update(task_id, description=text)
        elif text != self._last:
            self._reporter.debug(text)
        self._last = text


def _console(stderr: bool) -> Console:
    # emoji=False: an ARN such as ...:secret:rds-main-stg must not turn into an emoji
    console = Console(stderr=stderr, markup=False, emoji=False, highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # piped or logged: do not fold ids and settings at 80 columns
    return console


def _flatten(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in values.items():
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", value))
    return rows
