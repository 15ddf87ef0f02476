"""When an EventBridge Scheduler expression fires next: `cron(...)` (the subset env files use) and `at(...)`.

AWS cron has six fields: minutes hours day-of-month month day-of-week year; one of day-of-month and
day-of-week is `?`. Supported: `*`, `?`, numbers, ranges `a-b`, lists `a,b`, steps `a/n` and `*/n`,
month names JAN-DEC, day names SUN-SAT (1 = SUN ... 7 = SAT, as AWS counts). Not supported: `L`, `W`,
`#` (raise CronUnsupported: the caller says it cannot tell). `rate(...)` has no fixed time: unsupported.
Times are wall-clock times in the schedule's time zone.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from awsprac.known import DAYS, MONTHS  # the names Scheduler reads; what it accepts is checked there, at load

HORIZON_YEARS = 8


class CronUnsupported(ValueError):
    """An expression this evaluator cannot read (or AWS would reject)."""


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int] | None:
    """The values a field allows; None for `?` (no constraint from this field)."""
    if text == "?":
        return None
    values: set[int] = set()

    def number(part: str) -> int:
        part = part.upper()
        if names and part in names:
            return names[part]
        if re.search(r"[LW#]", part):
            raise CronUnsupported(f"{part!r}: L, W and # are not supported")
        if not part.isdigit():
            raise CronUnsupported(f"{part!r} is not a number or name in this field")
        n = int(part)
        if not low <= n <= high:
            raise CronUnsupported(f"{n} is outside {low}-{high}")
        return n

    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise CronUnsupported(f"{item!r}: bad increment")
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = number(a), number(b)
            if start > end:
                raise CronUnsupported(f"{base!r}: a range must go up")
        else:
            start = number(base)
            end = high if step else start
        values.update(range(start, end + 1, step or 1))
    return values


def next_fire(expression: str, timezone: str, after: datetime) -> datetime | None:
    """The first time strictly after `after` (aware) that the expression fires, in its time zone; None if never."""
    tz = ZoneInfo(timezone)
    text = expression.strip()
    at = re.fullmatch(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)", text)
    if at:
        when = datetime.fromisoformat(at.group(1)).replace(tzinfo=tz)
        return when if when > after else None
    match = re.fullmatch(r"cron\((.*)\)", text)
    if not match:
        raise CronUnsupported(f"{expression!r}: only cron(...) and at(...) have fixed times")
    parts = match.group(1).split()
    if len(parts) != 6:
        raise CronUnsupported(f"{expression!r}: AWS cron has 6 fields (minutes hours day-of-month month day-of-week year)")
    minutes = _field(parts[0], 0, 59)
    hours = _field(parts[1], 0, 23)
    dom = _field(parts[2], 1, 31)
    months = _field(parts[3], 1, 12, MONTHS)
    dow = _field(parts[4], 1, 7, DAYS)
    years = _field(parts[5], 1970, 2199)
    if minutes is None or hours is None or months is None or years is None:
        raise CronUnsupported(f"{expression!r}: `?` only goes in day-of-month or day-of-week")
    if (dom is None) == (dow is None):
        raise CronUnsupported(f"{expression!r}: exactly one of day-of-month and day-of-week must be `?`")
    start = after.astimezone(tz)
    day = start.date()
    last = date(min(start.year + HORIZON_YEARS, 9999), 12, 31)
    times = sorted((h, m) for h in hours for m in minutes)
    while day <= last:
        if day.year in years and day.month in months and _day_matches(day, dom, dow):
            for h, m in times:
                when = datetime(day.year, day.month, day.day, h, m, tzinfo=tz)
                if when > after:
                    return when
        day += timedelta(days=1)
    return None


def _day_matches(day: date, dom: set[int] | None, dow: set[int] | None) -> bool:
    if dom is not None:
        return day.day in dom
    # Python: Monday = 0 ... Sunday = 6; AWS: Sunday = 1 ... Saturday = 7.
    return (day.weekday() + 1) % 7 + 1 in dow

