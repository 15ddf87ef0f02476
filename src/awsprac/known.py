"""What AWS has and accepts: regions (from the AWS SDK's own endpoint data), RDS engines with the
majors each ever had, and the expressions EventBridge Scheduler takes.

An env file is checked against them (by config) before anything is sent, so a typo (`ap-northeast-9`,
`podevres`, `engine_major = "71"`, `cron(0 25 ? * SUN *)`) is one line naming the file, key and value,
and never a resource built from it. When AWS adds a major, add it here (a region comes with an SDK upgrade).
"""

from __future__ import annotations

import re
from datetime import datetime

_ORACLE = ("11.2", "12.1", "12.2", "18", "19", "21")
_SQLSERVER = ("10.50", "11.00", "12.00", "13.00", "14.00", "15.00", "16.00")

# The engines CreateDBInstance makes a standalone instance of, and the majors (as `engine_major`
# spells them: PostgreSQL "9.6" then "10"...; MySQL "8.0") RDS has offered for each.
RDS_ENGINES: dict[str, tuple[str, ...]] = {
    "postgres": ("9.3", "9.4", "9.5", "9.6", "10", "11", "12", "13", "14", "15", "16", "17", "18"),
    "mysql": ("5.1", "5.5", "5.6", "5.7", "8.0", "8.4"),
    "mariadb": ("10.0", "10.1", "10.2", "10.3", "10.4", "10.5", "10.6", "10.11", "11.4", "11.8"),
    **{engine: _ORACLE for engine in ("oracle-ee", "oracle-se2", "oracle-ee-cdb", "oracle-se2-cdb", "oracle-se", "oracle-se1")},
    **{engine: _SQLSERVER for engine in ("sqlserver-ee", "sqlserver-se", "sqlserver-ex", "sqlserver-web")},
    "db2-se": ("11.5",),
    "db2-ae": ("11.5",),
}
# Aurora's engines are RDS engines too, but their instances live in a cluster awsprac does not build.
AURORA_ENGINES = frozenset({"aurora", "aurora-mysql", "aurora-postgresql"})


def regions() -> frozenset[str]:
    """Every region of every partition, from the endpoint data bundled with the installed AWS SDK
    (botocore; read from disk, no request): a new region arrives with an SDK upgrade, no list kept here."""
    global _REGIONS
    if _REGIONS is None:
        session = sdk_session()
        _REGIONS = frozenset(
            region for partition in session.get_available_partitions()
            for region in session.get_available_regions("ec2", partition_name=partition)
        )
    return _REGIONS


_REGIONS: frozenset[str] | None = None
_LOADER = None


def sdk_session():
    """A new botocore session that reads no profile by itself (whoever uses it names one), sharing one
    data loader per process: the region list and every client share what it read from disk (the
    endpoint data, EC2's megabytes of model) instead of reading it again."""
    global _LOADER
    import botocore.session

    # A profile read from AWS_PROFILE that does not exist yet (`awsprac profile import` with direnv's
    # AWS_PROFILE) would break even loading the service models, before awsprac can say what is wrong.
    session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    if _LOADER is None:
        _LOADER = session.get_component("data_loader")  # as a session makes it: AWS_DATA_PATH honoured
    else:
        session.register_component("data_loader", _LOADER)
    return session


def region_problem(region: str) -> str | None:
    """Why `region` is not a region one can use, or None: the one region check (the env file's `region`
    key in config, the --region flag, `init --region`). The caller names where the region came from."""
    if region in regions():
        return None
    return f"{region!r} is not an AWS region (like ap-northeast-1 or us-east-1)"


# AZ names whose `b` is missing or closed to new accounts; everywhere else the first two letters exist.
FIRST_TWO_ZONES = {"ap-northeast-1": ("a", "c"), "us-west-1": ("b", "c")}


def default_zones(region: str) -> tuple[str, str]:
    """Two zones of `region` for a new env file (`init --region`)."""
    first, second = FIRST_TWO_ZONES.get(region, ("a", "b"))
    return f"{region}{first}", f"{region}{second}"


def engine_problem(engine: str) -> str | None:
    if engine in RDS_ENGINES:
        return None
    if engine in AURORA_ENGINES:
        return f"{engine!r} is an Aurora engine: awsprac builds an RDS instance, not an Aurora cluster (postgres is the guide's)"
    return f"{engine!r} is not an RDS engine (RDS has: {', '.join(RDS_ENGINES)})"


def engine_major_problem(engine: str, major: str) -> str | None:
    majors = RDS_ENGINES.get(engine, ())
    if major in majors:
        return None
    return f"{major!r}: RDS {engine} never had that major version (it has had {', '.join(majors)})"


# --- what Scheduler accepts (checked when the env file is read, before anything is sent) ---

MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split(), 1)}
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


def expression_problem(expression: str) -> str | None:
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
