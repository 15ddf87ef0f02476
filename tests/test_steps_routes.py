"""Step routes against in-process moto: docs/reference.md section 4, routes reconciled by destination, the main table
taken and given back, associations moved. A blackhole route (moto never shows one) is injected."""

import boto3
import pytest

from awsprac.engine import runner, tags
from awsprac.engine.errors import AmbiguousResource
from awsprac.engine.plan import Action

from conftest import build

REGION = "ap-northeast-1"
OWNED = {"awsprac:project": "aws-practice", "awsprac:env": "stg"}
# docs/reference.md sections 2-4: these steps and their prerequisites (the database's steps have their own tests).
STEPS = ["vpc", "subnets", "igw", "public-routes", "nat-iam", "nat", "routes"]
PUBLIC, PRIVATE = "aws-practice-rtb-public-stg", "aws-practice-rtb-private-stg"


def ec2():
    return boto3.client("ec2", region_name=REGION)


def up(ctx, names=None):
    return build(ctx, names or STEPS)


def plan(make_ctx, names=None, **kw):
    return runner.plan(make_ctx(**kw), runner.resolve(names or STEPS)).changes


def tables(vpc_id):
    return ec2().describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]


def table(name):
    (found,) = ec2().describe_route_tables(Filters=[{"Name": "tag:Name", "Values": [name]}])["RouteTables"]
    return found


def main_of(vpc_id):
    for t in tables(vpc_id):
        for a in t["Associations"]:
            if a.get("Main"):
                return t["RouteTableId"], a["RouteTableAssociationId"]


