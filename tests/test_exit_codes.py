"""The README's exit code table, command by command, through the command line."""

import json

import boto3
import pytest

from conftest import run_cli as run

LOCK = "run-lock-aws-practice-stg"


def held_by_elsewhere():
    lease = {"host": "elsewhere", "pid": 12345, "command": "up", "since": "then", "expires": "9999-12-31T00:00:00+00:00"}
    boto3.client("ssm", region_name="ap-northeast-1").put_parameter(Name=LOCK, Value=json.dumps(lease), Type="String")


NOTHING_BUILT = [  # (command, exit code, what it says)
    (["nat", "verify"], 2, "no NAT instance aws-practice-nat-1a-stg in env stg: run `awsprac up --env stg` first"),
    (["db", "reset-password"], 2, "there is no DB instance aws-practice-stg in env stg"),
    (["export", "terraform", "--json"], 2, "env stg has nothing built yet"),
    (["nat", "bake-ami"], 2, "env stg has no NAT instance"),
    (["image", "uri"], 2, "ECR repository aws-practice-stg does not exist"),
    (["step", "subnets"], 2, "step subnets needs step vpc"),
    (["stop"], 0, "nothing to stop in env stg"),
    (["start"], 0, "nothing to start in env stg"),
    (["destroy"], 0, "nothing owned by env stg is left to delete"),
    (["unlock"], 0, "env stg is not locked"),
]


@pytest.mark.parametrize("command,code,says", NOTHING_BUILT, ids=[" ".join(c[0]) for c in NOTHING_BUILT])
def test_nothing_built_yet(capsys, mocked, monkeypatch, command, code, says):
    got, out, err = run(capsys, *command, "--env", "stg", stdin="", monkeypatch=monkeypatch)
    assert got == code and says in err, err


def test_declined_and_closed_stdin_are_1_and_change_nothing(capsys, mocked, monkeypatch):
    ec2 = boto3.client("ec2", region_name="ap-northeast-1")
    before = len(ec2.describe_vpcs()["Vpcs"])
    code, out, err = run(capsys, "up", "--env", "stg", stdin="n\n", monkeypatch=monkeypatch)
    assert code == 1 and err.endswith("error: cancelled: nothing was changed\n")
    code, out, err = run(capsys, "up", "--env", "stg", stdin="", monkeypatch=monkeypatch)
    assert code == 1 and "error: no answer (standard input is closed): nothing was changed; pass --yes" in err
    assert len(ec2.describe_vpcs()["Vpcs"]) == before
    run(capsys, "up", "--env", "stg", "--yes")
    code, out, err = run(capsys, "destroy", "--env", "stg", stdin="prd\n", monkeypatch=monkeypatch)
    assert code == 1 and "destroy cancelled" in err
    code, out, err = run(capsys, "destroy", "--env", "stg", stdin="", monkeypatch=monkeypatch)
    assert code == 1 and "standard input is closed" in err
    code, out, err = run(capsys, "db", "reset-password", "--env", "stg", stdin="", monkeypatch=monkeypatch)
    assert code == 1 and "standard input is closed" in err
    code, out, err = run(capsys, "nat", "bake-ami", "--env", "stg", stdin="no\n", monkeypatch=monkeypatch)
    assert code == 1 and "cancelled: nothing was changed" in err


def test_a_held_lock_is_1_for_every_command_that_writes(capsys, mocked):
    held_by_elsewhere()
    code, out, err = run(capsys, "up", "--env", "stg", "--yes")  # nothing built: everything to create
    assert code == 1 and "up on elsewhere pid 12345" in err and "awsprac unlock --env stg" in err, err
    boto3.client("ssm", region_name="ap-northeast-1").delete_parameter(Name=LOCK)
    run(capsys, "up", "--env", "stg", "--yes")
    held_by_elsewhere()
    for command in (["stop"], ["destroy", "--yes"], ["db", "reset-password", "--yes"]):
        code, out, err = run(capsys, *command, "--env", "stg")
        assert code == 1 and "up on elsewhere pid 12345" in err and "awsprac unlock --env stg" in err, (command, err)
