"""Steps nat-iam and nat against in-process moto: what is built and sent, convergence, drift, the IAM
propagation retry with one client token, mode switches, teardown. AWS behaviour moto lacks is injected."""

import base64
import dataclasses
import json

import boto3
import botocore.awsrequest
import pytest

from awsprac.engine import runner, tags
from awsprac.engine.errors import AmbiguousResource, UsageError
from awsprac.engine.plan import Action

from conftest import FailFirst, build

REGION = "ap-northeast-1"
OWNED = {"awsprac:project": "aws-practice", "awsprac:env": "stg"}
# docs/reference.md sections 2-4: these steps and their prerequisites (the database's steps have their own tests).
STEPS = ["vpc", "subnets", "igw", "public-routes", "nat-iam", "nat", "routes", "nat-leftovers"]
NAT = "aws-practice-nat-1a-stg"
SG_NAME = "aws-practice-nat-stg"
ROLE = "aws-practice-nat-stg"
AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
PROFILE_NOT_VISIBLE = "Value (aws-practice-nat-stg) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"


def ec2():
    return boto3.client("ec2", region_name=REGION)


def iam():
    return boto3.client("iam", region_name=REGION)


def up(ctx, names=None):
    return build(ctx, names or STEPS)


def plan(make_ctx, names=None, **kw):
    return runner.plan(make_ctx(**kw), runner.resolve(names or STEPS)).changes


def with_nat(cfg, **nat):
    return dataclasses.replace(cfg, nat=dataclasses.replace(cfg.nat, **nat))


def live_instances(name=NAT):
    reply = ec2().describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])
    return [i for r in reply["Reservations"] for i in r["Instances"] if i["State"]["Name"] not in ("terminated", "shutting-down")]


def the_instance():
    (instance,) = live_instances()
    return instance


def the_group():
    (group,) = ec2().describe_security_groups(Filters=[{"Name": "group-name", "Values": [SG_NAME]}])["SecurityGroups"]
    return group


def route_tables():
    tables = ec2().describe_route_tables(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-rtb-public-stg", "aws-practice-rtb-private-stg"]}])["RouteTables"]
    return {tags.as_dict(t["Tags"])["Name"].split("-")[-2]: t for t in tables}


def default_route(table):
    return next(r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0")


def al2023_ami():
    return boto3.client("ssm", region_name=REGION).get_parameter(Name=AL2023)["Parameter"]["Value"]


class Sent:
    """What awsprac sends, per operation, seen by a provide-client-params hook (before any injection)."""

    def __init__(self):
        self.calls = []

    def __call__(self, params, model, **kwargs):
        self.calls.append((model.name, dict(params)))

    def of(self, name):
        return [p for n, p in self.calls if n == name]

    @property
    def names(self):
        return [n for n, _ in self.calls]

    hook = property(lambda self: ("provide-client-params.*.*", self))


def answer(parsed, status=200):
    """A before-call return value: botocore takes it as AWS's answer and sends nothing."""
    return botocore.awsrequest.AWSResponse("https://aws.invalid", status, {}, None), {**parsed, "ResponseMetadata": {"HTTPStatusCode": status}}


@pytest.fixture(autouse=True)
def instant_waits(clock):
    """Nothing in this module may really wait: a wrong wait fails fast on the fake clock's budget instead."""


# --- building: docs/reference.md section 3, exactly ---


def test_up_builds_spec_section_3(ctx):
    planned = up(ctx)
    assert [(c.step, c.action, c.kind, c.name) for c in planned.changes if c.step in ("nat-iam", "nat")] == [
        ("nat-iam", Action.CREATE, "IAM role", ROLE),
        ("nat-iam", Action.CREATE, "instance profile", ROLE),
        ("nat", Action.CREATE, "security group", SG_NAME),
        ("nat", Action.CREATE, "instance", NAT),
    ]
    client = ec2()
    vpc_id = ctx.observed["vpc"].id
    subnets = {n: f.id for n, f in ctx.observed["subnets"].subnets.items()}

    group = the_group()
    assert group["VpcId"] == vpc_id and group["Description"] == "Managed by Terraform"
    assert tags.as_dict(group["Tags"]) == {"Name": SG_NAME, **OWNED}
    rules = client.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group["GroupId"]]}])["SecurityGroupRules"]
    assert sorted((r["IsEgress"], r["IpProtocol"], r["CidrIpv4"]) for r in rules) == [
        (False, "-1", "10.0.128.0/18"), (False, "-1", "10.0.192.0/18"), (True, "-1", "0.0.0.0/0"),
    ]

    role = iam().get_role(RoleName=ROLE)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    assert [p["PolicyArn"] for p in iam().list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]] == [
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    ]
    assert tags.as_dict(role["Tags"]) == {"Name": ROLE, **OWNED}
    profile = iam().get_instance_profile(InstanceProfileName=ROLE)["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [ROLE] and tags.as_dict(profile["Tags"]) == {"Name": ROLE, **OWNED}

    instance = the_instance()
    assert instance["ImageId"] == al2023_ami()
    assert instance["InstanceType"] == "t2.micro"
    assert instance["SubnetId"] == subnets["public-subnet-1a-stg"] and instance["VpcId"] == vpc_id
    assert instance.get("PublicIpAddress")
    assert [g["GroupId"] for g in instance["NetworkInterfaces"][0]["Groups"]] == [group["GroupId"]]
    assert instance["IamInstanceProfile"]["Arn"] == profile["Arn"]
    assert "KeyName" not in instance
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert tags.as_dict(instance["Tags"]) == {"Name": NAT, **OWNED}
    attribute = client.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="sourceDestCheck")
    assert attribute["SourceDestCheck"]["Value"] is False
    user_data = client.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")["UserData"]["Value"]
    script = base64.b64decode(user_data).decode()
    assert script.startswith("#!/bin/bash") and 'VPC_CIDR="10.0.0.0/16"' in script


