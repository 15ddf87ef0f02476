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
from rich.text import Text

from awsprac.engine import layout
from awsprac.engine.layout import Column
from awsprac.engine.plan import Action, Plan, StatusRow

STYLES = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.ADOPT: "cyan", Action.DELETE: "red", Action.REPORT: "magenta"}
SYNC_STYLES = {"in sync": "green", "drifted": "yellow", "missing": "red", "not owned": "magenta", "parked": "cyan", "to be removed": "red"}


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
    def plan(self, plan: Plan, title: str, in_sync: str = "everything is in sync") -> None:
        if not plan.changes:
            self.out.print(f"{title}: no changes, {in_sync}.")
            return
        columns = [Column(""), Column("step"), Column("resource"), Column("name"), Column("id"), Column("changes", wrap=True)]
        rows = [[
            (c.action.symbol + (" adopt" if c.action is Action.ADOPT else ""), STYLES[c.action]),
            (c.step, ""), (c.kind, ""), (c.name, ""), (shown_id(c.id, c.name), ""), ("\n".join(c.details()), ""),
        ] for c in plan.changes]
        self.table(title, columns, rows, head=4)
        self.out.print(f"Plan: {plan.summary()}.")

    def status(self, rows: list[StatusRow], title: str) -> None:
        columns = [Column("step"), Column("resource"), Column("name"), Column("id"), Column("state", wrap=True), Column("sync"), Column("detail", wrap=True)]
        cells = [[
            (r.step, ""), (r.kind, ""), (r.name, ""), (shown_id(r.id, r.name), ""), (r.state, ""),
            (r.sync, SYNC_STYLES.get(r.sync, "")), (r.detail, "dim"),
        ] for r in rows]
        self.table(title, columns, cells, head=3)

    def key_values(self, values: dict[str, Any], title: str) -> None:
        self.out.print(title)
        items = [(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value)) for key, value in _flatten(values)]
        for line in layout.pairs(items, self.out.width):
            self.out.print(line)

    def table(self, title: str, columns: list[Column], rows: list[list[tuple[str, str]]], head: int) -> None:
        """A table no width breaks a name or id in (see layout); `head`: the columns kept on a row's first line."""
        self.out.print(title)
        for line in layout.table(columns, rows, self.out.width, head):
            text = Text()
            for part, style in line:
                text.append(part, style=style or None)
            self.out.print(text)

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


def shown_id(resource_id: str | None, name: str) -> str:
    """The id a person needs next to the name: an ARN (or an ECR URI) shortened to what follows its
    last `/` or `:`, and nothing when that is the name itself. The full ARN is in --json."""
    if not resource_id:
        return ""
    short = resource_id
    if resource_id.startswith("arn:") or ".dkr.ecr." in resource_id:
        short = resource_id.rsplit("/", 1)[-1] if "/" in resource_id else resource_id.rsplit(":", 1)[-1]
    return "" if short == name else short


def _flatten(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in values.items():
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", value))
    return rows