def default_route(t):
    return next((r for r in t["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"), None)


@pytest.fixture(autouse=True)
def instant_waits(clock):
    """Nothing in this module may really wait (a wrong DependencyViolation would otherwise take 10 minutes)."""


@pytest.fixture
def built(ctx):
    """A whole env, and the facts the tests compare against."""
    original_main = None
    up(ctx, ["vpc"])
    vpc_id = ctx.observed["vpc"].id
    original_main = main_of(vpc_id)[0]
    up(ctx)
    nat = ctx.observed["nat"]
    return {
        "vpc": vpc_id, "original_main": original_main, "igw": ctx.observed["igw"].id,
        "eni": nat.interface, "instance": nat.instance.id,
        "subnets": {n: f.id for n, f in ctx.observed["subnets"].subnets.items()},
    }


def test_up_builds_spec_section_4(built):
    public, private = table(PUBLIC), table(PRIVATE)
    assert default_route(public)["GatewayId"] == built["igw"]
    assert default_route(private)["NetworkInterfaceId"] == built["eni"]
    subnets = built["subnets"]
    assert sorted(a["SubnetId"] for a in public["Associations"] if a.get("SubnetId")) == sorted([subnets["public-subnet-1a-stg"], subnets["public-subnet-1c-stg"]])
    assert sorted(a["SubnetId"] for a in private["Associations"] if a.get("SubnetId")) == sorted([subnets["private-subnet-1a-stg"], subnets["private-subnet-1c-stg"]])
    assert main_of(built["vpc"])[0] == private["RouteTableId"]
    assert tags.as_dict(public["Tags"]) == {"Name": PUBLIC, **OWNED}
    assert tags.as_dict(private["Tags"]) == {"Name": PRIVATE, **OWNED, "awsprac:original-main-route-table": built["original_main"]}


def test_a_route_pointed_elsewhere_is_replaced(built, make_ctx):
    private = table(PRIVATE)["RouteTableId"]
    ec2().replace_route(RouteTableId=private, DestinationCidrBlock="0.0.0.0/0", GatewayId=built["igw"])
    (change,) = plan(make_ctx)
    assert (change.action, change.name) == (Action.UPDATE, PRIVATE)
    assert [str(f) for f in change.fields] == [f"route 0.0.0.0/0: {built['igw']} -> {built['eni']} (NAT instance {built['instance']})"]
    up(make_ctx())
    assert default_route(table(PRIVATE))["NetworkInterfaceId"] == built["eni"]
    assert plan(make_ctx) == []


def test_a_deleted_route_is_created_again(built, make_ctx):
    ec2().delete_route(RouteTableId=table(PUBLIC)["RouteTableId"], DestinationCidrBlock="0.0.0.0/0")
    (change,) = plan(make_ctx)
    assert [str(f) for f in change.fields] == [f"route 0.0.0.0/0: (none) -> {built['igw']}"]
    up(make_ctx())
    assert default_route(table(PUBLIC))["GatewayId"] == built["igw"] and plan(make_ctx) == []


def test_a_blackhole_route_is_replaced(built, make_ctx):
    """AWS shows a route to a terminated NAT as blackhole (moto keeps it active): injected."""

    def blackhole(parsed, model, **kwargs):
        for t in parsed.get("RouteTables", []):
            for r in t.get("Routes", []):
                if r.get("NetworkInterfaceId") == built["eni"] and not sent:
                    r["State"] = "blackhole"

    sent = []
    hooks = [("after-call.ec2.DescribeRouteTables", blackhole), ("provide-client-params.ec2.ReplaceRoute", lambda params, **kw: sent.append(params))]
    (change,) = plan(make_ctx, hooks=hooks)
    assert [str(f) for f in change.fields] == [f"route 0.0.0.0/0: {built['eni']} (blackhole) -> {built['eni']} (NAT instance {built['instance']})"]
    up(make_ctx(hooks=hooks))
    assert sent == [{"RouteTableId": table(PRIVATE)["RouteTableId"], "DestinationCidrBlock": "0.0.0.0/0", "NetworkInterfaceId": built["eni"]}]


def test_an_instance_id_route_is_the_same_target_as_its_interface(built, make_ctx, calls):
    ec2().replace_route(RouteTableId=table(PRIVATE)["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", InstanceId=built["instance"])
    assert default_route(table(PRIVATE)).get("NetworkInterfaceId") is None  # moto shows the instance id only
    assert plan(make_ctx) == []


def test_the_main_table_switched_back_by_hand_is_taken_again(built, make_ctx):
    client = ec2()
    main, association = main_of(built["vpc"])
    client.replace_route_table_association(AssociationId=association, RouteTableId=built["original_main"])
    (change,) = plan(make_ctx)
    assert [str(f) for f in change.fields] == [f"main route table of the VPC: {built['original_main']} -> {PRIVATE}"]
    up(make_ctx())
    assert main_of(built["vpc"])[0] == table(PRIVATE)["RouteTableId"]
    assert tags.as_dict(table(PRIVATE)["Tags"])["awsprac:original-main-route-table"] == built["original_main"]
    assert plan(make_ctx) == []


def test_a_subnet_moved_to_another_table_is_moved_back(built, make_ctx):
    client = ec2()
    subnet = built["subnets"]["public-subnet-1c-stg"]
    association = next(a for a in table(PUBLIC)["Associations"] if a.get("SubnetId") == subnet)
    other = client.create_route_table(VpcId=built["vpc"])["RouteTable"]["RouteTableId"]
    client.replace_route_table_association(AssociationId=association["RouteTableAssociationId"], RouteTableId=other)
    private_subnet = built["subnets"]["private-subnet-1a-stg"]
    private_association = next(a for a in table(PRIVATE)["Associations"] if a.get("SubnetId") == private_subnet)
    client.disassociate_route_table(AssociationId=private_association["RouteTableAssociationId"])

    changes = plan(make_ctx)
    assert [(c.name, [str(f) for f in c.fields]) for c in changes] == [
        (PUBLIC, [f"subnet public-subnet-1c-stg: {other} -> {PUBLIC}"]),
        (PRIVATE, [f"subnet private-subnet-1a-stg: (main table) -> {PRIVATE}"]),
    ]
    up(make_ctx())
    assert subnet in [a.get("SubnetId") for a in table(PUBLIC)["Associations"]]
    assert private_subnet in [a.get("SubnetId") for a in table(PRIVATE)["Associations"]]
    assert plan(make_ctx) == []


def test_hand_made_tables_are_adopted(ctx, make_ctx):
    up(ctx, ["vpc", "subnets", "igw", "nat-iam", "nat"])
    vpc_id = ctx.observed["vpc"].id
    made = ec2().create_route_table(VpcId=vpc_id, TagSpecifications=[{"ResourceType": "route-table", "Tags": [{"Key": "Name", "Value": PUBLIC}]}])["RouteTable"]["RouteTableId"]
    changes = plan(make_ctx)
    assert [(c.action, c.name, c.id) for c in changes] == [(Action.ADOPT, PUBLIC, made), (Action.CREATE, PRIVATE, None)]
    up(make_ctx())
    assert table(PUBLIC)["RouteTableId"] == made and plan(make_ctx) == []


def test_two_tables_with_one_name_is_an_error(built, make_ctx):
    ec2().create_route_table(VpcId=built["vpc"], TagSpecifications=[{"ResourceType": "route-table", "Tags": [{"Key": "Name", "Value": PRIVATE}]}])
    with pytest.raises(AmbiguousResource, match=f"2 route tables are named '{PRIVATE}'"):
        plan(make_ctx)


def test_route_table_creates_carry_a_token_and_their_tags(make_ctx):
    sent = []
    up(make_ctx(hooks=[("provide-client-params.ec2.CreateRouteTable", lambda params, **kw: sent.append(params))]))
    assert len(sent) == 2 and len({p["ClientToken"] for p in sent}) == 2
    assert all(OWNED.items() <= tags.as_dict(p["TagSpecifications"][0]["Tags"]).items() for p in sent)


def test_teardown_of_routes_gives_the_main_role_back(built, make_ctx):
    ctx = make_ctx()
    steps = runner.resolve(["public-routes", "routes"])
    planned = runner.teardown_plan(ctx, steps)
    assert [(c.action, c.name) for c in planned.changes] == [(Action.DELETE, PRIVATE), (Action.DELETE, PUBLIC)]
    assert runner.destroy(ctx, steps, planned).ok
    assert main_of(built["vpc"])[0] == built["original_main"]
    assert [t["RouteTableId"] for t in tables(built["vpc"])] == [built["original_main"]]
    assert runner.teardown_plan(make_ctx(), steps).changes == []


def test_teardown_when_the_original_main_table_is_gone_uses_another(built, make_ctx):
    client = ec2()
    spare = client.create_route_table(VpcId=built["vpc"])["RouteTable"]["RouteTableId"]
    client.delete_route_table(RouteTableId=built["original_main"])
    ctx = make_ctx()
    steps = runner.resolve(["public-routes", "routes"])
    assert runner.destroy(ctx, steps, runner.teardown_plan(ctx, steps)).ok
    assert main_of(built["vpc"])[0] == spare


def test_teardown_with_no_table_to_take_the_main_role_leaves_it_to_the_vpc(built, make_ctx, clock):
    """The main table cannot be deleted; AWS deletes it with the VPC. (moto refuses that VPC delete: not run here.)"""
    ec2().delete_route_table(RouteTableId=built["original_main"])
    ctx = make_ctx()
    steps = runner.resolve(["public-routes", "routes"])
    planned = runner.teardown_plan(ctx, steps)
    assert [(c.action, c.name) for c in planned.changes] == [(Action.REPORT, PRIVATE), (Action.DELETE, PUBLIC)]
    assert "it is the VPC's main route table and no other table can take that role; it goes with the VPC" in planned.changes[0].note
    assert runner.destroy(ctx, steps, planned).ok
    assert [t["RouteTableId"] for t in tables(built["vpc"])] == [table(PRIVATE)["RouteTableId"]]


def test_the_public_table_is_made_first_then_the_private_tables_route_and_associations_are_written_at_once(ctx, make_ctx):
    """The public table, its route and associations exist before the NAT (step public-routes, a prerequisite
    of step nat). The private table's four writes after its create (route, 2 associations, the main
    association) go at once: proven with a barrier, which only passes when that many calls wait at it."""
    import threading

    up(ctx, ["vpc", "subnets", "igw", "public-routes"])
    assert table(PUBLIC)["Associations"] and [r for r in table(PUBLIC)["Routes"] if r.get("GatewayId", "").startswith("igw-")]
    up(make_ctx(), ["nat-iam", "nat"])
    rest = threading.Barrier(4, timeout=60)
    seen = []

    def hook(model, **kwargs):
        seen.append(model.name)
        rest.wait()

    hooks = [(f"before-call.ec2.{name}", hook) for name in ("CreateRoute", "AssociateRouteTable", "ReplaceRouteTableAssociation")]
    up(make_ctx(hooks=hooks), ["routes"])
    assert sorted(seen) == sorted(["CreateRoute"] + ["AssociateRouteTable"] * 2 + ["ReplaceRouteTableAssociation"])
    assert plan(make_ctx) == []