def test_what_is_sent_on_create(make_ctx):
    sent = Sent()
    up(make_ctx(hooks=[sent.hook]))
    (run,) = sent.of("RunInstances")
    # With a public IP, subnet and groups go inside the network interface, never top level.
    assert "SubnetId" not in run and "SecurityGroupIds" not in run and "SecurityGroups" not in run and "KeyName" not in run
    (eni,) = run["NetworkInterfaces"]
    assert eni["DeviceIndex"] == 0 and eni["AssociatePublicIpAddress"] is True and eni["DeleteOnTermination"] is True
    assert run["IamInstanceProfile"] == {"Name": ROLE}
    assert run["MetadataOptions"] == {"HttpTokens": "required", "HttpEndpoint": "enabled"}
    assert run["MinCount"] == run["MaxCount"] == 1
    assert run["ClientToken"].startswith("awsprac-") and len(run["ClientToken"]) <= 64
    assert sorted(s["ResourceType"] for s in run["TagSpecifications"]) == ["instance", "network-interface", "volume"]
    assert sent.of("ModifyInstanceAttribute") == [{"InstanceId": the_instance()["InstanceId"], "SourceDestCheck": {"Value": False}}]
    (group,) = sent.of("CreateSecurityGroup")
    assert group["Description"] == "Managed by Terraform" and group["GroupName"] == SG_NAME
    (role,) = sent.of("CreateRole")
    assert tags.as_dict(role["Tags"]) == {"Name": ROLE, **OWNED}
    assert tags.as_dict(sent.of("CreateInstanceProfile")[0]["Tags"]) == {"Name": ROLE, **OWNED}
    for name, params in sent.calls:
        if name.startswith(("Create", "RunInstances", "AllocateAddress")) and name not in ("CreateRole", "CreateInstanceProfile", "CreateRoute"):
            assert all(OWNED.items() <= tags.as_dict(s["Tags"]).items() for s in params["TagSpecifications"]), name
    assert "CreateTags" not in sent.names and "TagRole" not in sent.names


def test_second_run_plans_nothing_and_writes_nothing(ctx, make_ctx, calls):
    up(ctx)
    again = make_ctx(hooks=[("before-call.*.*", calls)])
    planned = runner.plan(again, runner.resolve(STEPS))
    assert planned.changes == []
    assert runner.apply(again, runner.resolve(STEPS), planned).applied == []
    assert calls.writes == []


# --- RunInstances: IAM propagation and the client token ---


@pytest.mark.parametrize("message", [PROFILE_NOT_VISIBLE, "The instance profile aws-practice-nat-stg has no associated IAM Roles"])
def test_iam_not_yet_visible_to_ec2_is_retried_with_one_token_and_makes_one_instance(make_ctx, clock, message):
    sent = Sent()
    fault = FailFirst("RunInstances", "InvalidParameterValue", times=3, message=message)
    up(make_ctx(hooks=[sent.hook, fault.hook]))
    tokens_sent = [p["ClientToken"] for p in sent.of("RunInstances")]
    assert len(tokens_sent) == 4 and len(set(tokens_sent)) == 1
    assert fault.failed == 3 and fault.passed == 1
    assert len(live_instances()) == 1
    assert clock.pauses == [2, 4, 8]


def test_other_launch_errors_are_not_retried(make_ctx, clock):
    fault = FailFirst("RunInstances", "InvalidParameterValue", times=10, message="Value (t2.nano.bogus) for parameter instanceType is invalid.")
    steps = runner.resolve(STEPS)
    ctx = make_ctx(hooks=[fault.hook])
    outcome = runner.apply(ctx, steps, runner.plan(ctx, steps))
    assert "creating instance aws-practice-nat-1a-stg failed: InvalidParameterValue" in str(outcome.failed["nat"])
    assert fault.failed == 1 and clock.pauses == []
    assert outcome.skipped == {"routes": "nat", "nat-leftovers": "routes"}
    assert live_instances() == []


