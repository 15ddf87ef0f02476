"""`awsprac db tunnel` and `db psql` through a real process boundary: stand-in `session-manager-plugin` and
`psql` executables on PATH (tests/stand_in_ssm.py) record their arguments and environment. Moto has no
Session Manager sessions: StartSession and TerminateSession are answered by a botocore before-call hook."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest

from conftest import ENVS, hook_every_session, run_cli
from db_helpers import OWNED, client, ok

HERE = Path(__file__).resolve().parent
SESSION = {"SessionId": "awsprac-test-0a1b2c3d4e", "TokenValue": "stand-in-token",
           "StreamUrl": "wss://ssmmessages.ap-northeast-1.amazonaws.com/v1/data-channel/awsprac-test-0a1b2c3d4e"}
MASTER_PASSWORD = "master-Pw-0123456789abcdefghijklmnopq"
APP_PASSWORD = "app-Pw-0123456789abcdefghijklmnopqrstu"


class Ssm:
    """Answers StartSession / TerminateSession, recording what was asked."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, model, params, **kwargs):
        if model.name not in ("StartSession", "TerminateSession"):
            return None
        body = params.get("body") or b"{}"
        self.calls.append((model.name, json.loads(body) if isinstance(body, (bytes, str)) else body))
        if model.name == "StartSession":
            return ok(dict(SESSION))
        return ok({"SessionId": SESSION["SessionId"]})

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def install_stand_ins(tmp_path: Path, monkeypatch):
    """`session-manager-plugin` and `psql` stand-ins first on PATH; returns calls(program) -> recorded calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("session-manager-plugin", "psql"):
        exe = bin_dir / name
        exe.write_text(f"#!{sys.executable}\n" + (HERE / "stand_in_ssm.py").read_text())
        exe.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("STAND_IN_SSM_LOG", str(log))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def calls(program: str) -> list[dict]:
        lines = log.read_text().splitlines() if log.exists() else []
        return [e for e in map(json.loads, lines) if e["program"] == program]

    return calls


@pytest.fixture
def stand_ins(tmp_path, monkeypatch):
    return install_stand_ins(tmp_path, monkeypatch)


def nat_and_db() -> tuple[str, str]:
    """A running NAT instance and an available DB, made in moto: (instance id, DB endpoint)."""
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/18", AvailabilityZone="ap-northeast-1a")["Subnet"]["SubnetId"]
    tags = [{"Key": "Name", "Value": "aws-practice-nat-1a-stg"}, *({"Key": k, "Value": v} for k, v in OWNED.items())]
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t2.micro", SubnetId=subnet,
                                 TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])["Instances"][0]["InstanceId"]
    client("rds").create_db_instance(DBInstanceIdentifier="aws-practice-stg", Engine="postgres", DBInstanceClass="db.t4g.micro",
                                     MasterUsername="postgres", MasterUserPassword=MASTER_PASSWORD, AllocatedStorage=20)
    host = client("rds").describe_db_instances(DBInstanceIdentifier="aws-practice-stg")["DBInstances"][0]["Endpoint"]["Address"]
    return instance, host


@pytest.fixture
def env(mocked, monkeypatch):
    """A running NAT instance, an available DB, rds-main-stg with the master; StartSession answered."""
    instance, host = nat_and_db()
    value = {"DB_HOST": host, "DB_PORT": "5432", "DB_NAME": "aws_practice", "DB_USER_NAME": "postgres", "DB_PASSWORD": MASTER_PASSWORD}
    client("secretsmanager").create_secret(Name="rds-main-stg", SecretString=json.dumps(value))
    ssm = Ssm()
    hook_every_session(monkeypatch, [("before-call.ssm.*", ssm)])
    return {"instance": instance, "host": host, "ssm": ssm}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_tunnel_runs_the_plugin_as_the_aws_cli_does_and_ctrl_c_terminates_the_session(capsys, monkeypatch, env, stand_ins):
    monkeypatch.setenv("STAND_IN_SSM_CTRL_C", "1")
    port = free_port()
    code, out, err = run_cli(capsys, "db", "tunnel", "--env", "stg", "--local-port", str(port))
    assert code == 0, err
    request = {"Target": env["instance"], "DocumentName": "AWS-StartPortForwardingSessionToRemoteHost",
               "Parameters": {"host": [env["host"]], "portNumber": ["5432"], "localPortNumber": [str(port)]}}
    assert env["ssm"].calls == [("StartSession", request), ("TerminateSession", {"SessionId": SESSION["SessionId"]})]
    (started, stopped) = stand_ins("session-manager-plugin")
    # A plugin newer than 1.2.497.0 takes the session response from the environment, like the AWS CLI gives it.
    assert started["argv"][0] == "AWS_SSM_START_SESSION_RESPONSE"
    assert json.loads(started["response_env"]) == SESSION
    assert started["argv"][1:4] == ["ap-northeast-1", "StartSession", ""]
    assert json.loads(started["argv"][4]) == request
    assert started["argv"][5].startswith("https://ssm.ap-northeast-1.amazonaws.com")
    assert stopped == {"program": "session-manager-plugin", "stopped": True}
    assert MASTER_PASSWORD not in out + err + json.dumps(started)


def test_an_old_plugin_gets_the_session_response_as_its_argument_and_the_tunnel_says_how_to_connect(capsys, monkeypatch, env, stand_ins):
    monkeypatch.setenv("STAND_IN_SSM_END", "1")  # the session ends by itself: no Ctrl-C racing the output
    monkeypatch.setenv("STAND_IN_SSM_VERSION", "1.2.497.0")
    port = free_port()
    code, out, err = run_cli(capsys, "db", "tunnel", "--env", "stg", "--local-port", str(port))
    assert code == 0, err
    started = stand_ins("session-manager-plugin")[0]
    assert json.loads(started["argv"][0]) == SESSION and started["response_env"] is None
    assert f"tunnel open: 127.0.0.1:{port} -> {env['host']}:5432 through aws-practice-nat-1a-stg" in out
    assert f"psql -h 127.0.0.1 -p {port} -U <user> -d aws_practice" in out and MASTER_PASSWORD not in out + err
    assert env["ssm"].names() == ["StartSession", "TerminateSession"]


def test_a_plugin_that_ends_before_the_port_opens_is_exit_1_and_the_session_is_terminated(capsys, monkeypatch, env, stand_ins):
    monkeypatch.setenv("STAND_IN_SSM_FAIL", "1")
    code, _, err = run_cli(capsys, "db", "tunnel", "--env", "stg", "--local-port", str(free_port()))
    assert code == 1 and "session-manager-plugin ended before the tunnel was open" in err
    assert env["ssm"].names() == ["StartSession", "TerminateSession"]


def test_psql_gets_the_master_password_through_its_environment_only(capsys, monkeypatch, env, stand_ins):
    monkeypatch.setenv("STAND_IN_PSQL_EXIT", "3")
    code, out, err = run_cli(capsys, "db", "psql", "--env", "stg")
    assert code == 3  # psql's own status
    (call,) = stand_ins("psql")
    plugin = stand_ins("session-manager-plugin")[0]
    port = json.loads(plugin["argv"][4])["Parameters"]["localPortNumber"][0]
    assert call["argv"] == ["-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "aws_practice"]
    assert call["PGPASSWORD"] == MASTER_PASSWORD
    assert env["ssm"].names() == ["StartSession", "TerminateSession"]
    assert MASTER_PASSWORD not in json.dumps(call["argv"]) + json.dumps(plugin["argv"]) + out + err


def test_psql_reads_the_master_from_rds_master_once_it_exists_and_app_uses_rds_main(capsys, env, stand_ins):
    sm = client("secretsmanager")
    master = json.loads(sm.get_secret_value(SecretId="rds-main-stg")["SecretString"])
    sm.create_secret(Name="rds-master-stg", SecretString=json.dumps(master))
    sm.put_secret_value(SecretId="rds-main-stg", SecretString=json.dumps({**master, "DB_USER_NAME": "aws_practice", "DB_PASSWORD": APP_PASSWORD}))
    assert run_cli(capsys, "db", "psql", "--env", "stg")[0] == 0
    assert run_cli(capsys, "db", "psql", "--env", "stg", "--app")[0] == 0
    as_master, as_app = stand_ins("psql")
    assert (as_master["argv"][5], as_master["PGPASSWORD"]) == ("postgres", MASTER_PASSWORD)
    assert (as_app["argv"][5], as_app["PGPASSWORD"]) == ("aws_practice", APP_PASSWORD)


def test_psql_app_before_the_app_user_exists_is_exit_2(capsys, env, stand_ins):
    code, _, err = run_cli(capsys, "db", "psql", "--env", "stg", "--app")
    assert code == 2 and "db create-app-user" in err
    assert env["ssm"].names() == []


def envs_with(tmp_path: Path, **changes: str) -> Path:
    folder = tmp_path / "envs"
    folder.mkdir()
    text = (ENVS / "stg.toml").read_text()
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    (folder / "stg.toml").write_text(text)
    return folder


@pytest.mark.parametrize("change,message", [
    ({"mode = \"instance\"": "mode = \"gateway\""}, "nat.mode is gateway in "),
    ({"mode = \"instance\"": "mode = \"none\""}, "nat.mode is none in "),
    ({"tunnel = true": "tunnel = false"}, "database.tunnel is off in "),
])
def test_settings_that_rule_out_a_tunnel_are_exit_2_saying_what_to_change(capsys, tmp_path, env, stand_ins, change, message):
    code, _, err = run_cli(capsys, "db", "tunnel", "--env", "stg", envs=envs_with(tmp_path, **change))
    assert code == 2 and message in err and "run `awsprac up --env stg`" in err and err.count("\n") == 1
    assert env["ssm"].names() == []


def test_a_stopped_nat_instance_is_exit_2_saying_to_start_it(capsys, env, stand_ins):
    client("ec2").stop_instances(InstanceIds=[env["instance"]])
    code, _, err = run_cli(capsys, "db", "tunnel", "--env", "stg")
    assert code == 2 and "NAT instance aws-practice-nat-1a-stg is stopped" in err and "awsprac start --env stg" in err
    assert env["ssm"].names() == []


def test_a_local_port_in_use_is_exit_2_naming_it(capsys, env, stand_ins):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(capsys, "db", "tunnel", "--env", "stg", "--local-port", str(port))
    assert code == 2 and err == f"error: local port {port} is already in use on 127.0.0.1: pick another with --local-port\n"
    assert env["ssm"].names() == []


def test_no_plugin_is_exit_2_with_how_to_install_before_any_session(capsys, monkeypatch, tmp_path, env):
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run_cli(capsys, "db", "tunnel", "--env", "stg")
    assert code == 2 and "session-manager-plugin is not installed" in err and "install the Session Manager plugin" in err
    assert env["ssm"].names() == []


def test_no_psql_is_exit_2(capsys, monkeypatch, tmp_path, env):
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run_cli(capsys, "db", "psql", "--env", "stg")
    assert code == 2 and "psql is not installed" in err
    assert env["ssm"].names() == []
