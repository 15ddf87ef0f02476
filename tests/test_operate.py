"""`awsprac stop` / `start`: order, states AWS passes through (injected: moto stops and starts at once),
idempotence, messages. And the cron evaluator behind "next scheduled stop"."""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime, timezone

import pytest

from awsprac.steps.scheduler import cron
from awsprac.commands import park as operate
from awsprac.engine import park as parking
from awsprac.steps.nat import park as nat_park
from awsprac.engine.errors import AwspracError

from db_helpers import DB, DescribeDb, Fail, client, ok, up

BUILD = ["vpc", "subnets", "igw", "nat-iam", "nat", "secrets", "rds"]
NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)  # Wednesday 12:00 in Tokyo


@pytest.fixture
def fixed_now(monkeypatch):
    monkeypatch.setattr(parking, "now", lambda: NOW)


@pytest.fixture
def built(ctx, clock, fixed_now):
    up(ctx, BUILD)
    return ctx


def nat_state() -> str:
    reply = client("ec2").describe_instances(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-nat-1a-stg"]}])
    return [i for r in reply["Reservations"] for i in r["Instances"]][0]["State"]["Name"]


def db_state() -> str:
    return client("rds").describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]["DBInstanceStatus"]


class Instances:
    """DescribeInstances answered from moto with the NAT instance's state replaced by `states`, one per call."""

    def __init__(self, *states):
        self.states = list(states)

    def __call__(self, model, params, **kwargs):
        if not self.states:
            return None
        body = params.get("body") or {}
        ids = [v for k, v in body.items() if k.startswith("InstanceId")]
        reply = client("ec2").describe_instances(**({"InstanceIds": ids} if ids else {}))
        reply = copy.deepcopy({"Reservations": reply["Reservations"]})
        for r in reply["Reservations"]:
            for i in r["Instances"]:
                i["State"] = {"Name": self.states[0], "Code": 0}
        self.states.pop(0)
        return ok(reply)

    hook = property(lambda self: ("before-call.ec2.DescribeInstances", self))


def test_stop_stops_db_then_nat_and_says_when_it_starts_again(built, make_ctx, calls, capsys):
    ctx = make_ctx(hooks=[("before-call.*.*", calls)])
    outcome = operate.stop(ctx)
    assert db_state() == "stopped" and nat_state() == "stopped"
    writes = [w for w in calls.writes if w not in ("PutParameter", "DeleteParameter")]
    assert writes == ["StopDBInstance", "StopInstances"]
    assert calls.writes[0] == "PutParameter" and calls.writes[-1] == "DeleteParameter"  # under the lock
    assert set(outcome.values()) == {"stopped"}
    err = capsys.readouterr().err
    assert "AWS starts the DB again by itself on Wed 2026-12-02 12:00 JST (2026-12-02 03:00 UTC)" in err
    # cron(0 5 ? * SUN *) / cron(30 5 ? * SUN *) in Asia/Tokyo, after Wednesday 2026-11-25
    assert "next scheduled start: Sun 2026-11-29 05:00 JST" in err
    assert "next scheduled stop: Sun 2026-11-29 05:30 JST" in err
    assert "private subnets have no way out" in err
    assert "gets a new one on `awsprac start`" in err


def test_a_second_stop_writes_nothing(built, make_ctx, calls, capsys):
    operate.stop(built)
    ctx = make_ctx(hooks=[("before-call.*.*", calls)])
    outcome = operate.stop(ctx)
    assert calls.writes == []
    assert set(outcome.values()) == {"already"}
    assert "is already stopped" in capsys.readouterr().err


def test_already_stopped_says_when_from_the_stop_event(built, make_ctx, capsys):
    operate.stop(built)
    capsys.readouterr()
    stopped = datetime(2026, 11, 22, 1, 30, tzinfo=timezone.utc)
    events = {"Events": [
        {"SourceIdentifier": DB, "SourceType": "db-instance", "Message": "DB instance stopped", "Date": stopped},
        {"SourceIdentifier": DB, "SourceType": "db-instance", "Message": "Backing up DB instance", "Date": NOW},
    ]}
    hook = ("before-call.rds.DescribeEvents", lambda model, params, **kw: ok(events))
    operate.stop(make_ctx(hooks=[hook]))
    assert "AWS starts the DB again by itself on Sun 2026-11-29 10:30 JST (2026-11-29 01:30 UTC) (7 days after it was stopped" in capsys.readouterr().err