class AwsIdempotency:
    """What AWS does with a RunInstances ClientToken it has seen: answer as the first time, launch nothing.

    moto ignores tokens (a second call makes a second instance), so this hook plays AWS's part.
    """

    def __init__(self):
        self.answers = {}
        self.replayed = 0
        self._token = None

    def before(self, params, model, **kwargs):
        token = params["body"].get("ClientToken")
        if token in self.answers:
            self.replayed += 1
            return answer(self.answers[token])
        self._token = token

    def after(self, parsed, model, **kwargs):
        if self._token and "Instances" in parsed:
            self.answers[self._token] = {"Instances": parsed["Instances"], "ReservationId": parsed.get("ReservationId", "r-1")}
        self._token = None

    @property
    def hooks(self):
        return [("before-call.ec2.RunInstances", self.before), ("after-call.ec2.RunInstances", self.after)]


class HideInstancesOnce:
    """DescribeInstances that does not show the NAT yet: AWS's eventual consistency right after a launch."""

    def __init__(self):
        self.hidden = False

    def __call__(self, params, model, **kwargs):
        body = params["body"]
        looks_for_live_nat = any(v == NAT for k, v in body.items() if k.startswith("Filter")) and "terminated" not in body.values()
        if looks_for_live_nat and not self.hidden:
            self.hidden = True
            return answer({"Reservations": []})


def test_a_rerun_after_a_crash_gets_the_same_instance_back_from_the_token(make_ctx):
    aws = AwsIdempotency()
    up(make_ctx(hooks=aws.hooks))
    first = the_instance()["InstanceId"]
    # The re-run of a run that crashed after RunInstances: its lookup does not see the instance yet.
    hide = HideInstancesOnce()
    planned = up(make_ctx(hooks=[("before-call.ec2.DescribeInstances", hide)] + aws.hooks), ["nat"])
    assert hide.hidden and [(c.action, c.kind) for c in planned.changes] == [(Action.CREATE, "instance")]
    assert aws.replayed == 1, "the re-run must send the first run's token"
    assert [i["InstanceId"] for i in live_instances()] == [first]


def test_a_token_whose_instance_was_terminated_is_not_reused(make_ctx):
    sent = Sent()
    dead = {"InstanceId": "i-0000000000000dead", "State": {"Code": 48, "Name": "terminated"}}
    answered = []

    def old_answer(params, model, **kwargs):
        if not answered:  # AWS keeps a token >= 24 h: its terminated instance comes back
            answered.append(params["body"]["ClientToken"])
            return answer({"Instances": [dead], "ReservationId": "r-0"})

    up(make_ctx(hooks=[sent.hook, ("before-call.ec2.RunInstances", old_answer)]))
    first, second = [p["ClientToken"] for p in sent.of("RunInstances")]
    assert first != second
    assert len(live_instances()) == 1


def test_destroy_then_up_launches_with_a_new_token(make_ctx):
    """AWS keeps a token >= 24 h after its instance is gone: a rebuilt env (new VPC) must not reuse it."""
    sent = Sent()
    up(make_ctx(hooks=[sent.hook]))
    ctx = make_ctx()
    steps = runner.resolve(STEPS)
    assert runner.destroy(ctx, steps, runner.teardown_plan(ctx, steps)).ok
    up(make_ctx(hooks=[sent.hook]))
    first, second = [p["ClientToken"] for p in sent.of("RunInstances")]
    assert first != second


def test_a_terminated_nat_is_replaced_with_a_new_token_and_the_route_follows(ctx, make_ctx):
    sent = Sent()
    up(make_ctx(hooks=[sent.hook]))
    old = the_instance()
    ec2().terminate_instances(InstanceIds=[old["InstanceId"]])
    changes = plan(make_ctx)
    assert [(c.step, c.action, c.kind) for c in changes] == [("nat", Action.CREATE, "instance"), ("routes", Action.UPDATE, "route table")]
    assert "route 0.0.0.0/0: " + old["NetworkInterfaces"][0]["NetworkInterfaceId"] + " -> the NAT instance's network interface (once built)" in changes[1].describe()
    up(make_ctx(hooks=[sent.hook]))
    new = the_instance()
    assert new["InstanceId"] != old["InstanceId"]
    first, second = [p["ClientToken"] for p in sent.of("RunInstances")]
    assert first != second, "a token bound to the terminated instance would hand it back"
    assert default_route(route_tables()["private"])["NetworkInterfaceId"] == new["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert plan(make_ctx) == []


# --- drift ---


def test_drift_on_the_instance_is_planned_and_repaired(ctx, make_ctx):
    up(ctx)
    client = ec2()
    instance = the_instance()
    instance_id = instance["InstanceId"]
    client.modify_instance_attribute(InstanceId=instance_id, SourceDestCheck={"Value": True})
    client.modify_instance_metadata_options(InstanceId=instance_id, HttpTokens="optional")
    (association,) = client.describe_iam_instance_profile_associations(Filters=[{"Name": "instance-id", "Values": [instance_id]}])["IamInstanceProfileAssociations"]
    client.disassociate_iam_instance_profile(AssociationId=association["AssociationId"])
    default_group = client.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [instance["VpcId"]]}, {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]
    client.modify_network_interface_attribute(NetworkInterfaceId=instance["NetworkInterfaces"][0]["NetworkInterfaceId"], Groups=[default_group["GroupId"]])

    (change,) = plan(make_ctx)
    assert (change.action, change.kind, change.id) == (Action.UPDATE, "instance", instance_id)
    assert [str(f) for f in change.fields] == [
        "source/dest check: true -> false",
        "metadata tokens (IMDSv2): optional -> required",
        f"instance profile: (none) -> {ROLE}",
        f"security groups: default -> default, {SG_NAME}",
    ]
    up(make_ctx())
    assert plan(make_ctx) == []
    fixed = the_instance()
    assert fixed["InstanceId"] == instance_id
    assert client.describe_instance_attribute(InstanceId=instance_id, Attribute="sourceDestCheck")["SourceDestCheck"]["Value"] is False
    assert fixed["MetadataOptions"]["HttpTokens"] == "required"
    assert fixed["IamInstanceProfile"]["Arn"].endswith(f"/{ROLE}")
    assert the_group()["GroupId"] in [g["GroupId"] for g in fixed["NetworkInterfaces"][0]["Groups"]]


