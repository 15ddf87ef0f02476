"""End to end: the installed `awsprac`, in a subprocess, against a moto server on 127.0.0.1."""

import json
from collections import Counter

import boto3
import pytest

from awsprac.steps import ORDER
from conftest import STG_RESOURCE_COUNT, is_write, readline_within

N = STG_RESOURCE_COUNT

pytestmark = pytest.mark.e2e


def client(server, service="ec2"):
    return boto3.client(service, region_name="ap-northeast-1", endpoint_url=server.endpoint)


def owned(server) -> list[tuple[str, str]]:
    """Every resource tagged as env stg's that an `up` builds (all STG_RESOURCE_COUNT of them), by kind and name; a secret
    scheduled for deletion and the final DB snapshot (kept on purpose) are not counted."""
    ec2, iam = client(server), client(server, "iam")
    rds, ecr = client(server, "rds"), client(server, "ecr")
    scheduler, secrets = client(server, "scheduler"), client(server, "secretsmanager")
    ours = [{"Name": "tag:awsprac:env", "Values": ["stg"]}]
    name = lambda tag_list: next((t["Value"] for t in tag_list or [] if t["Key"] == "Name"), "")  # noqa: E731
    found = [("vpc", name(v["Tags"])) for v in ec2.describe_vpcs(Filters=ours)["Vpcs"]]
    found += [("subnet", name(x["Tags"])) for x in ec2.describe_subnets(Filters=ours)["Subnets"]]
    found += [("internet gateway", name(x["Tags"])) for x in ec2.describe_internet_gateways(Filters=ours)["InternetGateways"]]
    groups = ec2.describe_security_groups(Filters=ours)["SecurityGroups"]
    found += [("security group", x["GroupName"]) for x in groups]
    group_names = {x["GroupId"]: x["GroupName"] for x in groups}
    # A rule letting one of the env's groups into another (the DB's from the NAT's): a resource of its own.
    found += [("security group rule", f"{x['GroupName']} from {group_names[pair['GroupId']]}") for x in groups
              for rule in x["IpPermissions"] for pair in rule.get("UserIdGroupPairs", []) if pair["GroupId"] in group_names]
    found += [("route table", name(x["Tags"])) for x in ec2.describe_route_tables(Filters=ours)["RouteTables"]]
    found += [("instance", name(i["Tags"])) for r in ec2.describe_instances(Filters=ours)["Reservations"] for i in r["Instances"]
              if i["State"]["Name"] not in ("terminated", "shutting-down")]
    is_ours = lambda tag_list: {"Key": "awsprac:env", "Value": "stg"} in (tag_list or [])  # noqa: E731
    found += [("IAM role", r["RoleName"]) for r in iam.list_roles()["Roles"] if is_ours(iam.list_role_tags(RoleName=r["RoleName"])["Tags"])]
    found += [("instance profile", p["InstanceProfileName"]) for p in iam.list_instance_profiles()["InstanceProfiles"]
              if is_ours(iam.get_instance_profile(InstanceProfileName=p["InstanceProfileName"])["InstanceProfile"].get("Tags"))]
    found += [("secret", x["Name"]) for x in secrets.list_secrets()["SecretList"] if is_ours(x.get("Tags")) and "DeletedDate" not in x]
    for kind, items, arn, key in (
        ("DB instance", rds.describe_db_instances()["DBInstances"], "DBInstanceArn", "DBInstanceIdentifier"),
        ("DB subnet group", rds.describe_db_subnet_groups()["DBSubnetGroups"], "DBSubnetGroupArn", "DBSubnetGroupName"),
        ("DB parameter group", rds.describe_db_parameter_groups()["DBParameterGroups"], "DBParameterGroupArn", "DBParameterGroupName"),
    ):
        found += [(kind, x[key]) for x in items if is_ours(rds.list_tags_for_resource(ResourceName=x[arn])["TagList"])]
    for repo in ecr.describe_repositories()["repositories"]:
        if is_ours(ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]):
            found.append(("ECR repository", repo["repositoryName"]))
            try:
                ecr.get_lifecycle_policy(repositoryName=repo["repositoryName"])
                found.append(("lifecycle policy", repo["repositoryName"]))
            except ecr.exceptions.LifecyclePolicyNotFoundException:
                pass
    for group in scheduler.list_schedule_groups()["ScheduleGroups"]:
        if group["Name"] != "default" and is_ours(scheduler.list_tags_for_resource(ResourceArn=group["Arn"])["Tags"]):
            found.append(("schedule group", group["Name"]))
            found += [("schedule", x["Name"]) for x in scheduler.list_schedules(GroupName=group["Name"])["Schedules"]]
    return sorted(found)