def test_start_starts_nat_then_db_and_reports_the_new_public_ip(built, make_ctx, calls, capsys):
    operate.stop(built)
    capsys.readouterr()
    ctx = make_ctx(hooks=[("before-call.*.*", calls)])
    operate.start(ctx)
    assert db_state() == "available" and nat_state() == "running"
    assert [w for w in calls.writes if w not in ("PutParameter", "DeleteParameter")] == ["StartInstances", "StartDBInstance"]
    err = capsys.readouterr().err
    assert "NAT instance public IP" in err or "public IP changed" in err
    again = make_ctx(hooks=[("before-call.*.*", calls)])
    calls.names.clear()
    assert set(operate.start(again).values()) == {"already"}
    assert calls.writes == []


def test_a_busy_db_is_waited_on_until_it_can_be_stopped(built, make_ctx, clock, calls):
    busy = DescribeDb({"DBInstanceStatus": "backing-up"}, {"DBInstanceStatus": "backing-up"}, {"DBInstanceStatus": "modifying"})
    refuse = Fail("StopDBInstance", "InvalidDBInstanceState", "Instance is not in available state", times=1)
    ctx = make_ctx(hooks=[("before-call.*.*", calls), busy.hook, refuse.hook])
    operate.stop(ctx)
    assert busy.seen == ["backing-up", "backing-up", "modifying"]
    assert refuse.calls == 1  # AWS said "not now" once: asked again, not failed
    assert calls.names.count("StopDBInstance") == 2
    assert db_state() == "stopped"
    assert clock.pauses  # waited (instantly) with the live status line, never a sleep


def test_a_db_that_stays_busy_is_time_boxed_and_left_as_it_is(built, make_ctx, clock, monkeypatch):
    from awsprac.steps.rds import instance as rdsinstance

    monkeypatch.setattr(rdsinstance, "DB_WAIT", 120)  # the budget's size does not matter here, its end does
    busy = DescribeDb({"DBInstanceStatus": "backing-up"}, repeat_last=True)
    with pytest.raises(AwspracError, match="still backing-up after .*run the same command again"):
        operate.stop(make_ctx(hooks=[busy.hook]))
    assert db_state() == "available"
    assert nat_state() == "running"  # the DB goes first: the NAT was not touched


def test_a_stopping_nat_is_waited_on_not_stopped_again(built, make_ctx, clock, calls):
    operate.stop(built)  # DB stopped; NAT too: start the NAT again by hand
    client("ec2").start_instances(InstanceIds=[nat_park.nat_instance(built).id])
    ctx = make_ctx(hooks=[Instances("stopping", "stopping", "stopped").hook, ("before-call.*.*", calls)])
    operate.stop(ctx)
    assert "StopInstances" not in calls.writes  # AWS said stopping: waited until stopped
    assert clock.pauses


def test_a_db_still_stopping_is_waited_on_before_start(built, make_ctx, clock, calls):
    operate.stop(built)
    stopping = DescribeDb({"DBInstanceStatus": "stopping"}, {"DBInstanceStatus": "stopping"})
    refuse = Fail("StartDBInstance", "InvalidDBInstanceState", times=1)
    ctx = make_ctx(hooks=[("before-call.*.*", calls), stopping.hook, refuse.hook])
    operate.start(ctx)
    assert db_state() == "available"
    assert calls.names.count("StartDBInstance") == 2


def test_a_terminated_nat_is_an_error_not_a_wait(built, make_ctx, clock):
    with pytest.raises(AwspracError, match="is terminated"):
        operate.stop(make_ctx(hooks=[Instances("running", "terminated").hook]))