def test_a_newer_ami_is_shown_by_status_and_never_replaces_the_instance(ctx, make_ctx, calls):
    up(ctx)
    running = the_instance()

    def newer(params, model, **kwargs):
        if json.loads(params["body"]).get("Name") == AL2023:  # a JSON-protocol service
            return answer({"Parameter": {"Name": AL2023, "Type": "String", "Value": "ami-0123456789abcdef0", "Version": 99}})

    steps = runner.resolve(STEPS)
    rows = runner.status(make_ctx(hooks=[("before-call.ssm.GetParameter", newer)]), steps)
    (row,) = [r for r in rows if r.kind == "instance"]
    assert row.sync == "in sync"
    assert row.state == f"running; NAT setup unknown (no result on its console); runs {running['ImageId']}, a new one would launch from ami-0123456789abcdef0 (latest Amazon Linux 2023 ({AL2023}))"
    # up neither replaces the instance nor even asks which image is the latest.
    ctx2 = make_ctx(hooks=[("before-call.ssm.GetParameter", newer), ("before-call.*.*", calls)])
    assert runner.apply(ctx2, steps, runner.plan(ctx2, steps)).applied == []
    assert calls.writes == [] and "GetParameter" not in calls.names
    assert [i["InstanceId"] for i in live_instances()] == [running["InstanceId"]]


def test_a_stopped_nat_is_parked_not_drift_and_not_started(ctx, make_ctx):
    up(ctx)
    ec2().stop_instances(InstanceIds=[the_instance()["InstanceId"]])
    assert plan(make_ctx) == []


def test_security_group_rules_added_and_extra_ones_removed_only_with_prune(ctx, make_ctx):
    up(ctx)
    client = ec2()
    group_id = the_group()["GroupId"]
    client.revoke_security_group_ingress(GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.192.0/18"}]}])
    client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.5/32"}]}])

    update, report = plan(make_ctx)
    assert update.action is Action.UPDATE and [str(f) for f in update.fields] == ["inbound: (none) -> all traffic from 10.0.192.0/18 (private-subnet-1c-stg)"]
    assert report.action is Action.REPORT and str(report.fields[0]).startswith("inbound: tcp 22 from 203.0.113.5/32 (sgr-")
    assert "`awsprac up --prune` removes them" in report.note

    up(make_ctx())
    inbound = lambda: sorted((r["IpProtocol"], r["CidrIpv4"]) for r in client.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"] if not r["IsEgress"])
    assert inbound() == [("-1", "10.0.128.0/18"), ("-1", "10.0.192.0/18"), ("tcp", "203.0.113.5/32")]
    assert [c.action for c in plan(make_ctx)] == [Action.REPORT]

    (pruning,) = plan(make_ctx, prune=True)
    assert pruning.action is Action.UPDATE and str(pruning.fields[0]).startswith("inbound: tcp 22 from 203.0.113.5/32")
    up(make_ctx(prune=True))
    assert inbound() == [("-1", "10.0.128.0/18"), ("-1", "10.0.192.0/18")]
    assert plan(make_ctx) == []


def test_hand_made_nat_from_the_guide_is_adopted_not_duplicated(ctx, make_ctx):
    up(ctx, ["vpc", "subnets", "igw", "nat-iam"])
    client = ec2()
    vpc_id = ctx.observed["vpc"].id
    subnet = ctx.observed["subnets"].subnets["public-subnet-1a-stg"].id
    # As the console makes them: group name only (no Name tag), instance with just a Name tag.
    group_id = client.create_security_group(GroupName=SG_NAME, Description="Managed by Terraform", VpcId=vpc_id)["GroupId"]
    for cidr in ("10.0.128.0/18", "10.0.192.0/18"):
        client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": cidr}]}])
    instance_id = client.run_instances(
        ImageId=al2023_ami(), InstanceType="t2.micro", MinCount=1, MaxCount=1, IamInstanceProfile={"Name": ROLE},
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [group_id], "AssociatePublicIpAddress": True}],
        MetadataOptions={"HttpTokens": "required"}, TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": NAT}]}],
    )["Instances"][0]["InstanceId"]
    client.modify_instance_attribute(InstanceId=instance_id, SourceDestCheck={"Value": False})

    changes = [c for c in plan(make_ctx) if c.step == "nat"]
    assert [(c.action, c.kind, c.id) for c in changes] == [(Action.ADOPT, "security group", group_id), (Action.ADOPT, "instance", instance_id)]
    assert str(changes[0].fields[0]) == "tags: Name=(none), awsprac:project=(none), awsprac:env=(none) -> Name=aws-practice-nat-stg, awsprac:project=aws-practice, awsprac:env=stg"
    up(make_ctx())
    assert [i["InstanceId"] for i in live_instances()] == [instance_id]
    assert the_group()["GroupId"] == group_id and tags.as_dict(the_group()["Tags"]) == {"Name": SG_NAME, **OWNED}
    assert plan(make_ctx) == []


