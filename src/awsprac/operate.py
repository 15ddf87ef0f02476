"""`awsprac stop` / `awsprac start`: park the NAT instance and the DB when unused (docs/reference.md section 10).

Stop: the DB first, then the NAT instance; start: the NAT instance first, then the DB. Each is
state-aware: already there is success; a busy DB (backing-up, modifying, ...) is waited on until it
can be acted on; AWS's "not now" (InvalidDBInstanceState, IncorrectInstanceState) means keep waiting.
Every wait is time-boxed and resumable: running the command again picks up where it stopped.
Nothing is written when everything is already as asked (no lock taken either).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from awsprac import lookup, rdsinstance, waiting
from awsprac.aws import error_code, translate
from awsprac.context import Context
from awsprac.errors import AwspracError

AUTO_START = timedelta(days=7)  # AWS starts a stopped DB instance again after 7 days
NAT_WAIT = 600.0
NAT_POLL = 5.0
BUSY_RETRIES = 5  # "not now" answered while AWS describes a state that allows the call: give up after this many
DB_BUSY = ("InvalidDBInstanceState", "InvalidDBInstanceStateFault")
EC2_BUSY = ("IncorrectInstanceState", "IncorrectState")


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


# --- what there is ---


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


def nat_instance(ctx: Context) -> lookup.Found | None:
    """The env's NAT instance (mode instance), or None."""
    from awsprac.steps import nat, vpc

    if ctx.cfg.nat.mode != "instance":
        return None
    vpc_id = vpc.observe(ctx).id
    if not vpc_id:
        return None
    name = nat.names(ctx.cfg).instance
    with translate("looking up", f"NAT instance {name}"):
        return lookup.find_by_names(ctx.aws.ec2, nat.NAT_INSTANCE, [name], vpc_id).get(name)


def nat_target(ctx: Context, instance: lookup.Found, starting: bool) -> Target:
    ec2 = ctx.aws.ec2

    def read() -> str | None:
        reply = ec2.describe_instances(InstanceIds=[instance.id])
        found = [i for r in reply["Reservations"] for i in r["Instances"]]
        return found[0]["State"]["Name"] if found else None

    def act() -> None:
        if starting:
            ec2.start_instances(InstanceIds=[instance.id])
        else:
            ec2.stop_instances(InstanceIds=[instance.id])

    return Target(
        f"NAT instance {instance.name} ({instance.id})", read, act,
        act_from=frozenset({"stopped"}) if starting else frozenset({"running"}),
        done=frozenset({"running"}) if starting else frozenset({"stopped"}),
        broken=frozenset({"shutting-down", "terminated"}), busy_codes=EC2_BUSY, timeout=NAT_WAIT, interval=NAT_POLL,
    )


def public_ip(ctx: Context, instance_id: str) -> str | None:
    reply = ctx.aws.ec2.describe_instances(InstanceIds=[instance_id])
    found = [i for r in reply["Reservations"] for i in r["Instances"]]
    return found[0].get("PublicIpAddress") if found else None


# --- the commands ---


def stop(ctx: Context) -> dict:
    """DB first, then the NAT instance. Returns what happened, by label (for tests and messages)."""
    return _run(ctx, starting=False)


def start(ctx: Context) -> dict:
    """NAT instance first, then the DB."""
    return _run(ctx, starting=True)


def _run(ctx: Context, starting: bool) -> dict:
    from awsprac import lock

    verb = "start" if starting else "stop"
    cfg = ctx.cfg
    with translate("looking up", f"the DB and NAT instance of env {cfg.env}"):
        db = db_target(ctx, starting)
        db_state = db.read()
        instance = nat_instance(ctx)
    nat = nat_target(ctx, instance, starting) if instance is not None else None
    order = [(nat, instance.state if instance else None), (db, db_state)] if starting else [(db, db_state), (nat, instance.state if instance else None)]
    todo = [(t, s) for t, s in order if t is not None and s is not None and s not in t.done]
    outcome: dict[str, str] = {}
    if db_state is None and instance is None:
        ctx.report.info(
            f"nothing to {verb} in env {cfg.env}: no DB instance and no NAT instance"
            + (f" (nat.mode is {cfg.nat.mode}: only a NAT instance can be stopped)" if cfg.nat.mode != "instance" else "")
            + f"; `awsprac up --env {cfg.env}` builds them"
        )
        return outcome
    for target, state in order:
        if target is not None and state is not None and state in target.done:
            outcome[target.label] = "already"
            ctx.report.info(f"{target.label} is already {state}")
    if db_state is None:
        ctx.report.info(f"no DB instance {db.label.split()[-1]} in env {cfg.env}: nothing to {verb} there")
    if instance is None and cfg.nat.mode == "instance":
        ctx.report.info(f"no NAT instance in env {cfg.env}: nothing to {verb} there")
    old_ip = instance.raw.get("PublicIpAddress") if instance is not None else None
    if todo:
        with lock.held(ctx, verb):
            for target, state in todo:
                with translate("starting" if starting else "stopping", target.label):
                    settle(ctx, target, verb, state)
                outcome[target.label] = "started" if starting else "stopped"
                ctx.report.applied(f"{'started' if starting else 'stopped'} {target.label}")
    _advice(ctx, starting, db_state is not None, instance, old_ip, outcome)
    return outcome


def _advice(ctx: Context, starting: bool, has_db: bool, instance, old_ip: str | None, outcome: dict) -> None:
    cfg = ctx.cfg
    tz = _zone(cfg.scheduler.timezone)
    if instance is not None:
        if starting:
            new_ip = public_ip(ctx, instance.id)
            if cfg.nat.elastic_ip:
                ctx.report.info(f"NAT instance public IP: {new_ip} (its Elastic IP)")
            elif old_ip and new_ip and old_ip != new_ip:
                ctx.report.warn(f"the NAT instance's public IP changed: {old_ip} -> {new_ip} (no Elastic IP): update any allow-list that names it")
            else:
                ctx.report.info(f"NAT instance public IP: {new_ip or '-'} (no Elastic IP: it changes at every stop/start)")
        else:
            ctx.report.warn("while the NAT instance is stopped the private subnets have no way out to the internet (their route points at it)")
            if not cfg.nat.elastic_ip:
                ctx.report.warn("its public IP is released: it gets a new one on `awsprac start` (nat.elastic_ip = true keeps one, at $0.005/hour)")
    if cfg.nat.mode == "gateway" and not starting:
        ctx.report.info("nat.mode is gateway: a NAT gateway cannot be stopped, it is billed by the hour while it exists (`awsprac cost` shows it)")
    if has_db and not starting:
        stopped_now = any(v == "stopped" for k, v in outcome.items() if k.startswith("DB instance"))
        if stopped_now:
            when = now() + AUTO_START
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
    from awsprac import cron

    s = ctx.cfg.scheduler
    if not s.enabled:
        ctx.report.warn(f"the weekly start/stop schedule is off ({ctx.cfg.path}: scheduler.enabled): run `awsprac stop --env {ctx.cfg.env}` again after the auto-start")
        return
    for what, expression in (("start", s.start_expression), ("stop", s.stop_expression)):
        try:
            when = cron.next_fire(expression, s.timezone, now())
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


def command(app, starting: bool) -> None:
    """`awsprac start|stop --env ENV`: behind the account guard, like every command."""
    ctx = app.context()
    (start if starting else stop)(ctx)
