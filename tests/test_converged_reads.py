"""A converged look reads each kind once (issue 7), and the fallbacks that keep the cheaper reads right."""

from collections import Counter

import boto3
import pytest

from awsprac.engine import runner
from awsprac.engine.plan import Action
from awsprac.steps.nat import launch_image as nat
from conftest import build

ACCOUNT = "123456789012"
REGION = "ap-northeast-1"

# Everything a look at a converged stg env asks AWS (the account guard's GetCallerIdentity aside).
CONVERGED_READS = Counter({
    "GetAccountAuthorizationDetails": 1,  # both IAM roles, their policies and the NAT's instance profile
    "DescribeVpcs": 1, "DescribeVpcAttribute": 2, "DescribeSubnets": 1, "DescribeInternetGateways": 1,
    "DescribeSecurityGroups": 1,  # the NAT's and the database's groups together
    "DescribeInstances": 1, "DescribeTags": 1, "DescribeRouteTables": 1,
    "ListSecrets": 1, "GetSecretValue": 1,
    "DescribeDBInstances": 1,  # with its subnet and parameter groups
    "DescribeRepositories": 1, "GetLifecyclePolicy": 1,
    "ListTagsForResource": 1,  # the ECR repository's (the schedule group's: known from its schedules)
    "GetSchedule": 2,
})


def look(make_ctx, calls, hooks=(), steps=None):
    ctx = make_ctx(hooks=[("before-call.*.*", calls), *hooks])
    ctx.identity = {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/test"}  # what the account guard leaves
    return ctx, runner.plan(ctx, runner.resolve(steps))


def client(service):
    return boto3.client(service, region_name=REGION)


def test_a_converged_look_reads_each_kind_once(ctx, make_ctx, calls):
    build(ctx)
    _, planned = look(make_ctx, calls)
    assert planned.changes == []
    assert Counter(calls.names) == CONVERGED_READS


def test_the_instance_profile_is_asked_for_when_the_role_listing_leaves_out_its_tags(ctx, make_ctx, calls):
    build(ctx)

    def without_profile_tags(parsed, **kwargs):
        for role in parsed.get("RoleDetailList", []):
            for profile in role.get("InstanceProfileList", []):
                profile.pop("Tags", None)

    _, planned = look(make_ctx, calls, hooks=[("after-call.iam.GetAccountAuthorizationDetails", without_profile_tags)])
    assert planned.changes == []  # the tags read on their own: still this env's, nothing to adopt
    assert calls.names.count("GetInstanceProfile") == 1


def test_a_profile_left_without_its_role_is_found_and_given_the_role(ctx, make_ctx, calls):
    """A run stopped between CreateInstanceProfile and AddRoleToInstanceProfile: the role's listing
    does not show the profile, so it is asked for by name."""
    build(ctx, ["nat-iam"])
    name = "aws-practice-nat-stg"
    client("iam").remove_role_from_instance_profile(InstanceProfileName=name, RoleName=name)
    again, planned = look(make_ctx, calls, steps=["nat-iam"])
    (change,) = planned.changes
    assert (change.action, change.kind, [str(f) for f in change.fields]) == (Action.UPDATE, "instance profile", [f"role: (none) -> {name}"])
    runner.apply(again, runner.resolve(["nat-iam"]), planned)
    assert client("iam").get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"][0]["RoleName"] == name


def test_a_missing_schedule_makes_the_group_be_read_and_the_schedule_made_again(ctx, make_ctx, calls):
    build(ctx)
    client("scheduler").delete_schedule(Name="aws-practice-db-stop-stg", GroupName="aws-practice-stg")
    again, planned = look(make_ctx, calls)
    (change,) = planned.changes
    assert (change.action, change.kind, change.name) == (Action.CREATE, "schedule", "aws-practice-db-stop-stg")
    assert calls.names.count("GetScheduleGroup") == 1
    assert runner.apply(again, runner.resolve(None), planned).ok


def test_destroy_reads_the_db_groups_tags_and_leaves_an_untagged_one_alone(ctx, make_ctx):
    """A converged look knows the DB's groups from the instance; before deleting one, destroy reads
    whose it is."""
    build(ctx)
    rds = client("rds")
    arn = rds.describe_db_subnet_groups(DBSubnetGroupName="aws-practice-db-subnet-group-stg")["DBSubnetGroups"][0]["DBSubnetGroupArn"]
    rds.remove_tags_from_resource(ResourceName=arn, TagKeys=["awsprac:project", "awsprac:env"])
    again = make_ctx()
    planned = runner.teardown_plan(again, runner.resolve(None))
    (group,) = [c for c in planned.changes if c.kind == "DB subnet group"]
    assert group.action is Action.REPORT and "left alone" in group.note
    (parameters,) = [c for c in planned.changes if c.kind == "DB parameter group"]
    assert parameters.action is Action.DELETE


def test_a_rule_someone_added_to_the_nat_group_is_read_with_its_id(ctx, make_ctx, calls):
    """The group's description lists its rules without ids: only when one is extra are the rules read
    one by one, so `--prune` can revoke it by id."""
    build(ctx)
    ec2 = client("ec2")
    group = ec2.describe_security_groups(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-nat-stg"]}])["SecurityGroups"][0]
    ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}])
    _, planned = look(make_ctx, calls)
    (report,) = planned.changes
    assert report.action is Action.REPORT and "--prune" in report.note
    assert str(report.fields[0]).startswith("inbound: tcp 22 from 203.0.113.7/32 (sgr-")
    assert calls.names.count("DescribeSecurityGroupRules") == 1