def test_two_nat_instances_with_one_name_is_an_error(ctx, make_ctx):
    up(ctx)
    instance = the_instance()
    client = ec2()
    other = client.run_instances(
        ImageId=instance["ImageId"], InstanceType="t2.micro", MinCount=1, MaxCount=1, SubnetId=instance["SubnetId"],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": NAT}]}],
    )["Instances"][0]["InstanceId"]
    with pytest.raises(AmbiguousResource, match=f"2 instances are named '{NAT}'") as err:
        plan(make_ctx)
    assert instance["InstanceId"] in str(err.value) and other in str(err.value)


def test_iam_drift_and_a_hand_made_role_are_repaired(ctx, make_ctx):
    client = iam()
    client.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    client.create_instance_profile(InstanceProfileName=ROLE)
    changes = plan(make_ctx, ["nat-iam"])
    assert [(c.action, c.kind) for c in changes] == [(Action.ADOPT, "IAM role"), (Action.ADOPT, "instance profile")]
    assert "trusted entity: (not EC2) -> ec2.amazonaws.com" in changes[0].describe()
    assert "managed policies: (none) -> AmazonSSMManagedInstanceCore" in changes[0].describe()
    assert f"role: (none) -> {ROLE}" in changes[1].describe()
    up(make_ctx(), ["nat-iam"])
    assert plan(make_ctx, ["nat-iam"]) == []
    statement = client.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "ec2.amazonaws.com"}


@pytest.mark.parametrize("owner", ["", "123456789012"])
def test_a_baked_ami_named_in_the_env_file_is_launched_from(ctx, make_ctx, cfg, owner):
    up(ctx, ["vpc", "subnets", "igw", "nat-iam"])
    image_id = ec2().register_image(Name="aws-practice-nat-instance", RootDeviceName="/dev/xvda")["ImageId"]
    prd_like = with_nat(cfg, ami="{project}-nat-instance", ami_owner=owner)
    sent = Sent()
    up(make_ctx(config=prd_like, hooks=[sent.hook]))
    assert sent.of("RunInstances")[0]["ImageId"] == image_id == the_instance()["ImageId"]
    looked_up = [p for p in sent.of("DescribeImages") if {"Name": "name", "Values": ["aws-practice-nat-instance"]} in p.get("Filters", []) and {"Name": "state", "Values": ["available"]} in p["Filters"]]
    assert looked_up and looked_up[0]["Owners"] == [owner or "self"]
    assert plan(make_ctx, config=prd_like) == []


def test_step_nat_alone_needs_its_iam_first(ctx):
    from awsprac.engine.errors import MissingPrerequisite

    up(ctx, ["vpc", "subnets", "igw", "public-routes"])
    steps = runner.resolve(["nat"])
    runner.plan(ctx, steps)
    with pytest.raises(MissingPrerequisite, match=r"step nat needs step nat-iam, which is not built yet: run `awsprac step nat-iam --env stg` first"):
        runner.require_prerequisites(ctx, steps[0])


def test_a_baked_ami_that_does_not_exist_is_a_usage_error(make_ctx, cfg):
    missing = with_nat(cfg, ami="aws-practice-nat-instance", ami_owner="210987654321")
    with pytest.raises(UsageError, match=r"nat.ami: no available AMI named 'aws-practice-nat-instance' in account 210987654321 .*awsprac nat bake-ami"):
        plan(make_ctx, config=missing)


def test_an_arm_instance_type_gets_the_arm64_image(make_ctx, cfg):
    sent = Sent()
    plan(make_ctx, ["nat"], config=with_nat(cfg, instance_type="t4g.micro"), hooks=[sent.hook])
    assert [p["Name"] for p in sent.of("GetParameter")] == ["/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"]


# --- modes ---