def test_up_again_is_a_no_op_and_destroy_leaves_only_foreign_things(awsprac, server):
    first = awsprac("up", "--env", "stg", "--yes")
    assert first.returncode == 0, first.stderr
    assert f"Plan: {N} to create, 0 to update, 0 to delete." in first.stdout
    built = owned(server)
    assert len(built) == N, built

    server.start_recording()
    second = awsprac("up", "--env", "stg", "--yes")
    actions = server.recorded_actions()
    assert second.returncode == 0, second.stderr
    assert "no changes, everything is in sync." in second.stdout
    assert actions, "the recorder saw nothing: the run did not reach the server"
    assert [a for a in actions if is_write(a)] == []
    # Each kind read once, batched (issue 7: at most 20 calls; 19 since the schedule group is known from
    # its schedules): only the VPC's two DNS attributes take a call each.
    assert len(actions) <= 19, actions
    assert [a for a, n in Counter(actions).items() if n > 1] == ["DescribeVpcAttribute"], actions

    status = awsprac("status", "--env", "stg", "--json")
    assert {row["sync"] for row in json.loads(status.stdout)["resources"]} == {"in sync"}
    outputs = json.loads(awsprac("outputs", "--env", "stg", "--json").stdout)["outputs"]
    ec2 = client(server)
    assert ec2.describe_vpcs(VpcIds=[outputs["vpc_id"]])["Vpcs"][0]["Tags"]

    declined = awsprac("destroy", "--env", "stg", input="no\n")
    assert declined.returncode == 1 and owned(server) == built

    # Someone else's: a VPC with this env's Name but not its tags, and a person's own subnet in our VPC
    # (in a CIDR block they added to it).
    tag = lambda kind, name: [{"ResourceType": kind, "Tags": [{"Key": "Name", "Value": name}]}]  # noqa: E731
    foreign = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=tag("vpc", "aws-practice-stg"))["Vpc"]["VpcId"]
    server.start_recording()
    refused = awsprac("destroy", "--env", "stg", "--yes")
    assert refused.returncode == 1 and [a for a in server.recorded_actions() if is_write(a)] == []
    assert refused.stderr.startswith("error: 2 vpcs are named 'aws-practice-stg' (") and foreign in refused.stderr
    assert owned(server) == built, "two VPCs with one Name: destroy does not guess, it deletes nothing"

    ec2.create_tags(Resources=[foreign], Tags=[{"Key": "Name", "Value": "aws-practice-stg-hand-made"}])  # as the error says
    ec2.associate_vpc_cidr_block(VpcId=outputs["vpc_id"], CidrBlock="10.1.0.0/16")
    theirs = ec2.create_subnet(VpcId=outputs["vpc_id"], CidrBlock="10.1.0.0/24", TagSpecifications=tag("subnet", "someones-own"))["Subnet"]["SubnetId"]
    server.start_recording()
    gone = awsprac("destroy", "--env", "stg", "--yes")
    actions = server.recorded_actions()
    assert gone.returncode == 0, gone.stderr
    assert "DeleteVpc" not in actions and "DeleteSubnet" in actions
    assert f"someones-own {theirs}" in " ".join(gone.stdout.split()), gone.stdout
    assert owned(server) == [("vpc", "aws-practice-stg")], "all of the env is deleted but the VPC that holds their subnet"
    assert ec2.describe_subnets(SubnetIds=[theirs])["Subnets"] and ec2.describe_vpcs(VpcIds=[foreign])["Vpcs"]

    ec2.delete_subnet(SubnetId=theirs)
    again = awsprac("destroy", "--env", "stg", "--yes")
    assert again.returncode == 0, again.stderr
    assert owned(server) == [] and ec2.describe_vpcs(VpcIds=[foreign])["Vpcs"]
    last = awsprac("destroy", "--env", "stg", "--yes")
    assert last.returncode == 0 and "nothing owned by env stg is left to delete" in last.stderr


def test_plan_and_a_declined_up_send_no_write(awsprac, server):
    server.start_recording()
    plan = awsprac("plan", "--env", "stg")
    declined = awsprac("up", "--env", "stg", input="n\n")
    actions = server.recorded_actions()
    assert plan.returncode == 0 and f"Plan: {N} to create" in plan.stdout
    assert declined.returncode == 1
    assert [a for a in actions if is_write(a)] == []