@pytest.mark.parametrize("instance_type, arch", [
    ("t3.micro", "x86_64"), ("t2.micro", "x86_64"), ("t4g.nano", "arm64"), ("c7gn.large", "arm64"), ("m6gd.xlarge", "arm64"),
    ("im4gn.large", "arm64"), ("a1.medium", "arm64"), ("g4dn.xlarge", "x86_64"), ("g5g.xlarge", "arm64"), ("m7i-flex.large", "x86_64"),
])
def test_the_nat_image_architecture_follows_the_instance_type(instance_type, arch):
    assert nat.architecture(instance_type) == arch


@pytest.mark.parametrize("refusal", ["not found", "invalid"])
def test_a_missing_db_group_whose_tags_aws_refuses_to_list_is_planned(make_ctx, calls, refusal):
    """The groups' tags are read at once with the groups, by a guessed ARN: whatever AWS answers for a
    missing group's ARN (its not-found error, or a refusal of the ARN), the describe decides: to be made."""
    from conftest import aws_error

    def not_found(params, **kwargs):
        if refusal == "invalid":
            return aws_error("InvalidParameterValue", "Invalid resource name")
        code = "DBSubnetGroupNotFoundFault" if ":subgrp:" in params["body"]["ResourceName"] else "DBParameterGroupNotFound"
        return aws_error(code, status=404)

    _, planned = look(make_ctx, calls, hooks=[("before-call.rds.ListTagsForResource", not_found)], steps=["rds"])
    made = {(c.action, c.kind) for c in planned.changes}
    assert {(Action.CREATE, "DB subnet group"), (Action.CREATE, "DB parameter group")} <= made
    assert calls.names.count("ListTagsForResource") == 2


@pytest.mark.parametrize("held, until, step", [
    ("GetAccountAuthorizationDetails", "DescribeInstances", "nat"),  # nat's look does not wait for nat-iam's
    ("ListSecrets", "DescribeDBInstances", "rds"),  # rds's look does not wait for secrets'
])
def test_a_look_waits_only_for_what_observe_reads(ctx, make_ctx, held, until, step):
    """A step's look starts once the looks it reads are done (OBSERVES_AFTER), not all its prerequisites:
    one read is held until the other step's read has gone out; were the looks in series, it never would."""
    import threading

    build(ctx)
    seen = threading.Event()
    timed_out = []

    def hold(model, **kwargs):
        if model.name == until:
            seen.set()
        elif model.name == held and not seen.wait(timeout=60):  # long only when it fails
            timed_out.append(held)

    planned = runner.plan(make_ctx(hooks=[("before-call.*.*", hold)]), runner.resolve(None))
    assert planned.changes == [] and timed_out == [], f"{step}'s look waited for {held}"


def test_a_role_the_account_listing_does_not_show_yet_is_asked_for_by_name(ctx, make_ctx, calls):
    """IAM is eventually consistent: the look that checks a run's work may come before the batched read
    lists a role just made. Such a role is read by name, with its policies, and nothing is planned."""
    build(ctx)

    def not_listed_yet(parsed, **kwargs):
        parsed["RoleDetailList"] = []

    _, planned = look(make_ctx, calls, hooks=[("after-call.iam.GetAccountAuthorizationDetails", not_listed_yet)])
    assert planned.changes == []
    assert calls.names.count("GetRole") == 2  # the NAT's role and the scheduler's
    assert calls.names.count("GetRolePolicy") == 1  # the scheduler's start-stop policy, compared as before


def test_roles_listed_without_their_tags_have_them_read_by_name(ctx, make_ctx, calls):
    """Were the batched read to leave a role's tags out, the role would look like someone else's and be
    adopted on every run: its tags are then read by name, and a converged env stays converged."""
    build(ctx)

    def without_role_tags(parsed, **kwargs):
        for role in parsed.get("RoleDetailList", []):
            role.pop("Tags", None)

    _, planned = look(make_ctx, calls, hooks=[("after-call.iam.GetAccountAuthorizationDetails", without_role_tags)])
    assert planned.changes == []
    assert calls.names.count("GetRole") == 2


def test_a_drifted_subnet_group_known_from_the_instance_is_read_on_its_own_before_the_fix(ctx, make_ctx, calls):
    """The instance's description names its subnet group without the group's ARN (AWS leaves it out):
    fixing the group's drift reads the group first, instead of failing on the missing ARN."""
    build(ctx)
    looks = []

    def as_aws_describes_it(parsed, **kwargs):
        looks.append(1)
        for db in parsed.get("DBInstances", []):
            group = db.get("DBSubnetGroup") or {}
            group.pop("DBSubnetGroupArn", None)
            if len(looks) == 1:  # the plan's look sees a description edited by hand
                group["DBSubnetGroupDescription"] = "edited by hand"

    again, planned = look(make_ctx, calls, hooks=[("after-call.rds.DescribeDBInstances", as_aws_describes_it)], steps=["rds"])
    (change,) = planned.changes
    assert (change.action, change.kind, [str(f) for f in change.fields]) == (
        Action.UPDATE, "DB subnet group", ["description: edited by hand -> Managed by Terraform"])
    calls.names.clear()
    assert runner.apply(again, runner.resolve(["rds"]), planned).ok
    assert "DescribeDBSubnetGroups" in calls.names
