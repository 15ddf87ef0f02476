"""Crash anywhere, re-run converges.

`awsprac up` runs against a moto server through a proxy that SIGKILLs it right after the k-th
write AWS accepted (before awsprac sees the answer). Then a plain `up` runs. For every k, the
result must equal a clean run: same resources, no duplicate, no orphan, and a plan with nothing
to do.
"""

from __future__ import annotations

import os
import subprocess

import boto3
import pytest

from proxy import Proxy

pytestmark = pytest.mark.e2e

# Writes a clean `up` of the stg env makes; test_clean_run_write_count keeps it honest.
WRITES_IN_A_CLEAN_UP = 41  # 40, and the DB group's inbound rule from the NAT group (database.tunnel)


def inventory(endpoint: str) -> list[tuple[str, str]]:
    """Every non-default resource of the kinds awsprac builds, by kind and Name: duplicates show twice,
    and an untagged orphan shows with an empty name."""
    ec2 = boto3.client("ec2", region_name="ap-northeast-1", endpoint_url=endpoint)
    names = []
    for v in ec2.describe_vpcs()["Vpcs"]:
        if not v.get("IsDefault"):
            names.append(("vpc", _name(v)))
    for s in ec2.describe_subnets()["Subnets"]:
        if not s.get("DefaultForAz"):
            names.append(("subnet", _name(s)))
    for i in ec2.describe_internet_gateways()["InternetGateways"]:
        attached = [a["VpcId"] for a in i.get("Attachments", [])]
        names.append(("igw", _name(i) + f" attached={len(attached)}"))
    default_vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault")}
    for r in ec2.describe_instances()["Reservations"]:
        for i in r["Instances"]:
            if i["State"]["Name"] not in ("terminated", "shutting-down"):
                names.append(("instance", f"{_name(i)} {i['State']['Name']} source/dest check={i.get('SourceDestCheck')}"))
    for t in ec2.describe_route_tables()["RouteTables"]:
        if t["VpcId"] in default_vpcs:
            continue
        main = any(a.get("Main") for a in t.get("Associations", []))
        subnets = sum(1 for a in t.get("Associations", []) if a.get("SubnetId"))
        default = any(r.get("DestinationCidrBlock") == "0.0.0.0/0" for r in t.get("Routes", []))
        names.append(("route table", f"{_name(t)} main={main} subnets={subnets} default route={default}"))
    for kind, items in (("elastic IP", ec2.describe_addresses()["Addresses"]), ("NAT gateway", ec2.describe_nat_gateways()["NatGateways"])):
        names += [(kind, _name(x)) for x in items if x.get("State") not in ("deleted", "deleting")]
    ecr = boto3.client("ecr", region_name="ap-northeast-1", endpoint_url=endpoint)
    for repo in ecr.describe_repositories()["repositories"]:
        try:
            policy = bool(ecr.get_lifecycle_policy(repositoryName=repo["repositoryName"]))
        except ecr.exceptions.LifecyclePolicyNotFoundException:
            policy = False
        names.append(("ecr", f"{repo['repositoryName']} lifecycle={policy}"))
    for group in ec2.describe_security_groups()["SecurityGroups"]:
        if group["GroupName"] != "default":
            inbound = sorted(r.get("CidrIp") for p in group.get("IpPermissions", []) for r in p.get("IpRanges", []))
            names.append(("security group", f"{group['GroupName']} name={_name(group)} inbound={inbound}"))
    secrets = boto3.client("secretsmanager", region_name="ap-northeast-1", endpoint_url=endpoint)
    for secret in secrets.list_secrets(IncludePlannedDeletion=True)["SecretList"]:
        names.append(("secret", f"{secret['Name']} deleted={'DeletedDate' in secret}"))
    rds = boto3.client("rds", region_name="ap-northeast-1", endpoint_url=endpoint)
    names += [("db instance", d["DBInstanceIdentifier"]) for d in rds.describe_db_instances()["DBInstances"]]
    names += [("db subnet group", g["DBSubnetGroupName"]) for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]]
    names += [("db parameter group", g["DBParameterGroupName"]) for g in rds.describe_db_parameter_groups()["DBParameterGroups"] if not g["DBParameterGroupName"].startswith("default.")]
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=endpoint)
    for role in iam.list_roles()["Roles"]:
        if not role["Path"].startswith("/aws-service-role/"):
            policies = [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]]
            names.append(("iam role", f"{role['RoleName']} managed policies={policies}"))
    for profile in iam.list_instance_profiles()["InstanceProfiles"]:
        names.append(("instance profile", f"{profile['InstanceProfileName']} roles={[r['RoleName'] for r in profile['Roles']]}"))
    scheduler = boto3.client("scheduler", region_name="ap-northeast-1", endpoint_url=endpoint)
    for group in scheduler.list_schedule_groups()["ScheduleGroups"]:
        if group["Name"] != "default":
            names.append(("schedule group", group["Name"]))
    names += [("schedule", f"{s['GroupName']}/{s['Name']}") for s in scheduler.list_schedules()["Schedules"]]
    # SSM parameters: a run lock a killed run left behind (and not taken over by the re-run) shows here.
    ssm = boto3.client("ssm", region_name="ap-northeast-1", endpoint_url=endpoint)
    names += [("ssm parameter", p["Name"]) for p in ssm.describe_parameters()["Parameters"] if not p["Name"].startswith("/aws/")]
    return sorted(names)


