"""Steps vpc, subnets, igw against in-process moto: create, converge, drift, adopt, duplicates, teardown."""

import boto3
import pytest

from awsprac.engine import runner, tags
from awsprac.engine.errors import AmbiguousResource, MissingPrerequisite
from awsprac.engine.plan import Action

from conftest import build

REGION = "ap-northeast-1"
OWNED = {"awsprac:project": "aws-practice", "awsprac:env": "stg"}
NETWORK = ["vpc", "subnets", "igw"]  # the steps of docs/reference.md section 2; other steps have their own tests


def ec2():
    return boto3.client("ec2", region_name=REGION)


def up(ctx, names=None):
    return build(ctx, names or NETWORK)


def fresh_plan(make_ctx, names=None, **kw):
    ctx = make_ctx(**kw)
    return runner.plan(ctx, runner.resolve(names or NETWORK))


def by_name(items):
    return {tags.as_dict(i.get("Tags"))["Name"]: i for i in items}


def test_up_builds_spec_section_2_exactly(ctx):
    planned = up(ctx, NETWORK)
    assert [(c.action, c.kind, c.name) for c in planned.changes] == [
        (Action.CREATE, "vpc", "aws-practice-stg"),
        (Action.CREATE, "subnet", "public-subnet-1a-stg"),
        (Action.CREATE, "subnet", "public-subnet-1c-stg"),
        (Action.CREATE, "subnet", "private-subnet-1a-stg"),
        (Action.CREATE, "subnet", "private-subnet-1c-stg"),
        (Action.CREATE, "internet gateway", "aws-practice-igw-stg"),
    ]
    client = ec2()
    (vpc,) = client.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-stg"]}])["Vpcs"]
    assert vpc["CidrBlock"] == "10.0.0.0/16" and vpc["InstanceTenancy"] == "default"
    assert not vpc.get("Ipv6CidrBlockAssociationSet")
    assert tags.as_dict(vpc["Tags"]) == {"Name": "aws-practice-stg", **OWNED}
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        reply = client.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)
        assert reply[attribute[0].upper() + attribute[1:]]["Value"] is True
    subnets = by_name(client.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"])
    assert {n: (s["AvailabilityZone"], s["CidrBlock"]) for n, s in subnets.items()} == {
        "public-subnet-1a-stg": ("ap-northeast-1a", "10.0.0.0/18"),
        "public-subnet-1c-stg": ("ap-northeast-1c", "10.0.64.0/18"),
        "private-subnet-1a-stg": ("ap-northeast-1a", "10.0.128.0/18"),
        "private-subnet-1c-stg": ("ap-northeast-1c", "10.0.192.0/18"),
    }
    assert all(tags.is_owned(tags.as_dict(s["Tags"]), "aws-practice", "stg") for s in subnets.values())
    (igw,) = client.describe_internet_gateways(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-igw-stg"]}])["InternetGateways"]
    assert [a["VpcId"] for a in igw["Attachments"]] == [vpc["VpcId"]]
    assert tags.as_dict(igw["Tags"]) == {"Name": "aws-practice-igw-stg", **OWNED}


def test_every_create_carries_its_tags_in_the_call_itself(make_ctx, calls):
    sent = []

    def record(params, model, **kwargs):
        sent.append((model.name, params))

    ctx = make_ctx(hooks=[("provide-client-params.ec2.*", record)])
    up(ctx)
    creates = [(name, p) for name, p in sent if name.startswith("Create")]
    assert creates[0][0] == "CreateVpc"
    assert sorted(n for n, _ in creates[1:]) == ["CreateInternetGateway"] + ["CreateSubnet"] * 4
    for name, params in creates:
        (spec,) = params["TagSpecifications"]
        assert OWNED.items() <= tags.as_dict(spec["Tags"]).items(), name
    assert "CreateTags" not in [n for n, _ in sent]


def test_second_run_plans_nothing_and_writes_nothing(ctx, make_ctx, calls):
    up(ctx)
    again = make_ctx(hooks=[("before-call.*.*", calls)])
    planned = runner.plan(again, runner.resolve(NETWORK))
    assert planned.changes == []
    assert runner.apply(again, runner.resolve(NETWORK), planned).applied == []
    assert calls.writes == []


def test_dns_drift_is_planned_and_repaired_in_aws_order(ctx, make_ctx):
    up(ctx)
    vpc_id = ctx.observed["vpc"].id
    ec2().modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": False})
    ec2().modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": False})
    sent = []
    ctx2 = make_ctx(hooks=[("provide-client-params.ec2.ModifyVpcAttribute", lambda params, **kw: sent.append(params))])
    planned = runner.plan(ctx2, runner.resolve(["vpc"]))
    (change,) = planned.changes
    assert change.action is Action.UPDATE
    assert [str(f) for f in change.fields] == ["enableDnsSupport: false -> true", "enableDnsHostnames: false -> true"]
    assert runner.apply(ctx2, runner.resolve(["vpc"]), planned).ok
    # one attribute per call, support before hostnames
    assert sent == [
        {"VpcId": vpc_id, "EnableDnsSupport": {"Value": True}},
        {"VpcId": vpc_id, "EnableDnsHostnames": {"Value": True}},
    ]
    assert fresh_plan(make_ctx).changes == []


def test_a_hand_made_vpc_is_adopted_not_duplicated(ctx, make_ctx):
    client = ec2()
    vpc_id = client.create_vpc(
        CidrBlock="10.0.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "aws-practice-stg"}]}]
    )["Vpc"]["VpcId"]
    planned = runner.plan(ctx, runner.resolve(["vpc"]))
    (change,) = planned.changes
    assert (change.action, change.id) == (Action.ADOPT, vpc_id)
    assert "tags: awsprac:project=(none), awsprac:env=(none) -> awsprac:project=aws-practice, awsprac:env=stg" in change.describe()
    assert "enableDnsHostnames: false -> true" in change.describe()
    up(make_ctx())
    vpcs = client.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-stg"]}])["Vpcs"]
    assert [v["VpcId"] for v in vpcs] == [vpc_id]
    assert tags.is_owned(tags.as_dict(vpcs[0]["Tags"]), "aws-practice", "stg")


def test_a_different_cidr_is_reported_never_replaced(ctx):
    ec2().create_vpc(
        CidrBlock="10.9.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "aws-practice-stg"}, *tags.as_list(OWNED)]}]
    )
    changes = runner.plan(ctx, runner.resolve(["vpc"])).changes
    report = [c for c in changes if c.action is Action.REPORT]
    assert len(report) == 1 and str(report[0].fields[0]) == "cidr: 10.9.0.0/16 -> 10.0.0.0/16"
    assert "cannot change in place" in report[0].note


def test_two_vpcs_with_one_name_is_an_error_listing_both(ctx):
    spec = [{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "aws-practice-stg"}]}]
    ids = [ec2().create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=spec)["Vpc"]["VpcId"] for _ in range(2)]
    with pytest.raises(AmbiguousResource) as err:
        runner.plan(ctx, runner.resolve(NETWORK))
    assert str(err.value).startswith("2 vpcs are named 'aws-practice-stg' (")
    assert all(i in str(err.value) for i in ids)