def state_of_the_nat(vpc_id):
    client = ec2()
    gateways = [g for g in client.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NatGateways"] if g["State"] != "deleted"]
    addresses = client.describe_addresses(Filters=[{"Name": "tag:awsprac:env", "Values": ["stg"]}])["Addresses"]
    groups = client.describe_security_groups(Filters=[{"Name": "group-name", "Values": [SG_NAME]}])["SecurityGroups"]
    roles = [r["RoleName"] for r in iam().list_roles()["Roles"] if r["RoleName"] == ROLE]
    return {"instances": len(live_instances()), "gateways": len(gateways), "addresses": len(addresses), "groups": len(groups), "roles": len(roles)}


def private_route():
    route = default_route(route_tables()["private"]) if any(r.get("DestinationCidrBlock") == "0.0.0.0/0" for r in route_tables()["private"]["Routes"]) else None
    if route is None:
        return None
    return route.get("NatGatewayId") or route.get("NetworkInterfaceId")


def test_mode_switches_move_the_route_and_remove_what_the_old_mode_left(ctx, make_ctx, cfg, clock):
    up(ctx)
    vpc_id = ctx.observed["vpc"].id
    assert state_of_the_nat(vpc_id) == {"instances": 1, "gateways": 0, "addresses": 0, "groups": 1, "roles": 1}
    assert private_route() == the_instance()["NetworkInterfaces"][0]["NetworkInterfaceId"]

    gateway = with_nat(cfg, mode="gateway")
    changes = plan(make_ctx, config=gateway)
    assert [(c.step, c.action, c.kind) for c in changes] == [
        ("nat", Action.CREATE, "elastic IP"), ("nat", Action.CREATE, "NAT gateway"),
        ("routes", Action.UPDATE, "route table"),
        ("nat-leftovers", Action.DELETE, "instance"), ("nat-leftovers", Action.DELETE, "security group"),
        ("nat-leftovers", Action.DELETE, "instance profile"), ("nat-leftovers", Action.DELETE, "IAM role"),
    ]
    assert all("nat.mode is gateway" in c.note for c in changes if c.action is Action.DELETE)
    sent = Sent()
    up(make_ctx(config=gateway, hooks=[sent.hook]))
    order = sent.names.index
    # the new way out first, then the old one; its role only once the instance using it is gone
    assert order("CreateNatGateway") < order("TerminateInstances") < order("DeleteSecurityGroup")
    assert order("TerminateInstances") < order("DeleteInstanceProfile") < order("DeleteRole")
    assert order("CreateNatGateway") < order("ReplaceRoute") < order("TerminateInstances")
    assert state_of_the_nat(vpc_id) == {"instances": 0, "gateways": 1, "addresses": 1, "groups": 0, "roles": 0}
    assert private_route().startswith("nat-")
    assert plan(make_ctx, config=gateway) == []

    none = with_nat(cfg, mode="none")
    up(make_ctx(config=none))
    assert state_of_the_nat(vpc_id) == {"instances": 0, "gateways": 0, "addresses": 0, "groups": 0, "roles": 0}
    assert private_route() is None
    assert plan(make_ctx, config=none) == []

    up(make_ctx())
    assert state_of_the_nat(vpc_id) == {"instances": 1, "gateways": 0, "addresses": 0, "groups": 1, "roles": 1}
    assert private_route() == the_instance()["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert plan(make_ctx) == []


def test_gateway_to_instance_with_an_elastic_ip(ctx, make_ctx, cfg, clock):
    up(make_ctx(config=with_nat(cfg, mode="gateway")))
    vpc_id = make_ctx().aws.ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-stg"]}])["Vpcs"][0]["VpcId"]
    with_address = with_nat(cfg, elastic_ip=True)
    up(make_ctx(config=with_address))
    assert state_of_the_nat(vpc_id) == {"instances": 1, "gateways": 0, "addresses": 1, "groups": 1, "roles": 1}
    (address,) = ec2().describe_addresses(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-nat-instance-1a-stg"]}])["Addresses"]
    assert address["InstanceId"] == the_instance()["InstanceId"]
    assert plan(make_ctx, config=with_address) == []
    # elastic_ip turned off: the address goes
    up(make_ctx())
    assert state_of_the_nat(vpc_id)["addresses"] == 0 and plan(make_ctx) == []


def test_nat_gateway_is_created_with_a_token_and_waited_for(make_ctx, cfg, clock):
    gateway = with_nat(cfg, mode="gateway")
    sent = Sent()
    states = iter(["pending", "pending"])

    def pending(params, model, **kwargs):
        state = next(states, None) if "NatGatewayId.1" in params["body"] else None
        if state:
            return answer({"NatGateways": [{"NatGatewayId": params["body"]["NatGatewayId.1"], "State": state}]})

    up(make_ctx(config=gateway, hooks=[sent.hook, ("before-call.ec2.DescribeNatGateways", pending)]), ["vpc", "subnets", "igw", "nat-iam", "nat"])
    (create,) = sent.of("CreateNatGateway")
    (subnet,) = ec2().describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["public-subnet-1a-stg"]}])["Subnets"]
    (address,) = ec2().describe_addresses(Filters=[{"Name": "tag:Name", "Values": [NAT]}])["Addresses"]
    assert create["SubnetId"] == subnet["SubnetId"] and create["AllocationId"] == address["AllocationId"]
    assert create["ConnectivityType"] == "public" and create["ClientToken"].startswith("awsprac-")
    assert tags.as_dict(create["TagSpecifications"][0]["Tags"]) == {"Name": NAT, **OWNED}
    assert tags.as_dict(address["Tags"]) == {"Name": NAT, **OWNED}
    assert clock.pauses == [10, 10], "waited through two pending answers"