def test_bad_input_sends_nothing_at_all(awsprac, server):
    (awsprac.cwd / "envs" / "stg.toml").write_text('[network]\nazs = ["ap-northeast-1a", "eu-west-1a"]\n')
    server.start_recording()
    results = [
        awsprac("up", "--env", "stg", "--yes"),
        awsprac("up", "--env", "nope", "--yes"),
        awsprac("step", "nat-gw", "--env", "stg", "--yes"),
    ]
    assert server.recorded_actions() == []
    for result in results:
        assert result.returncode == 2
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_step_by_step_in_dependency_order(awsprac, server):
    early = awsprac("step", "subnets", "--env", "stg", "--yes")
    assert early.returncode == 2
    assert early.stderr == "error: step subnets needs step vpc, which is not built yet: run `awsprac step vpc --env stg` first (or `awsprac up --env stg`)\n"
    for name in ORDER:  # every step, in the order docs/reference.md lists them
        result = awsprac("step", name, "--env", "stg", "--yes")
        assert result.returncode == 0, result.stderr
    assert len(owned(server)) == N
    assert "no changes" in awsprac("plan", "--env", "stg").stdout


def test_sandbox_flag_builds_and_shows_it(awsprac, server):
    result = awsprac("up", "--env", "stg", "--sandbox")
    assert result.returncode == 0, result.stderr
    assert "SANDBOX" in result.stderr
    assert "Built in the sandbox" in result.stdout and result.stdout.count("in sync") == N
    assert owned(server) == [], "--sandbox must not touch the AWS_ENDPOINT_URL it was given"


def test_sandbox_command_serves_other_terminals(awsprac, tmp_path):
    import os
    import shutil
    import signal
    import subprocess
    import sys
    from pathlib import Path

    exe = shutil.which("awsprac", path=str(Path(sys.executable).parent)) or shutil.which("awsprac")
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    box_err = tmp_path / "sandbox.err"
    with open(box_err, "w") as err:  # a file, not a pipe nobody reads while the sandbox runs
        box = subprocess.Popen([exe, "sandbox"], stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        endpoint = readline_within(box.stdout, 60, "awsprac sandbox printing its endpoint").strip()
        assert endpoint.startswith("http://127.0.0.1:")
        env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
        built = subprocess.run([exe, "up", "--env", "stg", "--yes"], cwd=awsprac.cwd, env=env, capture_output=True, text=True, timeout=120)
        assert built.returncode == 0, built.stderr
        vpcs = boto3.client("ec2", region_name="ap-northeast-1", endpoint_url=endpoint).describe_vpcs(
            Filters=[{"Name": "tag:Name", "Values": ["aws-practice-stg"]}]
        )["Vpcs"]
        assert len(vpcs) == 1
    finally:
        box.send_signal(signal.SIGINT)
        box.wait(timeout=30)
    assert f"export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_ENDPOINT_URL={endpoint}" in box_err.read_text()


def test_a_second_run_is_refused_while_the_first_holds_the_lease(awsprac, server):
    """Deterministic: the first run is paused (by its proxy) right after its first write, the lease; a
    second run meanwhile must be refused with who holds it; released, the first builds the env alone."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from proxy import Proxy

    exe = shutil.which("awsprac", path=str(Path(sys.executable).parent)) or shutil.which("awsprac")
    paused = Proxy(server.endpoint).start()
    paused.hold_after_write = 1
    logs = awsprac.cwd / "first.out", awsprac.cwd / "first.err"
    try:
        with open(logs[0], "w") as out, open(logs[1], "w") as err:
            first = subprocess.Popen([exe, "up", "--env", "stg", "--yes"], cwd=awsprac.cwd, stdout=out, stderr=err,
                                     env={**os.environ, "AWS_ENDPOINT_URL": paused.endpoint})
        try:
            assert paused.holding.wait(timeout=120), f"the first run never got past its first write: {logs[1].read_text()}"
            assert [a for a in paused.actions if is_write(a)] == ["AmazonSSM.PutParameter"], paused.actions
            second = awsprac("up", "--env", "stg", "--yes")
            assert second.returncode == 1, second.stderr
            assert second.stderr.startswith("error: env stg is locked by another awsprac run (up on "), second.stderr
            assert ", expires " in second.stderr and second.stderr.count("\n") == 1
            assert owned(server) == [], "the refused run built nothing"
        finally:
            paused.release()
            code = first.wait(timeout=180)
    finally:
        paused.stop()
    assert code == 0, logs[1].read_text()
    vpcs = client(server).describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-stg"]}])["Vpcs"]
    assert len(vpcs) == 1 and len(owned(server)) == N
