"""End to end, the database part: the installed `awsprac` in a subprocess against a moto server.
up -> up (writes nothing) -> destroy (secret recoverable, final snapshot) -> up (secret restored, same
password) -> up (writes nothing); and the way out when the secret is gone."""

import json

import boto3
import pytest

from conftest import is_write

pytestmark = pytest.mark.e2e


def client(server, service):
    return boto3.client(service, region_name="ap-northeast-1", endpoint_url=server.endpoint)


def secret(server) -> dict:
    return json.loads(client(server, "secretsmanager").get_secret_value(SecretId="rds-main-stg")["SecretString"])


def endpoint(server) -> str:
    return client(server, "rds").describe_db_instances(DBInstanceIdentifier="aws-practice-stg")["DBInstances"][0]["Endpoint"]["Address"]


def test_build_rebuild_and_destroy_cycle(awsprac, server):
    first = awsprac("up", "--env", "stg", "--yes")
    assert first.returncode == 0, first.stderr
    value = secret(server)
    password, arn = value["DB_PASSWORD"], client(server, "secretsmanager").describe_secret(SecretId="rds-main-stg")["ARN"]
    assert value["DB_HOST"] == endpoint(server)
    assert password not in first.stdout + first.stderr
    schedules = client(server, "scheduler").list_schedules(GroupName="aws-practice-stg")["Schedules"]
    assert sorted(s["Name"] for s in schedules) == ["aws-practice-db-start-stg", "aws-practice-db-stop-stg"]

    server.start_recording()
    second = awsprac("up", "--env", "stg", "--yes")
    actions = server.recorded_actions()
    assert second.returncode == 0 and "no changes, everything is in sync." in second.stdout, second.stdout + second.stderr
    assert "DescribeDBInstances" in actions and [a for a in actions if is_write(a)] == []

    gone = awsprac("destroy", "--env", "stg", "--yes")
    assert gone.returncode == 0, gone.stderr
    assert "final snapshot aws-practice-stg-final-" in gone.stderr
    assert "secret rds-main-stg is scheduled for deletion in 7 days; until then `awsprac up --env stg` restores it" in gone.stderr
    assert client(server, "rds").describe_db_instances()["DBInstances"] == []
    snapshots = client(server, "rds").describe_db_snapshots(DBInstanceIdentifier="aws-practice-stg")["DBSnapshots"]
    assert [s["DBSnapshotIdentifier"] for s in snapshots if "-final-" in s["DBSnapshotIdentifier"]]
    assert client(server, "secretsmanager").describe_secret(SecretId="rds-main-stg").get("DeletedDate")
    assert "aws-practice-scheduler-stg" not in [r["RoleName"] for r in client(server, "iam").list_roles()["Roles"]]

    again = awsprac("up", "--env", "stg", "--yes")
    assert again.returncode == 0, again.stderr
    assert "restored secret rds-main-stg" in again.stderr
    assert client(server, "secretsmanager").describe_secret(SecretId="rds-main-stg")["ARN"] == arn
    assert secret(server)["DB_PASSWORD"] == password and secret(server)["DB_HOST"] == endpoint(server)

    server.start_recording()
    third = awsprac("up", "--env", "stg", "--yes")
    assert third.returncode == 0 and [a for a in server.recorded_actions() if is_write(a)] == []


def test_a_lost_secret_is_fixed_with_reset_password(awsprac, server):
    assert awsprac("up", "--env", "stg", "--yes").returncode == 0
    client(server, "secretsmanager").delete_secret(SecretId="rds-main-stg", ForceDeleteWithoutRecovery=True)
    broken = awsprac("up", "--env", "stg", "--yes")
    assert broken.returncode == 1
    assert broken.stderr.endswith("run `awsprac db reset-password --env stg` to set a new master password on it and store it\n")
    assert broken.stderr.count("\n") == 1 and "Traceback" not in broken.stderr
    fixed = awsprac("db", "reset-password", "--env", "stg", "--yes")
    assert fixed.returncode == 0, fixed.stderr
    assert secret(server)["DB_PASSWORD"] not in fixed.stdout + fixed.stderr
    assert secret(server)["DB_HOST"] == endpoint(server)
    assert "no changes" in awsprac("plan", "--env", "stg").stdout