def test_a_deleted_subnet_is_recreated_and_others_left_alone(ctx, make_ctx):
    up(ctx)
    gone = ctx.observed["subnets"].subnets["private-subnet-1c-stg"].id
    ec2().delete_subnet(SubnetId=gone)
    changes = fresh_plan(make_ctx).changes
    assert [(c.action, c.name) for c in changes] == [(Action.CREATE, "private-subnet-1c-stg")]
    up(make_ctx())
    assert fresh_plan(make_ctx).changes == []


def test_a_detached_internet_gateway_is_reattached_not_duplicated(ctx, make_ctx):
    up(ctx)
    igw_id, vpc_id = ctx.observed["igw"].id, ctx.observed["vpc"].id
    ec2().detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    (change,) = fresh_plan(make_ctx).changes
    assert change.action is Action.UPDATE and change.describe().endswith(f"attached to: (none) -> {vpc_id}")
    up(make_ctx())
    igws = ec2().describe_internet_gateways(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-igw-stg"]}])["InternetGateways"]
    assert [(i["InternetGatewayId"], [a["VpcId"] for a in i["Attachments"]]) for i in igws] == [(igw_id, [vpc_id])]


def test_step_with_a_missing_prerequisite_says_which_to_run_first(ctx):
    steps = runner.resolve(["subnets"])
    runner.plan(ctx, steps)
    with pytest.raises(MissingPrerequisite, match=r"step subnets needs step vpc, which is not built yet: run `awsprac step vpc --env stg` first"):
        runner.require_prerequisites(ctx, steps[0])


def test_teardown_deletes_in_reverse_order_and_only_what_is_owned(ctx, make_ctx):
    up(ctx, NETWORK)
    client = ec2()
    vpc_id = ctx.observed["vpc"].id
    # A foreign VPC that merely looks like ours (a person's subnet inside ours: the test below).
    foreign_vpc = client.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "aws-practice-stg-copy"}]}])["Vpc"]["VpcId"]
    sent = []
    ctx2 = make_ctx(hooks=[("before-call.ec2.*", lambda model, **kw: sent.append(model.name))])
    planned = runner.teardown_plan(ctx2, runner.resolve(NETWORK))
    assert [(c.action, c.kind) for c in planned.changes] == [(Action.DELETE, "internet gateway")] + [(Action.DELETE, "subnet")] * 4 + [(Action.DELETE, "vpc")]
    assert runner.destroy(ctx2, runner.resolve(NETWORK), planned).ok
    writes = [n for n in sent if not n.startswith("Describe")]
    # subnets and the gateway go independently, the gateway detached before its delete; the VPC last
    assert sorted(writes[:-1]) == ["DeleteInternetGateway"] + ["DeleteSubnet"] * 4 + ["DetachInternetGateway"]
    assert writes.index("DetachInternetGateway") < writes.index("DeleteInternetGateway")
    assert writes[-1] == "DeleteVpc"
    assert [v["VpcId"] for v in client.describe_vpcs()["Vpcs"] if v["VpcId"] in (vpc_id, foreign_vpc)] == [foreign_vpc]
    # run again: nothing left, nothing to do
    assert runner.teardown_plan(make_ctx(), runner.resolve(NETWORK)).changes == []


