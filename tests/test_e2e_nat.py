"""End to end for the NAT and routes: the installed `awsprac` against a moto server, as a user would run it."""

import re

import boto3
import pytest

from conftest import is_write

pytestmark = pytest.mark.e2e

NAT = "aws-practice-nat-1a-stg"


def client(server, service="ec2"):
    return boto3.client(service, region_name="ap-northeast-1", endpoint_url=server.endpoint)


def owned_nat_and_routes(server):
    """Everything of sections 3 and 4 that carries env stg's tags, by kind."""
    ec2, iam = client(server), client(server, "iam")
    mine = [{"Name": "tag:awsprac:env", "Values": ["stg"]}, {"Name": "tag:Name", "Values": [
        NAT, "aws-practice-nat-stg", "aws-practice-nat-instance-1a-stg", "aws-practice-rtb-public-stg", "aws-practice-rtb-private-stg"]}]
    instances = [i["InstanceId"] for r in ec2.describe_instances(Filters=mine)["Reservations"] for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    gateways = [g["NatGatewayId"] for g in ec2.describe_nat_gateways(Filters=mine)["NatGateways"] if g["State"] not in ("deleted", "deleting")]
    return {
        "instance": instances,
        "security group": [g["GroupId"] for g in ec2.describe_security_groups(Filters=mine)["SecurityGroups"]],
        "route table": [t["RouteTableId"] for t in ec2.describe_route_tables(Filters=mine)["RouteTables"]],
        "NAT gateway": gateways,
        "elastic IP": [a["AllocationId"] for a in ec2.describe_addresses(Filters=mine)["Addresses"]],
        "IAM role": [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] == "aws-practice-nat-stg"],
    }


def counts(server):
    return {kind: len(ids) for kind, ids in owned_nat_and_routes(server).items()}


def test_hand_changes_show_in_plan_and_up_repairs_them(awsprac, server):
    assert awsprac("up", "--env", "stg", "--yes").returncode == 0
    ec2 = client(server)
    (instance,) = [i for r in ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [NAT]}])["Reservations"] for i in r["Instances"]]
    (private,) = ec2.describe_route_tables(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-rtb-private-stg"]}])["RouteTables"]
    original = private["Tags"] and {t["Key"]: t["Value"] for t in private["Tags"]}["awsprac:original-main-route-table"]
    main = next(a for a in private["Associations"] if a.get("Main"))
    igw = ec2.describe_internet_gateways(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-igw-stg"]}])["InternetGateways"][0]["InternetGatewayId"]
    # A person: source/dest check back on, the private default route to the internet gateway, the main table switched back.
    ec2.modify_instance_attribute(InstanceId=instance["InstanceId"], SourceDestCheck={"Value": True})
    ec2.replace_route(RouteTableId=private["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.replace_route_table_association(AssociationId=main["RouteTableAssociationId"], RouteTableId=original)

    plan = awsprac("plan", "--env", "stg")
    assert plan.returncode == 0
    assert "source/dest check: true -> false" in plan.stdout
    assert f"route 0.0.0.0/0: {igw} -> {instance['NetworkInterfaces'][0]['NetworkInterfaceId']}" in plan.stdout
    assert f"main route table of the VPC: {original} -> aws-practice-rtb-private-stg" in plan.stdout
    assert "Plan: 0 to create, 2 to update, 0 to delete." in plan.stdout

    fixed = awsprac("up", "--env", "stg", "--yes")
    assert fixed.returncode == 0, fixed.stderr
    server.start_recording()
    again = awsprac("up", "--env", "stg", "--yes")
    assert "no changes, everything is in sync." in again.stdout
    assert [a for a in server.recorded_actions() if is_write(a)] == []


def test_mode_switch_through_the_env_file_then_destroy_leaves_nothing_owned(awsprac, server):
    assert awsprac("up", "--env", "stg", "--yes").returncode == 0
    assert counts(server) == {"instance": 1, "security group": 1, "route table": 2, "NAT gateway": 0, "elastic IP": 0, "IAM role": 1}
    env_file = awsprac.cwd / "envs" / "stg.toml"
    env_file.write_text(env_file.read_text().replace('mode = "instance"', 'mode = "gateway"'))

    plan = awsprac("plan", "--env", "stg")
    assert "nat.mode is gateway: no longer needed" in plan.stdout
    # The routes' target, and step db-ingress's rule from the NAT group (database.tunnel needs the NAT instance).
    assert "aws-practice-db-stg from aws-practice-nat-stg" in plan.stdout
    assert "tcp 5432 (db tunnel): database.tunnel does not ask for it" in plan.stdout
    assert "Plan: 2 to create, 1 to update, 5 to delete." in plan.stdout
    switched = awsprac("up", "--env", "stg", "--yes")
    assert switched.returncode == 0, switched.stderr
    assert counts(server) == {"instance": 0, "security group": 0, "route table": 2, "NAT gateway": 1, "elastic IP": 1, "IAM role": 0}
    (private,) = client(server).describe_route_tables(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-rtb-private-stg"]}])["RouteTables"]
    route = next(r for r in private["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0")
    assert route["NatGatewayId"] == owned_nat_and_routes(server)["NAT gateway"][0]
    assert "no changes" in awsprac("plan", "--env", "stg").stdout

    gone = awsprac("destroy", "--env", "stg", "--yes")
    assert gone.returncode == 0, gone.stderr
    assert counts(server) == {"instance": 0, "security group": 0, "route table": 0, "NAT gateway": 0, "elastic IP": 0, "IAM role": 0}


def set_mode(awsprac, mode: str) -> None:
    env_file = awsprac.cwd / "envs" / "stg.toml"
    env_file.write_text(re.sub(r'(?m)^mode = "\w+"', f'mode = "{mode}"', env_file.read_text()))


def test_cold_up_launches_the_nat_online_and_every_mode_switch_keeps_egress(awsprac, server):
    """Under the strict layer: the NAT instance boots with a route to the internet, and switching the mode in
    every direction moves the private route to the new target before anything of the old mode goes."""
    assert awsprac("up", "--env", "stg", "--yes").returncode == 0
    strict = server.strict()
    assert strict.offline == [] and strict.gaps == [] and strict.refused == []
    for mode in ("gateway", "none", "instance", "none", "gateway", "instance"):
        set_mode(awsprac, mode)
        server.nat_mode(mode)
        switched = awsprac("up", "--env", "stg", "--yes")
        assert switched.returncode == 0, f"to {mode}: {switched.stderr}"
        strict = server.strict()
        assert strict.gaps == [] and strict.offline == [] and strict.refused == [], f"to {mode}: {strict}"
        (private,) = client(server).describe_route_tables(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-rtb-private-stg"]}])["RouteTables"]
        route = [r for r in private["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        assert (route[0]["State"] == "active") if mode != "none" else route == [], f"to {mode}: {route}"
        assert "no changes" in awsprac("plan", "--env", "stg").stdout
    assert awsprac("destroy", "--env", "stg", "--yes").returncode == 0
    assert server.strict().refused == []
