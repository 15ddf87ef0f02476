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

MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split(), 1)}
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


# --- what Scheduler accepts (checked when the env file is read, before anything is sent) ---

RATE_UNITS = ("minute", "minutes", "hour", "hours", "day", "days")


def _token_problem(token: str, low: int, high: int, names: dict[str, int] | None, special: str) -> str | None:
    """One comma-separated item of a field: `*`, a value, `a-b`, each with an optional `/n`; `special`
    is the field's own forms (day-of-month: L, LW, nW; day-of-week: L, nL, n#k)."""
    if special == "dom" and re.fullmatch(r"L|LW|([1-9]|[12]\d|3[01])W", token):
        return None
    if special == "dow" and re.fullmatch(r"L|[1-7]L|[1-7]#[1-5]|(SUN|MON|TUE|WED|THU|FRI|SAT)(L|#[1-5])", token.upper()):
        return None
    base, slash, step = token.partition("/")
    if slash and not (step.isdigit() and int(step) > 0):
        return f"{token!r} has a bad increment"

    def value(text: str) -> int | None:
        if names and text.upper() in names:
            return names[text.upper()]
        return int(text) if text.isdigit() else None

    if base == "*":
        return None
    ends = base.split("-", 1)
    values = [value(e) for e in ends]
    if None in values:
        return f"{token!r} is not a value of this field"
    if any(not low <= v <= high for v in values):
        return f"{token!r} is outside {low}-{high}"
    return None


def problem(expression: str) -> str | None:
    """Why EventBridge Scheduler would refuse `expression` (cron, rate or at), or None."""
    text = expression.strip()
    at = re.fullmatch(r"at\((.*)\)", text)
    if at:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", at.group(1)):
            return "at(...) takes yyyy-mm-ddThh:mm:ss"
        try:
            datetime.fromisoformat(at.group(1))
        except ValueError as exc:
            return f"at(...): {exc}"
        return None
    rate = re.fullmatch(r"rate\((.*)\)", text)
    if rate:
        parts = rate.group(1).split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) < 1 or parts[1] not in RATE_UNITS:
            return f"rate(...) takes a positive whole number and a unit ({', '.join(RATE_UNITS)})"
        return None
    match = re.fullmatch(r"cron\((.*)\)", text)
    if not match:
        return "must be cron(...), rate(...) or at(...)"
    parts = match.group(1).split()
    if len(parts) != 6:
        return f"cron has 6 fields (minutes hours day-of-month month day-of-week year), this has {len(parts)}"
    fields = (("minutes", 0, 59, None, ""), ("hours", 0, 23, None, ""), ("day-of-month", 1, 31, None, "dom"),
              ("month", 1, 12, MONTHS, ""), ("day-of-week", 1, 7, DAYS, "dow"), ("year", 1970, 2199, None, ""))
    for text_, (label, low, high, names, special) in zip(parts, fields):
        if text_ == "?":
            if not special:
                return f"`?` only goes in day-of-month or day-of-week, not {label}"
            continue
        for token in text_.split(","):
            why = _token_problem(token, low, high, names, special)
            if why:
                return f"{label}: {why}"
    if (parts[2] == "?") == (parts[4] == "?"):
        return "exactly one of day-of-month and day-of-week must be `?`"
    return None
