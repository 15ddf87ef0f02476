"""Parking (`awsprac stop` / `start`): bring one thing to a state, patiently.

A family that can be parked gives, through its `park` facet, a Parked: its Target (how to read its
state, and the call that moves it), what to say when there is nothing, and what to say afterwards.
Settling is state-aware: already there is success; a busy resource is waited on until it can be acted
on; AWS's "not now" means keep waiting. Every wait is time-boxed and resumable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from awsprac.engine import waiting
from awsprac.engine.aws import error_code
from awsprac.engine.context import Context
from awsprac.engine.errors import AwspracError

BUSY_RETRIES = 5  # "not now" answered while AWS describes a state that allows the call: give up after this many


def now() -> datetime:
    """The wall clock (tests replace it)."""
    return datetime.now(timezone.utc)


@dataclass
class Target:
    """One thing to bring to a state: how to read its state, and the call that moves it."""

    label: str  # "DB instance aws-practice-stg"
    read: Callable[[], str | None]  # current state, None when it does not exist
    act: Callable[[], None]
    act_from: frozenset  # states the call is accepted in
    done: frozenset  # states that count as there
    broken: frozenset
    busy_codes: tuple
    timeout: float
    interval: float


def settle(ctx: Context, target: Target, verb: str, state: str) -> bool:
    """Bring `target` from `state` into one of its done states; True when the call was made here."""
    acted = {"yes": False, "busy": 0}
    first = {"state": state}

    def check() -> tuple[bool, str]:
        current = first.pop("state", None) or target.read()
        if current is None:
            raise AwspracError(f"{target.label} disappeared while awsprac waited for it")
        if current in target.broken:
            raise AwspracError(f"{target.label} is {current}: its events in the console say why")
        if current in target.done:
            return True, current
        if current in target.act_from and not acted["yes"]:
            try:
                target.act()
            except Exception as exc:
                if error_code(exc) not in target.busy_codes:
                    raise
                acted["busy"] += 1
                if acted["busy"] > BUSY_RETRIES:
                    raise AwspracError(f"{target.label}: AWS keeps refusing to {verb} it while it is {current} ({exc})") from None
                return False, f"{current}, AWS says not now: waiting"
            acted["yes"] = True
            # Read again at once: an emulation (the sandbox) is there already, so it takes no poll; AWS
            # answers with its in-between state, and the wait keeps AWS's interval from there.
            return check()
        return False, f"{current}, {verb} requested" if acted["yes"] else current

    waiting.wait_for(ctx.report, f"{verb}: {target.label}", check, timeout=target.timeout, interval=target.interval)
    return acted["yes"]


@dataclass
class Parked:
    """What a family's park(ctx, starting) found: its target (None when there is nothing to act on)."""

    target: Target | None
    state: str | None  # None: it does not exist
    absent: str = ""  # said when it does not exist ("no DB instance x in env stg: nothing to {verb} there")
    note: str = ""  # added to "nothing to stop in env stg: no ... and no ..."
    advise: Callable[[dict], None] = field(default=lambda outcome: None)  # after acting (or not): given the outcome
