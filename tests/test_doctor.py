"""`awsprac doctor` against in-process moto: a built env is healthy; each problem is found with its fix,
all duplicates are listed (not only the first), and doctor never writes. Routes' blackhole state, which
moto never reports, is injected into DescribeRouteTables' answer."""

import json

import boto3
import pytest

from awsprac.commands import cli, doctor
from conftest import ENVS, build

REGION = "ap-northeast-1"
OWNED = {"awsprac:project": "aws-practice", "awsprac:env": "stg"}
NET = ["vpc", "subnets", "igw", "public-routes", "nat-iam", "nat", "routes"]


@pytest.fixture(autouse=True)
def instant_waits(clock):
    pass


def ec2():
    return boto3.client("ec2", region_name=REGION)


def tag_spec(kind, name=None, owned=True):
    tags = {**({"Name": name} if name else {}), **(OWNED if owned else {})}
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def up(ctx, names=None):
    build(ctx, names)


def vpc(name="aws-practice-stg", owned=True, cidr="10.0.0.0/16"):
    return ec2().create_vpc(CidrBlock=cidr, TagSpecifications=tag_spec("vpc", name, owned))["Vpc"]["VpcId"]


def examine(make_ctx, hooks=(), config=None, **kw):
    ctx = make_ctx(config=config, hooks=hooks)
    ctx.identity = {"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/u"}
    return doctor.examine(ctx, **kw)


def by_check(findings):
    out = {}
    for f in findings:
        out.setdefault(f.check, []).append(f)
    return out


def test_a_whole_env_built_by_up_is_healthy_and_doctor_only_reads(make_ctx, calls):
    up(make_ctx())
    findings = examine(make_ctx, hooks=[("before-call.*.*", calls)])
    assert findings == []
    assert calls.writes == []
    assert "DescribeSecret" in calls.names and "DescribeNetworkInterfaces" in calls.names


def test_every_duplicate_is_listed_with_the_ids_to_delete(make_ctx):
    ours = vpc()
    theirs = vpc(owned=False, cidr="10.1.0.0/16")
    findings = by_check(examine(make_ctx))
    (dup,) = findings["duplicates"]
    assert dup.resource == "vpc aws-practice-stg"
    assert ours in dup.problem and theirs in dup.problem
    assert dup.fix == f"keep {ours} (owned by this env); delete or rename the other(s): aws ec2 delete-vpc --vpc-id {theirs} --region {REGION}"


def test_duplicates_of_several_kinds_inside_the_vpc_are_all_reported(make_ctx):
    vpc_id = vpc()
    for cidr in ("10.0.0.0/18", "10.0.64.0/18"):
        ec2().create_subnet(VpcId=vpc_id, CidrBlock=cidr, TagSpecifications=tag_spec("subnet", "public-subnet-1a-stg"))
    for _ in range(2):
        ec2().create_route_table(VpcId=vpc_id, TagSpecifications=tag_spec("route-table", "aws-practice-rtb-private-stg"))
    # the same names in another VPC are not duplicates: names are per VPC
    other = vpc("someone-else", owned=False, cidr="10.9.0.0/16")
    ec2().create_subnet(VpcId=other, CidrBlock="10.9.0.0/18", TagSpecifications=tag_spec("subnet", "public-subnet-1a-stg", owned=False))
    dups = by_check(examine(make_ctx))["duplicates"]
    assert sorted(d.resource for d in dups) == ["route table aws-practice-rtb-private-stg", "subnet public-subnet-1a-stg"]


