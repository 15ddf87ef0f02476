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


def everything(server) -> dict:
    """What a destroy could touch, by kind: ids of the env's network, NAT, DB, secret and schedules."""
    ec2, rds = client(server, "ec2"), client(server, "rds")
    mine = [{"Name": "tag:awsprac:env", "Values": ["stg"]}]
    return {
        "vpc": [v["VpcId"] for v in ec2.describe_vpcs(Filters=mine)["Vpcs"]],
        "subnets": sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=mine)["Subnets"]),
        "route tables": sorted(t["RouteTableId"] for t in ec2.describe_route_tables(Filters=mine)["RouteTables"]),
        "instances": [i["InstanceId"] for r in ec2.describe_instances(Filters=mine)["Reservations"] for i in r["Instances"] if i["State"]["Name"] == "running"],
        "db": [(d["DBInstanceIdentifier"], d["DeletionProtection"]) for d in rds.describe_db_instances()["DBInstances"]],
        "secret deleted": bool(client(server, "secretsmanager").describe_secret(SecretId="rds-main-stg").get("DeletedDate")),
        "schedules": len(client(server, "scheduler").list_schedules()["Schedules"]),
    }


def test_destroy_refuses_before_any_write_when_a_protected_db_would_be_stranded(awsprac, server):
    env_file = awsprac.cwd / "envs" / "stg.toml"
    env_file.write_text(env_file.read_text().replace("deletion_protection = false", "deletion_protection = true"))
    assert awsprac("up", "--env", "stg", "--yes").returncode == 0
    before = everything(server)

    server.start_recording()
    refused = awsprac("destroy", "--env", "stg", "--yes")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert [a for a in server.recorded_actions() if is_write(a)] == []
    assert everything(server) == before
    assert "DB instance aws-practice-stg" in refused.stdout and "deletion protection is on" in refused.stdout
    assert refused.stderr.endswith(
        "destroy refused, nothing was deleted: DB instance aws-practice-stg has deletion protection on and would keep its "
        "subnets, security group and VPC: `awsprac destroy --env stg --force` turns protection off, takes a final snapshot and deletes it\n"
    ), refused.stderr

    forced = awsprac("destroy", "--env", "stg", "--force", "--yes")
    assert forced.returncode == 0, forced.stderr
    assert everything(server)["db"] == [] and everything(server)["vpc"] == []
    assert server.strict().refused == []