def test_teardown_keeps_our_vpc_while_a_persons_own_subnet_is_in_it(ctx, make_ctx, clock):
    """AWS deletes no VPC that has subnets, and someone else's subnet is not ours to delete: the VPC is
    kept (saying which subnet and what to do), everything else of the env goes, nothing waits on AWS."""
    up(ctx, NETWORK)
    client = ec2()
    vpc_id = ctx.observed["vpc"].id
    client.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock="10.1.0.0/16")  # ours is all split into our subnets
    theirs = client.create_subnet(VpcId=vpc_id, CidrBlock="10.1.0.0/24", TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "someones-own"}]}])["Subnet"]["SubnetId"]
    sent = []
    ctx2 = make_ctx(hooks=[("before-call.ec2.*", lambda model, **kw: sent.append(model.name))])
    planned = runner.teardown_plan(ctx2, runner.resolve(NETWORK))
    assert [(c.action, c.kind) for c in planned.changes] == [(Action.DELETE, "internet gateway")] + [(Action.DELETE, "subnet")] * 4 + [(Action.REPORT, "vpc")]
    assert planned.changes[-1].note == (
        f"kept: it holds subnet(s) env stg does not own (someones-own {theirs}), and AWS deletes no VPC with subnets; "
        "delete them if nobody needs them (aws ec2 delete-subnet --subnet-id ID), then `awsprac destroy --env stg` again")
    assert runner.destroy(ctx2, runner.resolve(NETWORK), planned).ok
    assert "DeleteVpc" not in sent and sent.count("DeleteSubnet") == 4
    assert client.describe_subnets(SubnetIds=[theirs])["Subnets"] and client.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
    client.delete_subnet(SubnetId=theirs)
    assert [(c.action, c.id) for c in runner.teardown_plan(make_ctx(), runner.resolve(NETWORK)).changes] == [(Action.DELETE, vpc_id)]


def test_teardown_leaves_a_same_named_but_unowned_resource(ctx, make_ctx):
    client = ec2()
    spec = [{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "aws-practice-stg"}]}]
    vpc_id = client.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=spec)["Vpc"]["VpcId"]
    planned = runner.teardown_plan(ctx, runner.resolve(NETWORK))
    assert [(c.action, c.id) for c in planned.changes] == [(Action.REPORT, vpc_id)]
    assert "left alone: not tagged awsprac:env=stg" in planned.changes[0].note
    runner.destroy(ctx, runner.resolve(NETWORK), planned)
    assert client.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]


def test_teardown_of_an_already_deleted_resource_is_success(ctx, make_ctx):
    up(ctx)
    ctx2 = make_ctx()
    planned = runner.teardown_plan(ctx2, runner.resolve(NETWORK))
    ec2().delete_subnet(SubnetId=ctx2.observed["subnets"].subnets["public-subnet-1a-stg"].id)
    assert runner.destroy(ctx2, runner.resolve(NETWORK), planned).ok