def test_orphans_owned_but_unknown_to_every_step_and_final_snapshots_are_not_orphans(make_ctx):
    vpc_id = vpc()
    subnet = ec2().create_subnet(VpcId=vpc_id, CidrBlock="10.0.0.0/24", TagSpecifications=tag_spec("subnet", "public-subnet-old-stg"))["Subnet"]["SubnetId"]
    old_vpc = vpc("aws-practice-old-stg", cidr="10.5.0.0/16")
    sm = boto3.client("secretsmanager", region_name=REGION)
    sm.create_secret(Name="rds-old-stg", SecretString="{}", Tags=[{"Key": k, "Value": v} for k, v in OWNED.items()])
    sm.create_secret(Name="not-ours", SecretString="{}")
    rds = boto3.client("rds", region_name=REGION)
    owned = [{"Key": k, "Value": v} for k, v in OWNED.items()]
    for name in ("aws-practice-stg", "aws-practice-old-stg"):
        rds.create_db_instance(DBInstanceIdentifier=name, DBInstanceClass="db.t4g.micro", Engine="postgres",
                               MasterUsername="postgres", MasterUserPassword="x" * 16, AllocatedStorage=20, Tags=owned)
    # a final snapshot carries the env's tags by design: kept, not an orphan
    rds.create_db_snapshot(DBInstanceIdentifier="aws-practice-stg", DBSnapshotIdentifier="aws-practice-stg-final", Tags=owned)
    orphans = by_check(examine(make_ctx))["orphans"]
    assert sorted(o.resource for o in orphans) == [
        "DB instance aws-practice-old-stg", "secret rds-old-stg",
        f"subnet public-subnet-old-stg ({subnet})", f"vpc aws-practice-old-stg ({old_vpc})",
    ]
    fixes = {o.resource: o.fix for o in orphans}
    assert fixes[f"subnet public-subnet-old-stg ({subnet})"] == f"aws ec2 delete-subnet --subnet-id {subnet} --region {REGION} (if nothing uses it)"
    assert fixes["secret rds-old-stg"].startswith(f"aws secretsmanager delete-secret --secret-id rds-old-stg --recovery-window-in-days 7 --region {REGION}")


def test_an_iam_role_owned_but_unknown_to_every_step_is_an_orphan(make_ctx):
    """Roles are judged from the one batched IAM read the steps make; another env's role, and a role
    the env file describes, are not orphans."""
    iam = boto3.client("iam", region_name=REGION)
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    for name, env in (("aws-practice-old-stg", "stg"), ("aws-practice-old-prd", "prd"), ("aws-practice-nat-stg", "stg")):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust, Tags=[{"Key": "awsprac:project", "Value": "aws-practice"}, {"Key": "awsprac:env", "Value": env}])
    orphans = [o for o in by_check(examine(make_ctx)).get("orphans", []) if o.resource.startswith("IAM role")]
    assert [o.resource for o in orphans] == ["IAM role aws-practice-old-stg"]
    assert orphans[0].fix.startswith("aws iam delete-role --role-name aws-practice-old-stg")


def test_an_owned_resource_with_a_known_name_in_another_vpc_is_an_orphan(make_ctx):
    vpc()
    old = vpc("aws-practice-older-stg", cidr="10.6.0.0/16")
    sg = ec2().create_security_group(VpcId=old, GroupName="x", Description="x", TagSpecifications=tag_spec("security-group", "aws-practice-nat-stg"))["GroupId"]
    orphans = by_check(examine(make_ctx))["orphans"]
    (found,) = [o for o in orphans if sg in o.resource]
    assert f"in another VPC ({old})" in found.problem
    assert f"aws ec2 delete-security-group --group-id {sg}" in found.fix


def test_foreign_instances_and_interfaces_in_the_vpc_block_destroy(make_ctx):
    vpc_id = vpc()
    subnet = ec2().create_subnet(VpcId=vpc_id, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    instance = ec2().run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0]["InstanceId"]
    eni = ec2().create_network_interface(SubnetId=subnet, Description="left by hand")["NetworkInterface"]["NetworkInterfaceId"]
    foreign = by_check(examine(make_ctx))["foreign in VPC"]
    assert [f.resource for f in foreign] == [f"instance {instance}", f"network interface {eni}"]
    assert foreign[0].fix.endswith(f"aws ec2 terminate-instances --instance-ids {instance} --region {REGION} (if you do not need it)")
    assert foreign[1].fix == f"aws ec2 delete-network-interface --network-interface-id {eni} --region {REGION}"


