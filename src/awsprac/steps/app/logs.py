"""`awsprac app logs`: the API's container output from CloudWatch Logs (its awslogs group), no AWS CLI needed.

`--since 10m` reads back that far; `--follow` keeps polling (bounded pauses from the waiting module)
until Ctrl-C, which ends it cleanly (exit 0). Events are printed once each, in time order.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from awsprac.engine import waiting
from awsprac.engine.errors import MissingPrerequisite, UsageError

POLL = 5.0
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SINCE = re.compile(r"^(\d+)([smhdw])$")


def parse_since(text: str) -> int:
    """'10m' -> 600 seconds; s, m, h, d, w."""
    match = SINCE.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"--since {text!r}: give a number and a unit, like 30s, 10m, 1h, 2d or 1w")
    return int(match.group(1)) * UNITS[match.group(2)]


def show(app, since_seconds: int, follow: bool) -> None:
    from awsprac.steps.app.deploy import build_the_tier, names

    ctx = app.context()
    group = names(app.cfg).log_group
    reader = Reader(ctx.aws.client("logs"), group, app.report)
    start = int(time.time() * 1000) - since_seconds * 1000
    try:
        reader.print_from(start)
    except MissingLogGroup:
        raise MissingPrerequisite(f"no log group {group}: {build_the_tier(app.cfg)}") from None
    if not follow:
        return
    app.report.info(f"following {group} (Ctrl-C to stop)")
    try:
        while True:
            waiting.clock.pause(POLL)
            reader.print_from(reader.last)
    except KeyboardInterrupt:
        app.report.info("stopped following")


class MissingLogGroup(Exception):
    pass


class Reader:
    """Reads a log group from a time on; remembers what it printed so a re-read from the last timestamp
    (events of the same millisecond may arrive late) prints nothing twice."""

    def __init__(self, client, group: str, report):
        self.client, self.group, self.report = client, group, report
        self.last = 0
        self.printed: set[str] = set()  # ids of printed events at timestamps >= self.last

    def print_from(self, start_ms: int) -> None:
        from awsprac.engine.aws import error_code, translate

        if start_ms > self.last:
            self.last, self.printed = start_ms, set()
        events = []
        with translate("reading", f"log group {self.group}"):
            try:
                for page in self.client.get_paginator("filter_log_events").paginate(logGroupName=self.group, startTime=start_ms):
                    events.extend(page.get("events", []))
            except Exception as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    raise MissingLogGroup() from None
                raise
        for event in sorted(events, key=lambda e: (e["timestamp"], e.get("eventId", ""))):
            if event["eventId"] in self.printed:
                continue
            self.report.line(line(event))
            if event["timestamp"] > self.last:
                self.last = event["timestamp"]
                self.printed = set()  # a later read starts at this timestamp: older ids cannot come back
            self.printed.add(event["eventId"])


def line(event: dict) -> str:
    when = datetime.fromtimestamp(event["timestamp"] / 1000, timezone.utc).isoformat(timespec="milliseconds")
    return f"{when} {event.get('logStreamName', '')} {event.get('message', '').rstrip()}"
