"""Bounded waits and bounded retries, reported through the reporter: never a bare sleep.

`clock` is module-level so tests can make waiting instant (`waiting.clock = FakeClock()`).
A wait that runs out raises WaitTimeout and leaves everything resumable: the next run
finds the resource and picks up the waiting; nothing is cleaned up.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

from awsprac.engine.errors import AwspracError

T = TypeVar("T")


class Clock:
    def now(self) -> float:
        return time.monotonic()

    def pause(self, seconds: float) -> None:
        threading.Event().wait(seconds)


clock = Clock()


class WaitTimeout(AwspracError):
    """Still not there after the budget: the resource is left as it is, and a re-run keeps waiting."""


def wait_for(report, what: str, check: Callable[[], tuple[bool, str]], timeout: float, interval: float = 10.0) -> str:
    """Poll `check` (returns (done, status)) until done or `timeout` seconds; show the status while waiting."""
    start = clock.now()
    status = ""
    with report.waiting(what) as line:
        while True:
            done, status = check()
            elapsed = clock.now() - start
            line.update(f"{what}: {status} ({_minutes(elapsed)})")
            if done:
                return status
            if elapsed >= timeout:
                raise WaitTimeout(
                    f"{what}: still {status or 'not ready'} after {_minutes(elapsed)}; nothing was undone: "
                    f"run the same command again to keep waiting"
                )
            clock.pause(interval)


def retry_on(is_transient: Callable[[Exception], bool], call: Callable[[], T], budget: float, report=None, what: str = "", first_delay: float = 2.0, max_delay: float = 20.0) -> T:
    """Call until it succeeds; retry only errors `is_transient` accepts, with backoff, for `budget` seconds.

    For AWS's documented transient states (an IAM role not yet visible to EC2 or Scheduler,
    an id not yet visible right after its create). The last error is raised when the budget runs out.
    """
    start = clock.now()
    delay = first_delay
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc) or clock.now() - start + delay > budget:
                raise
            if report is not None:
                report.debug(f"{what}: AWS is not ready yet ({exc}); retrying in {delay:.0f}s")
            clock.pause(delay)
            delay = min(delay * 2, max_delay)


def _minutes(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
