"""One run at a time per env: the lease in SSM, stale leases, and two `up` runs racing."""

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from awsprac.engine import lock

REGION = "ap-northeast-1"
NAME = "run-lock-aws-practice-stg"


def ssm():
    return boto3.client("ssm", region_name=REGION)


def account_parameters():
    """The account's own parameters (moto also lists AWS's public ones, e.g. the AMI ids the NAT step reads)."""
    return [p for p in ssm().describe_parameters()["Parameters"] if not p["Name"].startswith("/aws/")]


def test_the_lease_is_held_during_the_block_and_given_back(ctx):
    with lock.held(ctx, "up"):
        lease = json.loads(ssm().get_parameter(Name=NAME)["Parameter"]["Value"])
        assert lease["pid"] == os.getpid() and lease["command"] == "up"
        tags = {t["Key"]: t["Value"] for t in ssm().list_tags_for_resource(ResourceType="Parameter", ResourceId=NAME)["TagList"]}
        assert tags["awsprac:env"] == "stg"
    assert account_parameters() == []


def test_a_second_run_is_refused_while_the_first_holds_it(ctx, make_ctx):
    with lock.held(ctx, "up"):
        with pytest.raises(lock.Locked) as err:
            with lock.held(make_ctx(), "destroy"):
                pass
    message = str(err.value)
    assert message.startswith("env stg is locked by another awsprac run (up on ")
    assert f"pid {os.getpid()}" in message and "`awsprac unlock --env stg`" in message


def put_lease(pid: int, expires: datetime, host: str | None = None):
    import socket

    value = {"host": host or socket.gethostname(), "pid": pid, "command": "up", "since": "then", "expires": expires.isoformat()}
    ssm().put_parameter(Name=NAME, Value=json.dumps(value), Type="String")


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=30)
    return proc.pid


def test_the_lease_of_a_killed_run_on_this_machine_is_taken_over(ctx, capsys):
    put_lease(dead_pid(), datetime.now(timezone.utc) + timedelta(hours=1))
    with lock.held(ctx, "up"):
        assert json.loads(ssm().get_parameter(Name=NAME)["Parameter"]["Value"])["pid"] == os.getpid()
    assert "taking over the lock of a run that is gone" in capsys.readouterr().err


def test_an_expired_lease_from_another_machine_is_taken_over(ctx, capsys):
    put_lease(12345, datetime.now(timezone.utc) - timedelta(minutes=1), host="elsewhere")
    with lock.held(ctx, "up"):
        lease = json.loads(ssm().get_parameter(Name=NAME)["Parameter"]["Value"])
        assert (lease["host"], lease["pid"]) != ("elsewhere", 12345) and lease["pid"] == os.getpid()
    assert "taking over the lock of a run that is gone: up on elsewhere pid 12345" in capsys.readouterr().err
    assert account_parameters() == []


def test_a_live_lease_from_another_machine_is_respected_until_unlocked(ctx, make_ctx):
    put_lease(12345, datetime.now(timezone.utc) + timedelta(hours=1), host="elsewhere")
    with pytest.raises(lock.Locked, match="up on elsewhere pid 12345"):
        with lock.held(ctx, "up"):
            pass
    assert lock.unlock(make_ctx()).startswith("up on elsewhere pid 12345")
    with lock.held(make_ctx(), "up"):
        pass


def test_a_converged_up_takes_no_lease(ctx, monkeypatch, capsys):
    """Not only none left behind (a lease taken and given back leaves none either): none is ever put."""
    from conftest import Calls, build, hook_every_session, run_cli

    build(ctx)
    sent = Calls()
    hook_every_session(monkeypatch, [("before-call.*.*", sent)])
    code, out, err = run_cli(capsys, "up", "--env", "stg", "--yes", envs=ctx.cfg.path.parent)
    assert code == 0 and "no changes, everything is in sync." in out, err
    assert sent.names, "the run sent nothing: the hook saw no session"
    assert sent.writes == []
    assert account_parameters() == []