def _name(item: dict) -> str:
    return next((t["Value"] for t in item.get("Tags", []) if t["Key"] == "Name"), "")


@pytest.fixture
def proxy(server):
    p = Proxy(server.endpoint).start()
    yield p
    p.stop()


def run_up(awsprac_exe, cwd, endpoint, proxy=None):
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "NO_COLOR": "1"}
    proc = subprocess.Popen([awsprac_exe, "up", "--env", "stg", "--yes"], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proxy is not None:
        proxy.victim_pid = proc.pid
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err


@pytest.fixture
def exe(awsprac):
    import shutil
    import sys
    from pathlib import Path

    return shutil.which("awsprac", path=str(Path(sys.executable).parent)) or shutil.which("awsprac")


@pytest.fixture(scope="session")
def clean_inventory():
    return {}


def clean(exe, awsprac, server, proxy, cache, inventory_of=inventory, before=lambda server: None):
    """A clean run's inventory and write count, made once per test process (`before`: what the env needs
    first, e.g. an image released)."""
    if "inventory" not in cache:
        before(server)
        code, out, err = run_up(exe, awsprac.cwd, proxy.endpoint)
        assert code == 0, err
        cache["inventory"] = inventory_of(server.endpoint)
        cache["writes"] = proxy.writes
        server.reset()
        proxy.reset_counts()
    return cache


def test_clean_run_write_count(exe, awsprac, server, proxy, clean_inventory):
    result = clean(exe, awsprac, server, proxy, clean_inventory)
    assert result["writes"] == WRITES_IN_A_CLEAN_UP, "update WRITES_IN_A_CLEAN_UP so every write is a crash point"


# Every third write and the last one: every step's creates are among them, and the suite stays quick.
# CRASH_EVERY=1 tries them all (each was tried when the steps were written).
CRASH_POINTS = sorted(set(range(1, WRITES_IN_A_CLEAN_UP + 1, int(os.environ.get("CRASH_EVERY", "3")))) | {WRITES_IN_A_CLEAN_UP})


@pytest.mark.parametrize("k", CRASH_POINTS)
def test_killed_after_write_k_then_rerun_equals_a_clean_run(k, exe, awsprac, server, proxy, clean_inventory):
    expected = clean(exe, awsprac, server, proxy, clean_inventory)["inventory"]
    killed_then_rerun(k, exe, awsprac.cwd, server, proxy, expected, inventory)


def killed_then_rerun(k, exe, cwd, server, proxy, expected, inventory_of) -> None:
    """`up` killed right after write k, then a plain `up`: the env equals a clean run's, nothing left to do."""
    proxy.kill_after_write = k
    code, out, err = run_up(exe, cwd, proxy.endpoint, proxy)
    assert proxy.killed and code == -9, f"the run was not killed at write {k}: {err}"
    # To reproduce a failure: CRASH_EVERY=1 and this k; the call below is the one whose answer was lost.
    where = f"killed right after {proxy.killed_after}"
    print(f"crash point k={k}: {where}")
    proxy.kill_after_write = None
    code, out, err = run_up(exe, cwd, server.endpoint)
    assert code == 0, f"{where}; the re-run failed: {err}"
    assert inventory_of(server.endpoint) == expected, where
    plan = subprocess.run([exe, "plan", "--env", "stg"], cwd=cwd, env={**os.environ, "AWS_ENDPOINT_URL": server.endpoint}, capture_output=True, text=True, timeout=120)
    assert "no changes, everything is in sync." in plan.stdout, f"{where}\n{plan.stdout}{plan.stderr}"