def test_nothing_built_says_so_and_writes_nothing(make_ctx, calls, capsys, fixed_now):
    outcome = operate.stop(make_ctx(hooks=[("before-call.*.*", calls)]))
    assert outcome == {} and calls.writes == []
    assert "nothing to stop in env stg: no DB instance and no NAT instance" in capsys.readouterr().err


def test_scheduler_off_warns_that_nothing_stops_it_again(built, make_ctx, cfg, capsys):
    off = dataclasses.replace(cfg, scheduler=dataclasses.replace(cfg.scheduler, enabled=False))
    operate.stop(make_ctx(config=off))
    assert "schedule is off" in capsys.readouterr().err


# --- cron ---

TOKYO = "Asia/Tokyo"


@pytest.mark.parametrize("expression, after, expected", [
    ("cron(30 5 ? * SUN *)", "2026-11-25T12:00:00+09:00", "2026-11-29T05:30:00+09:00"),
    ("cron(30 5 ? * SUN *)", "2026-11-29T05:30:00+09:00", "2026-12-06T05:30:00+09:00"),  # strictly after
    ("cron(30 5 ? * SUN *)", "2026-11-29T05:29:00+09:00", "2026-11-29T05:30:00+09:00"),
    ("cron(0 5 ? * 1 *)", "2026-11-25T00:00:00+09:00", "2026-11-29T05:00:00+09:00"),  # 1 = SUN in AWS
    ("cron(0 9 ? * MON-FRI *)", "2026-11-28T10:00:00+09:00", "2026-11-30T09:00:00+09:00"),
    ("cron(0/15 * * * ? *)", "2026-11-25T12:07:00+09:00", "2026-11-25T12:15:00+09:00"),
    ("cron(0 0 1 JAN,JUL ? *)", "2026-02-01T00:00:00+09:00", "2026-07-01T00:00:00+09:00"),
    ("cron(0 0 29 2 ? *)", "2026-03-01T00:00:00+09:00", "2028-02-29T00:00:00+09:00"),
    ("cron(0 0 1 1 ? 2020)", "2026-01-01T00:00:00+09:00", None),
    ("at(2026-12-24T18:00:00)", "2026-11-25T00:00:00+09:00", "2026-12-24T18:00:00+09:00"),
])
def test_next_fire(expression, after, expected):
    got = cron.next_fire(expression, TOKYO, datetime.fromisoformat(after))
    assert (got.isoformat() if got else None) == expected


def test_next_fire_is_in_the_schedules_time_zone():
    after = datetime(2026, 11, 28, 21, 0, tzinfo=timezone.utc)  # Sunday 06:00 in Tokyo: today's 05:30 passed
    got = cron.next_fire("cron(30 5 ? * SUN *)", TOKYO, after)
    assert got.astimezone(timezone.utc) == datetime(2026, 12, 5, 20, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("expression", [
    "rate(5 minutes)", "cron(0 5 L * ? *)", "cron(0 5 ? * 6#3 *)", "cron(0 5 * * *)",
    "cron(0 5 * * MON *)", "cron(0 5 ? * ? *)", "cron(61 5 ? * SUN *)", "cron(0 5 ? * FOO *)",
])
def test_expressions_it_cannot_read_say_so(expression):
    with pytest.raises(cron.CronUnsupported):
        cron.next_fire(expression, TOKYO, NOW)


def test_stop_command_on_an_empty_account_says_nothing_to_do(awsprac, server):
    from conftest import is_write

    server.start_recording()
    result = awsprac("stop", "--env", "stg")
    assert result.returncode == 0, result.stderr
    assert "nothing to stop in env stg: no DB instance and no NAT instance" in result.stderr
    assert [a for a in server.recorded_actions() if is_write(a)] == []


def test_the_emulation_is_not_polled_at_aws_pace(built, make_ctx, clock):
    """moto (the sandbox) is stopped and started the moment it is asked: no 15 s poll (seen as no pause)."""
    assert set(operate.stop(make_ctx()).values()) == {"stopped"}
    assert set(operate.start(make_ctx()).values()) == {"started"}
    assert clock.pauses == []
    assert db_state() == "available" and nat_state() == "running"
