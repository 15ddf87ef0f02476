"""The database's park facet: stopped first and started last; AWS starts a stopped DB by itself after
7 days, and the weekly schedule starts and stops it (both said after a stop)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from awsprac.engine import park
from awsprac.engine.context import Context
from awsprac.engine.park import Parked, Target
from awsprac.steps.rds import instance as rdsinstance

PARK_LABEL = ("DB", "DB instance")  # short, and as in "no DB instance"
PARKED_STATES = rdsinstance.STOPPED  # what `stop` leaves: status says parked, plan no drift
AUTO_START = timedelta(days=7)  # AWS starts a stopped DB instance again after 7 days
DB_BUSY = ("InvalidDBInstanceState", "InvalidDBInstanceStateFault")


def park_target(ctx: Context, starting: bool) -> Parked:
    target = db_target(ctx, starting)
    state = target.read()
    cfg = ctx.cfg

    def advise(outcome: dict) -> None:
        if state is not None and not starting:
            _advice(ctx, outcome)

    return Parked(target if state is not None else None, state,
                  absent=f"no DB instance {target.label.split()[-1]} in env {cfg.env}: nothing to {{verb}} there", advise=advise)


def db_target(ctx: Context, starting: bool) -> Target:
    from awsprac.steps.rds import db_name

    name = db_name(ctx.cfg)
    rds = ctx.aws.client("rds")

    def read() -> str | None:
        db = rdsinstance.find_db(ctx, name)
        return db.get("DBInstanceStatus", "") if db is not None else None

    def act() -> None:
        if starting:
            rds.start_db_instance(DBInstanceIdentifier=name)
        else:
            rds.stop_db_instance(DBInstanceIdentifier=name)

    return Target(
        f"DB instance {name}", read, act,
        act_from=frozenset({"stopped"}) if starting else frozenset({"available"}),
        done=frozenset({"available", "backing-up"}) if starting else frozenset({"stopped"}),
        broken=rdsinstance.BROKEN, busy_codes=DB_BUSY, timeout=rdsinstance.DB_WAIT, interval=rdsinstance.POLL,
    )


def _advice(ctx: Context, outcome: dict) -> None:
    tz = _zone(ctx.cfg.scheduler.timezone)
    stopped_now = any(v == "stopped" for k, v in outcome.items() if k.startswith("DB instance"))
    if stopped_now:
        when = park.now() + AUTO_START
        ctx.report.info(f"AWS starts the DB again by itself on {_show(when, tz)} (7 days after the stop)")
    else:
        since = stopped_at(ctx)
        if since is not None:
            ctx.report.info(f"AWS starts the DB again by itself on {_show(since + AUTO_START, tz)} (7 days after it was stopped, {_show(since, tz)})")
        else:
            ctx.report.info("AWS starts a stopped DB again by itself 7 days after it was stopped (its stop event is not in the last 7 days' events)")
    _next_schedules(ctx, tz)


STOPPED_MESSAGE = "DB instance stopped"  # RDS-EVENT-0087


def stopped_at(ctx: Context) -> datetime | None:
    """When the DB was last stopped, from its RDS events of the last 7 days (what the auto-start counts from);
    None when unknown. Read-only and best effort: a missing answer only makes the message vaguer."""
    from awsprac.steps.rds import db_name

    try:
        events = ctx.aws.client("rds").describe_events(
            SourceIdentifier=db_name(ctx.cfg), SourceType="db-instance", Duration=7 * 24 * 60,
        ).get("Events", [])
    except Exception as exc:  # noqa: BLE001 - any failure: say less, never fail a stop that worked
        ctx.report.debug(f"could not read the DB's events: {exc}")
        return None
    stops = [e["Date"] for e in events if e.get("Message", "").strip().rstrip(".") == STOPPED_MESSAGE and e.get("Date")]
    return max(stops) if stops else None


def _next_schedules(ctx: Context, tz) -> None:
    from awsprac.steps.scheduler import cron

    s = ctx.cfg.scheduler
    if not s.enabled:
        ctx.report.warn(f"the weekly start/stop schedule is off ({ctx.cfg.path}: scheduler.enabled): run `awsprac stop --env {ctx.cfg.env}` again after the auto-start")
        return
    for what, expression in (("start", s.start_expression), ("stop", s.stop_expression)):
        try:
            when = cron.next_fire(expression, s.timezone, park.now())
        except (cron.CronUnsupported, ValueError, KeyError) as exc:
            ctx.report.info(f"next scheduled {what}: {expression} {s.timezone} (awsprac cannot compute it: {exc})")
            continue
        shown = _show(when, tz) if when else "never"
        ctx.report.info(f"next scheduled {what}: {shown} ({expression}, {s.timezone})")


def _zone(name: str):
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        return timezone.utc


def _show(when: datetime, tz) -> str:
    local = when.astimezone(tz)
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()} ({when.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC)"