def blackhole(http_response, parsed, model, **kwargs):
    if model.name == "DescribeRouteTables":
        for table in parsed.get("RouteTables", []):
            for route in table.get("Routes", []):
                if route.get("DestinationCidrBlock") == "0.0.0.0/0" and route.get("NetworkInterfaceId"):
                    route["State"] = "blackhole"


def test_blackhole_private_route_and_nat_source_dest_check_and_secret_pending_deletion(make_ctx):
    up(make_ctx(), NET)
    nat = ec2().describe_instances(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-nat-1a-stg"]}])["Reservations"][0]["Instances"][0]
    ec2().modify_instance_attribute(InstanceId=nat["InstanceId"], SourceDestCheck={"Value": True})
    sm = boto3.client("secretsmanager", region_name=REGION)
    sm.create_secret(Name="rds-main-stg", SecretString="{}", Tags=[{"Key": k, "Value": v} for k, v in OWNED.items()])
    sm.delete_secret(SecretId="rds-main-stg", RecoveryWindowInDays=7)

    found = by_check(examine(make_ctx, hooks=[("after-call.ec2.DescribeRouteTables", blackhole)]))
    assert sorted(found) == ["NAT source/dest check", "blackhole route", "secret pending deletion"]
    (hole,) = found["blackhole route"]
    assert hole.resource.startswith("route table aws-practice-rtb-private-stg")
    assert "0.0.0.0/0 -> eni-" in hole.problem and "awsprac up --env stg" in hole.fix
    (check,) = found["NAT source/dest check"]
    assert check.fix.endswith(f"aws ec2 modify-instance-attribute --instance-id {nat['InstanceId']} --no-source-dest-check --region {REGION}")
    (secret,) = found["secret pending deletion"]
    assert secret.fix.endswith(f"aws secretsmanager restore-secret --secret-id rds-main-stg --region {REGION}")


def test_another_account_than_the_pin_is_the_only_finding(make_ctx):
    vpc()
    vpc(owned=False, cidr="10.1.0.0/16")  # a duplicate, in an account doctor must not look at
    findings = examine(make_ctx, pinned_account="999999999999")
    assert [f.check for f in findings] == ["account"]
    assert "account 123456789012 is not the account 999999999999" in findings[0].problem
    assert "--profile aws-practice-terraform-stg" in findings[0].fix


def test_cli_exit_codes_and_json(mocked, capsys, tmp_path):
    def run(*args):
        try:
            cli.main(["doctor", "--env", "stg", "--envs-dir", str(ENVS), *args])
            code = 0
        except SystemExit as exit:
            code = exit.code
        return code, capsys.readouterr()

    code, out = run()
    assert code == 0 and "healthy, 10 checks found nothing wrong" in out.out
    vpc()
    vpc(owned=False, cidr="10.1.0.0/16")
    code, out = run("--json")
    assert code == 1
    report = json.loads(out.out)
    assert report["healthy"] is False and [f["check"] for f in report["findings"]] == ["duplicates"]
    code, out = run()
    assert code == 1 and "✗ [duplicates] vpc aws-practice-stg" in out.out and "fix: keep vpc-" in out.out


def pinned_envs(tmp_path, account):
    import shutil

    envs = tmp_path / "envs"
    shutil.copytree(ENVS, envs)
    stg = envs / "stg.toml"
    stg.write_text(stg.read_text().replace('account_id = ""', f'account_id = "{account}"', 1))
    return envs


def test_cli_credentials_of_another_account_exit_1_and_nothing_else_is_read(mocked, capsys, tmp_path, monkeypatch, calls):
    from awsprac.engine import aws

    vpc()
    vpc(owned=False, cidr="10.1.0.0/16")  # a duplicate doctor must not look at: wrong account
    real_make = aws.make

    def make(*args, **kwargs):
        clients, warning = real_make(*args, **kwargs)
        clients.register("before-call.*.*", calls)
        return clients, warning

    monkeypatch.setattr(aws, "make", make)
    try:
        cli.main(["doctor", "--env", "stg", "--envs-dir", str(pinned_envs(tmp_path, "999999999999"))])
        code = 0
    except SystemExit as exit:
        code = exit.code
    out = capsys.readouterr().out
    assert code == 1
    assert "1 problem(s)" in out and "✗ [account] credentials arn:aws:" in out
    assert "account 123456789012 is not the account 999999999999" in out
    assert calls.names == ["GetCallerIdentity"]


def test_sandbox_with_a_pinned_account_is_healthy(tmp_path):
    """--sandbox runs as the env's pinned account: doctor must not call that a mismatch."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    exe = shutil.which("awsprac", path=str(Path(sys.executable).parent))
    envs = pinned_envs(tmp_path, "210987654321")
    done = subprocess.run([exe, "doctor", "--env", "stg", "--sandbox", "--envs-dir", str(envs)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "account 210987654321" in done.stdout and "healthy, 10 checks found nothing wrong" in done.stdout


def test_interfaces_aws_manages_for_a_resource_are_not_foreign_whatever_their_description(make_ctx):
    """AWS's own interfaces (RDS, ALB: type `interface`, requester-managed; an endpoint: its own type) are
    told apart by requester and type, not by tags or description; one made by hand still is foreign."""
    vpc_id = vpc()
    subnet = ec2().create_subnet(VpcId=vpc_id, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    by_hand = ec2().create_network_interface(SubnetId=subnet, Description="RDSNetworkInterface")["NetworkInterface"]["NetworkInterfaceId"]

    def aws_made(parsed, model, **kwargs):
        if model.name == "DescribeNetworkInterfaces":
            parsed["NetworkInterfaces"] += [
                {"NetworkInterfaceId": "eni-0rds", "InterfaceType": "interface", "RequesterManaged": True, "RequesterId": "amazon-rds", "Description": "", "Status": "in-use"},
                {"NetworkInterfaceId": "eni-0alb", "InterfaceType": "interface", "RequesterManaged": True, "RequesterId": "amazon-elb", "Description": "ELB app/x/1", "Status": "in-use"},
                {"NetworkInterfaceId": "eni-0vpce", "InterfaceType": "vpc_endpoint", "RequesterManaged": False, "Description": "", "Status": "in-use"},
            ]

    foreign = by_check(examine(make_ctx, hooks=[("after-call.ec2.DescribeNetworkInterfaces", aws_made)]))["foreign in VPC"]
    assert [f.resource for f in foreign] == [f"network interface {by_hand}"]


def test_after_a_nat_mode_switch_in_the_sandbox_emulation_nothing_is_foreign(make_ctx, cfg):
    """The sandbox's moto, made faithful: a NAT gateway's interface is AWS's (type nat_gateway) and goes with it."""
    import dataclasses

    gateway = dataclasses.replace(cfg, nat=dataclasses.replace(cfg.nat, mode="gateway"))
    up(make_ctx(config=gateway), ["vpc", "subnets", "igw", "public-routes", "nat", "routes", "nat-leftovers"])
    assert "foreign in VPC" not in by_check(examine(make_ctx, config=gateway))
    (eni,) = ec2().describe_network_interfaces()["NetworkInterfaces"]
    assert (eni["InterfaceType"], eni["RequesterManaged"]) == ("nat_gateway", True)
    none = dataclasses.replace(cfg, nat=dataclasses.replace(cfg.nat, mode="none"))
    up(make_ctx(config=none), ["vpc", "subnets", "igw", "public-routes", "nat", "routes", "nat-leftovers"])
    assert ec2().describe_network_interfaces()["NetworkInterfaces"] == []  # gone with its gateway, as on AWS
    assert "foreign in VPC" not in by_check(examine(make_ctx, config=none))
