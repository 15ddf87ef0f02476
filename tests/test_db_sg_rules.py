"""Step db-ingress: the DB security group lets the NAT instance's group in on 5432 while `database.tunnel`
is on (stg's default), described `db tunnel`: made by `up` (the plan shows it), removed by `up` when the
setting is off, kept apart from rules added by hand, revoked first on destroy. A step after nat and rds:
step rds alone never waits for the NAT's group."""

from __future__ import annotations

import dataclasses

import pytest

from awsprac.engine.plan import Action

from db_helpers import client, destroy, plan, up

BUILD = ["vpc", "subnets", "igw", "nat-iam", "nat", "secrets", "rds", "db-ingress"]
DB_SG, NAT_SG = "aws-practice-db-stg", "aws-practice-nat-stg"


def group(name: str) -> dict:
    groups = client("ec2").describe_security_groups(Filters=[{"Name": "tag:Name", "Values": [name]}])["SecurityGroups"]
    return groups[0] if groups else {}


def inbound_from_groups() -> list[tuple]:
    return [(p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), pair["GroupId"], pair.get("Description"))
            for p in group(DB_SG)["IpPermissions"] for pair in p.get("UserIdGroupPairs", [])]


def rule_changes(ctx):
    return [c for c in plan(ctx, BUILD).changes if c.step == "db-ingress"]


def sg_changes(ctx):
    return [c for c in plan(ctx, BUILD).changes if c.step == "rds" and c.kind == "security group"]


@pytest.fixture
def built(ctx, clock):
    planned = up(ctx, BUILD)
    return ctx, planned


def test_up_lets_the_nat_group_in_on_5432_described_db_tunnel_and_the_plan_said_so(built):
    ctx, planned = built
    (create,) = [c for c in planned.changes if c.step == "db-ingress"]
    assert (create.action, create.kind, create.name) == (Action.CREATE, "security group rule", f"{DB_SG} from {NAT_SG}")
    assert "inbound = tcp 5432 from aws-practice-nat-stg (db tunnel)" in create.details()
    assert inbound_from_groups() == [("tcp", 5432, 5432, group(NAT_SG)["GroupId"], "db tunnel")]
    assert rule_changes(ctx) == [] and sg_changes(ctx) == []  # converged; not a rule "added by hand" for step rds


def test_tunnel_off_removes_the_rule_and_the_plan_shows_it(built, make_ctx, cfg, clock):
    off = dataclasses.replace(cfg, database=dataclasses.replace(cfg.database, tunnel=False))
    ctx = make_ctx(off)
    (change,) = rule_changes(ctx)
    assert (change.action, change.name) == (Action.DELETE, f"{DB_SG} from {NAT_SG}")
    assert change.details() == ["tcp 5432 (db tunnel): database.tunnel does not ask for it"]
    up(ctx, BUILD)
    assert inbound_from_groups() == []
    assert rule_changes(ctx) == [] and sg_changes(ctx) == []
    # And back on: up adds it again.
    up(make_ctx(), BUILD)
    assert len(inbound_from_groups()) == 1


def test_a_rule_added_by_hand_is_reported_and_prune_keeps_the_tunnel_rule(built, make_ctx, clock):
    ctx, _ = built
    client("ec2").authorize_security_group_ingress(GroupId=group(DB_SG)["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}])
    (report,) = sg_changes(ctx)
    assert report.action is Action.REPORT and "203.0.113.7/32" in str(report.fields[0]) and NAT_SG not in str(report.fields[0])
    up(make_ctx(prune=True), BUILD)
    permissions = group(DB_SG)["IpPermissions"]
    assert not any(p.get("IpRanges") for p in permissions)
    assert len(inbound_from_groups()) == 1


def test_destroy_revokes_the_rule_first(built, make_ctx, clock):
    ctx, _ = built
    planned, outcome = destroy(make_ctx())
    assert outcome.ok, outcome.failed
    (rule,) = [c for c in planned.changes if c.kind == "security group rule"]
    assert (rule.step, rule.action, rule.name, rule.note) == ("db-ingress", Action.DELETE, f"{DB_SG} from {NAT_SG}", "tcp 5432 from aws-practice-nat-stg")
    # First: before any delete of step nat (its group) or step rds (the DB's group).
    order = [(c.step, c.kind) for c in outcome.applied]
    first_group = min(i for i, (step, _) in enumerate(order) if step in ("nat", "rds"))
    assert order.index(("db-ingress", "security group rule")) < first_group
    assert group(DB_SG) == {} and group(NAT_SG) == {}


def test_prd_has_no_tunnel_rule_by_default():
    from awsprac import config
    from awsprac.steps.rds import ingress
    from conftest import ENVS

    assert config.load(ENVS, "prd").database.tunnel is False
    assert ingress.desired(config.load(ENVS, "prd")) == []
    assert config.tunnel_default("prd") is False and config.tunnel_default("stg") is True


def test_step_rds_alone_makes_the_db_group_without_the_rule_and_never_waits_for_the_nat_group(ctx, make_ctx, clock):
    """The DB's create does not wait for step nat: the rule is step db-ingress's, after both groups."""
    up(ctx, ["vpc", "subnets", "secrets", "rds"])
    assert group(NAT_SG) == {} and group(DB_SG)["IpPermissions"] == []
    assert sg_changes(make_ctx()) == []
    (create,) = rule_changes(make_ctx())  # a whole `up` would add it once step nat made its group
    assert create.action is Action.CREATE
    up(make_ctx(), BUILD)
    assert inbound_from_groups() == [("tcp", 5432, 5432, group(NAT_SG)["GroupId"], "db tunnel")]