def test_a_failed_nat_gateway_says_why(make_ctx, cfg, clock):
    def failed(params, model, **kwargs):
        if "NatGatewayId.1" in params["body"]:
            return answer({"NatGateways": [{"NatGatewayId": params["body"]["NatGatewayId.1"], "State": "failed", "FailureMessage": "Elastic IP address is already associated"}]})

    ctx = make_ctx(config=with_nat(cfg, mode="gateway"), hooks=[("before-call.ec2.DescribeNatGateways", failed)])
    steps = runner.resolve(STEPS)
    outcome = runner.apply(ctx, steps, runner.plan(ctx, steps))
    assert "is failed: Elastic IP address is already associated; delete it, then run `awsprac up` again" in str(outcome.failed["nat"])


# --- teardown ---


def test_destroy_goes_in_order_and_leaves_nothing_owned(ctx, make_ctx, clock):
    up(ctx)
    client = ec2()
    vpc_id = ctx.observed["vpc"].id
    original_main = client.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "tag:awsprac:original-main-route-table", "Values": ["*"]}])["RouteTables"]
    sent = Sent()
    ctx2 = make_ctx(hooks=[sent.hook])
    steps = runner.resolve(STEPS)
    planned = runner.teardown_plan(ctx2, steps)
    assert [(c.step, c.kind) for c in planned.changes if c.step in ("routes", "nat", "nat-iam", "public-routes")] == [
        ("routes", "route table"),
        ("nat", "instance"), ("nat", "security group"),
        ("nat-iam", "instance profile"), ("nat-iam", "IAM role"),
        ("public-routes", "route table"),
    ]
    assert runner.destroy(ctx2, steps, planned).ok
    writes = [n for n in sent.names if not n.startswith(("Describe", "Get", "List"))]
    order = writes.index
    assert order("ReplaceRouteTableAssociation") < order("DeleteRouteTable")  # the main role given back first
    assert order("TerminateInstances") < order("DeleteSecurityGroup")
    assert order("TerminateInstances") < order("DeleteInstanceProfile") < order("DeleteRole")
    assert order("DetachRolePolicy") < order("DeleteRole")
    assert order("TerminateInstances") < order("DetachInternetGateway")  # public IPs block the detach on AWS
    assert writes[-1] == "DeleteVpc" or "DeleteRole" in writes[-2:]
    (given_back,) = sent.of("ReplaceRouteTableAssociation")
    assert original_main and given_back["RouteTableId"] == tags.as_dict(original_main[0]["Tags"])["awsprac:original-main-route-table"]
    assert live_instances() == [] and iam().list_roles()["Roles"] == [] and iam().list_instance_profiles()["InstanceProfiles"] == []
    assert runner.teardown_plan(make_ctx(), steps).changes == []


def test_destroy_in_gateway_mode_waits_for_the_gateway_before_releasing_its_address(make_ctx, cfg, clock):
    gateway = with_nat(cfg, mode="gateway")
    up(make_ctx(config=gateway))
    sent = Sent()
    ctx = make_ctx(config=gateway, hooks=[sent.hook])
    steps = runner.resolve(STEPS)
    assert runner.destroy(ctx, steps, runner.teardown_plan(ctx, steps)).ok
    writes = [n for n in sent.names if not n.startswith(("Describe", "Get", "List"))]
    assert writes.index("DeleteNatGateway") < writes.index("ReleaseAddress") < writes.index("DetachInternetGateway")
    assert [g["State"] for g in ec2().describe_nat_gateways()["NatGateways"]] == ["deleted"]
    assert ec2().describe_addresses()["Addresses"] == []


def test_the_gateway_address_is_released_once_aws_lets_go_of_it(make_ctx, cfg, clock):
    """After DeleteNatGateway, AWS refuses ReleaseAddress with AuthFailure for a while (moto releases at once)."""
    gateway = with_nat(cfg, mode="gateway")
    up(make_ctx(config=gateway))
    held = FailFirst("ReleaseAddress", "AuthFailure", times=2, message="You do not have permission to access the specified resource.")
    ctx = make_ctx(config=gateway, hooks=[held.hook])
    steps = runner.resolve(STEPS)
    assert runner.destroy(ctx, steps, runner.teardown_plan(ctx, steps)).ok
    assert held.failed == 2 and held.passed == 1
    assert ec2().describe_addresses()["Addresses"] == []