def test_up_refuses_a_live_lease_saying_who_holds_it_and_until_when(mocked, monkeypatch, capsys):
    """Through the command line: exit 1 (a documented AWS-side refusal), the holder and the lease's end
    in the one error line, nothing built, the other run's lease left in place."""
    from conftest import Calls, hook_every_session, run_cli

    expires = datetime.now(timezone.utc) + timedelta(hours=1)
    put_lease(12345, expires, host="elsewhere")
    sent = Calls()
    hook_every_session(monkeypatch, [("before-call.*.*", sent)])
    code, out, err = run_cli(capsys, "up", "--env", "stg", "--yes")
    assert code == 1
    assert err == (
        f"error: env stg is locked by another awsprac run (up on elsewhere pid 12345, since then, expires {expires.isoformat()}): "
        "wait for it to finish; if that run is gone for good, `awsprac unlock --env stg` removes the lock\n"
    )
    assert sent.writes == ["PutParameter"], "the refused attempt to take the lease is the only write"
    assert boto3.client("ec2", region_name=REGION).describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-stg"]}])["Vpcs"] == []
    assert json.loads(ssm().get_parameter(Name=NAME)["Parameter"]["Value"])["host"] == "elsewhere"


def test_what_changed_while_confirming_is_not_applied(ctx, monkeypatch, capsys):
    """The plan said 'update the VPC'; while the person read it, someone deleted a subnet. Under the lock each
    step is observed again before it writes: the VPC update (agreed) is made, the subnet (not shown) is not."""
    import io
    import sys

    from awsprac.engine import runner
    from awsprac.commands.cli import main

    runner.apply(ctx, runner.resolve(None), runner.plan(ctx, runner.resolve(None)))
    ec2 = boto3.client("ec2", region_name=REGION)
    ec2.modify_vpc_attribute(VpcId=ctx.observed["vpc"].id, EnableDnsHostnames={"Value": False})
    subnet = ctx.observed["subnets"].subnets["public-subnet-1c-stg"].id

    class Person(io.StringIO):
        def readline(self):
            ec2.delete_subnet(SubnetId=subnet)
            return "y\n"

    monkeypatch.setattr(sys, "stdin", Person())
    with pytest.raises(SystemExit) as exit:
        main(["--envs-dir", str(ctx.cfg.path.parent), "up", "--env", "stg"])
    err = capsys.readouterr().err
    assert exit.value.code == 1
    assert "step subnets: the env changed since the plan was shown (+ subnet public-subnet-1c-stg" in err
    assert "step subnets was not applied" in err and "step routes not attempted: step subnets did not finish" in err
    names = [t["Value"] for s in ec2.describe_subnets()["Subnets"] for t in s.get("Tags", []) if t["Key"] == "Name"]
    assert "public-subnet-1c-stg" not in names, "what the plan did not show may not be applied"
    attribute = ec2.describe_vpc_attribute(VpcId=ctx.observed["vpc"].id, Attribute="enableDnsHostnames")
    assert attribute["EnableDnsHostnames"]["Value"] is True, "what was agreed is applied"
    assert account_parameters() == [], "the lease is given back"


def test_what_another_run_built_while_confirming_is_not_built_twice(ctx, make_ctx, monkeypatch, capsys):
    """The plan said 'create the VPC' (and the rest); before this run took the lock, another run built the
    network. Observed again under the lock, nothing is created twice, and the rest is built on it."""
    import io
    import sys

    from awsprac.commands.cli import main
    from conftest import build

    class Person(io.StringIO):
        def readline(self):
            build(make_ctx(), ["vpc", "subnets"])
            return "y\n"

    monkeypatch.setattr(sys, "stdin", Person())
    with pytest.raises(SystemExit) as exit:
        main(["--envs-dir", str(ctx.cfg.path.parent), "up", "--env", "stg"])
        raise SystemExit(0)
    err = capsys.readouterr().err
    assert exit.value.code in (0, None), err
    ec2 = boto3.client("ec2", region_name=REGION)
    assert len(ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-stg"]}])["Vpcs"]) == 1
    assert len(ec2.describe_subnets()["Subnets"]) == 4 + len(ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"])
    assert "up done" in err


def test_a_lease_taken_over_during_the_run_is_not_given_back(ctx):
    """Someone ran `awsprac unlock` and another run took the env: the first run's release leaves the
    other's lease alone (it reads the lease right before deleting it)."""
    with lock.held(ctx, "up"):
        ssm().delete_parameter(Name=NAME)
        put_lease(12345, datetime.now(timezone.utc) + timedelta(hours=1), host="elsewhere")
    assert json.loads(ssm().get_parameter(Name=NAME)["Parameter"]["Value"])["host"] == "elsewhere"