def test_teardown_leaves_what_another_env_or_a_person_owns(ctx, make_ctx):
    up(ctx)
    iam().untag_role(RoleName=ROLE, TagKeys=["awsprac:env"])
    instance_id = the_instance()["InstanceId"]
    ec2().delete_tags(Resources=[instance_id], Tags=[{"Key": "awsprac:env"}])
    planned = runner.teardown_plan(make_ctx(), runner.resolve(STEPS))
    left = {(c.kind, c.id) for c in planned.changes if c.action is Action.REPORT}
    assert ("instance", instance_id) in left and ("IAM role", f"arn:aws:iam::123456789012:role/{ROLE}") in left


def test_teardown_of_what_is_already_gone_is_success(ctx, make_ctx, clock):
    up(ctx)
    ctx2 = make_ctx()
    steps = runner.resolve(STEPS)
    planned = runner.teardown_plan(ctx2, steps)
    ec2().terminate_instances(InstanceIds=[the_instance()["InstanceId"]])
    iam().remove_role_from_instance_profile(InstanceProfileName=ROLE, RoleName=ROLE)
    iam().delete_instance_profile(InstanceProfileName=ROLE)
    assert runner.destroy(ctx2, steps, planned).ok
    assert runner.teardown_plan(make_ctx(), steps).changes == []


def test_security_group_delete_waits_while_the_instance_interface_lingers(ctx, make_ctx, clock):
    up(ctx)
    fault = FailFirst("DeleteSecurityGroup", "DependencyViolation", times=2, message="resource sg-1 has a dependent object")
    ctx2 = make_ctx(hooks=[fault.hook])
    steps = runner.resolve(STEPS)
    assert runner.destroy(ctx2, steps, runner.teardown_plan(ctx2, steps)).ok
    assert fault.failed == 2 and fault.passed == 1


def baked_image() -> tuple[str, str]:
    """What `awsprac nat bake-ami` leaves: the image of the NAT instance, tagged for the env, and its snapshot."""
    image_id = ec2().create_image(
        InstanceId=the_instance()["InstanceId"], Name="aws-practice-nat-instance",
        TagSpecifications=[{"ResourceType": "image", "Tags": tags.as_list({"Name": "aws-practice-nat-instance", **OWNED})}],
    )["ImageId"]
    return image_id, ec2().describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]


def test_the_baked_ami_is_kept_unless_asked(ctx, make_ctx):
    up(ctx)
    client = ec2()
    image_id, snapshot = baked_image()
    steps = runner.resolve(STEPS)
    kept = [c for c in runner.teardown_plan(make_ctx(), steps).changes if c.kind == "AMI"]
    assert [(c.action, c.id) for c in kept] == [(Action.REPORT, image_id)] and "--include-ami" in kept[0].note
    ctx2 = make_ctx(include_ami=True)
    planned = runner.teardown_plan(ctx2, steps)
    assert [(c.action, c.id) for c in planned.changes if c.kind == "AMI"] == [(Action.DELETE, image_id)]
    assert runner.destroy(ctx2, steps, planned).ok
    assert client.describe_images(Owners=["self"])["Images"] == []
    assert snapshot not in [s["SnapshotId"] for s in client.describe_snapshots(OwnerIds=["self"])["Snapshots"]]


def test_under_strict_aws_the_nat_instance_is_launched_with_its_subnet_online(make_ctx, strict_aws):
    """Its user data installs packages at first boot, once: the public route table, its route to the internet
    gateway and its association exist before RunInstances (step public-routes is a prerequisite of nat).
    The public subnets' associations hold back (up to 3 s) for a launch: one made meanwhile is offline."""
    import threading

    launched = threading.Event()

    def hold(**kwargs):
        launched.wait(3)

    held = [("after-call.ec2.RunInstances", lambda **kw: launched.set()), ("before-call.ec2.AssociateRouteTable", hold)]
    up(make_ctx(hooks=held))
    assert live_instances() and strict_aws.offline == [] and strict_aws.gaps == [] and strict_aws.refused == []


def test_destroy_include_ami_under_strict_aws_removes_the_image_and_its_snapshots(ctx, make_ctx, strict_aws):
    """AWS answers InvalidSnapshot.InUse for a while to a DeleteSnapshot right after DeregisterImage:
    the snapshots go with the image (DeleteAssociatedSnapshots)."""
    up(ctx)
    client = ec2()
    image_id, snapshot = baked_image()
    ctx2 = make_ctx(include_ami=True)
    steps = runner.resolve(STEPS)
    outcome = runner.destroy(ctx2, steps, runner.teardown_plan(ctx2, steps))
    assert outcome.ok, outcome.failed
    assert client.describe_images(Owners=["self"])["Images"] == []
    assert snapshot not in [s["SnapshotId"] for s in client.describe_snapshots(OwnerIds=["self"])["Snapshots"]]
    assert strict_aws.refused == []
