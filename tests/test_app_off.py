"""Switching the app tier off after it was built (step app-off): `plan` lists its removal, `up` removes it in
the order AWS requires (proved by the strict layer, which refuses a group still used by a load balancer, a
live service or another group's rule), the log group is kept, the next look is converged and reads nothing
more than before; `destroy` with the tier off removes it too. In-process moto."""

import dataclasses
from collections import Counter

import pytest

from awsprac.engine import runner
from awsprac.engine.plan import Action

from app_helpers import ALB, BACKEND, EXEC_ROLE, LOGS, POLICY, TIER, app_cfg, app_env, client, push_image  # noqa: F401
from conftest import build
from db_helpers import Recorder
from test_converged_reads import CONVERGED_READS, look

STEPS = TIER + ["rds", "db-ingress", "app-off"]
DB_SG = "aws-practice-db-stg"
OFF = "[app] enabled = false"
# The writes that show AWS's order (the rest: tags, policy detaching, waits' reads).
ORDERED = ("UpdateService", "DeleteService", "DeregisterTaskDefinition", "DeleteCluster", "DeleteListener", "DeleteTargetGroup",
           "DeleteLoadBalancer", "RevokeSecurityGroupIngress", "DeleteSecurityGroup", "DeleteRole", "DeletePolicy", "DeleteLogGroup")
REMOVAL = [
    "UpdateService", "DeleteService", "DeregisterTaskDefinition", "DeleteCluster",  # service at 0, deleted (waited inactive)
    "DeleteListener", "DeleteTargetGroup", "DeleteLoadBalancer",  # then the front (waited until gone)
    "RevokeSecurityGroupIngress",  # the DB's rule from the backend: only once nothing runs that uses it
    "DeleteSecurityGroup", "DeleteSecurityGroup",  # backend, then ALB
    "DeletePolicy", "DeleteRole", "DeleteRole",  # the roles last: what a removal stopped on the way is noticed by
]


@pytest.fixture(autouse=True)
def instant_waits(clock):
    pass


def configs(cfg):
    """The tier on and off; no NAT built here, so no tunnel rule (the DB's rules: only the backend's)."""
    on = dataclasses.replace(app_cfg(cfg), database=dataclasses.replace(cfg.database, tunnel=False))
    return on, dataclasses.replace(on, app=dataclasses.replace(on.app, enabled=False))


def group_id(name):
    found = client("ec2").describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    return found[0]["GroupId"] if found else None


def db_rule_sources():
    db = client("ec2").describe_security_groups(GroupIds=[group_id(DB_SG)])["SecurityGroups"][0]
    return [pair["GroupId"] for p in db["IpPermissions"] for pair in p.get("UserIdGroupPairs", [])]


def tier_left():
    """What of the tier still exists (the log group apart)."""
    ecs, elb, iam = client("ecs"), client("elbv2"), client("iam")
    left = [s["serviceName"] for s in ecs.describe_services(cluster=BACKEND, services=[BACKEND])["services"] if s["status"] != "INACTIVE"] \
        if any(c["status"] == "ACTIVE" for c in ecs.describe_clusters(clusters=[BACKEND])["clusters"]) else []
    left += [f"cluster {c['clusterName']}" for c in ecs.describe_clusters(clusters=[BACKEND])["clusters"] if c["status"] == "ACTIVE"]
    left += ecs.list_task_definitions(familyPrefix=BACKEND, status="ACTIVE")["taskDefinitionArns"]
    left += [lb["LoadBalancerName"] for lb in elb.describe_load_balancers()["LoadBalancers"]]
    left += [tg["TargetGroupName"] for tg in elb.describe_target_groups()["TargetGroups"]]
    left += [f"group {n}" for n in (BACKEND, ALB) if group_id(n)]
    left += [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] in (EXEC_ROLE, BACKEND)]
    left += [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"] if p["PolicyName"] == POLICY]
    return left


def log_group_exists():
    return [g["logGroupName"] for g in client("logs").describe_log_groups(logGroupNamePrefix=LOGS)["logGroups"]] == [LOGS]


def in_order(sent, tier_groups):
    """The ordered writes of the tier's removal (security groups: the tier's own; other steps may go meanwhile)."""
    return [n for n, params in sent.sent if n in ORDERED and (n != "DeleteSecurityGroup" or params["GroupId"] in tier_groups)]


def test_off_plans_the_removal_up_applies_it_in_aws_order_and_the_next_up_writes_nothing(app_env, cfg, strict_aws):
    on, off = configs(cfg)
    push_image("abc1234")
    build(app_env(config=on), STEPS)
    backend, tier_groups = group_id(BACKEND), {group_id(BACKEND), group_id(ALB)}
    assert db_rule_sources() == [backend]

    steps = runner.resolve(STEPS)
    planned = runner.plan(app_env(config=off), steps)
    assert [(c.step, c.action, c.kind, c.name) for c in planned.changes] == [
        ("app-off", Action.DELETE, "ECS service", BACKEND),
        ("app-off", Action.DELETE, "task definition", BACKEND),
        ("app-off", Action.DELETE, "ECS cluster", BACKEND),
        ("app-off", Action.DELETE, "listener", f"{ALB}:80"),
        ("app-off", Action.DELETE, "target group", BACKEND),
        ("app-off", Action.DELETE, "load balancer", ALB),
        ("app-off", Action.DELETE, "security group rule", f"{DB_SG} from {BACKEND}"),
        ("app-off", Action.DELETE, "security group", BACKEND),
        ("app-off", Action.DELETE, "security group", ALB),
        ("app-off", Action.DELETE, "IAM policy", POLICY),
        ("app-off", Action.DELETE, "IAM role", EXEC_ROLE),
        ("app-off", Action.DELETE, "IAM role", BACKEND),
        ("app-off", Action.REPORT, "log group", LOGS),
    ]
    assert all(c.note.endswith(OFF) for c in planned.changes if c.action is Action.DELETE)
    kept = planned.changes[-1]
    assert kept.note == "kept: logs are data; `awsprac destroy --env stg --force` removes them"
    # status shows what still stands and is to go, not nothing
    rows = runner.status(app_env(config=off), steps)
    assert [(r.kind, r.name) for r in rows if r.sync == "to be removed"] == [(c.kind, c.name) for c in planned.changes if c.action is Action.DELETE]

    sent = Recorder()
    outcome = runner.apply(app_env(config=off, hooks=[sent.hook]), steps, planned, confirmed=True)
    assert outcome.ok, outcome.failed
    assert strict_aws.refused == []  # no group deleted while a load balancer, a service or a rule held it
    assert in_order(sent, tier_groups) == REMOVAL
    assert sent.of("RevokeSecurityGroupIngress")[0]["GroupId"] == group_id(DB_SG)
    assert db_rule_sources() == [] and tier_left() == [] and log_group_exists()

    again = Recorder()
    ctx = app_env(config=off, hooks=[again.hook])
    assert runner.plan(ctx, steps).changes == []
    assert runner.apply(ctx, steps, runner.plan(ctx, steps)).applied == [] and again.writes == []


def test_destroy_with_the_tier_off_removes_it_too_and_with_force_its_logs(app_env, cfg, strict_aws):
    on, off = configs(cfg)
    push_image("abc1234")
    build(app_env(config=on), STEPS)
    tier_groups = {group_id(BACKEND), group_id(ALB)}

    steps = runner.resolve(STEPS)
    sent = Recorder()
    ctx = app_env(config=off, hooks=[sent.hook])
    planned = runner.teardown_plan(ctx, steps)
    mine = [(c.action, c.kind) for c in planned.changes if c.step == "app-off"]
    assert len(mine) == 13 and mine[-1] == (Action.REPORT, "log group")
    assert [c.step for c in planned.changes if c.kind == "security group rule"] == ["app-off"]  # not db-ingress's too
    outcome = runner.destroy(ctx, steps, planned, confirmed=True)
    assert outcome.ok, outcome.failed
    assert strict_aws.refused == []
    assert in_order(sent, tier_groups) == REMOVAL
    assert tier_left() == [] and log_group_exists() and group_id(DB_SG) is None

    # Nothing of the tier's groups left to notice it by: destroy still finds the log group, and --force removes it.
    forced = app_env(config=off, force=True)
    planned = runner.teardown_plan(forced, steps)
    assert [(c.action, c.kind, c.name) for c in planned.changes if c.step == "app-off"] == [(Action.DELETE, "log group", LOGS)]
    assert runner.destroy(forced, steps, planned, confirmed=True).ok
    assert not log_group_exists()
    assert runner.teardown_plan(app_env(config=off, force=True), steps).changes == []  # nothing owned left


def test_a_converged_look_with_the_tier_off_reads_no_more_than_before_it_was_built(app_env, make_ctx, cfg, calls):
    """The whole stg env with the tier built, switched off and removed: its look reads what it always did
    (test_converged_reads.CONVERGED_READS); the tier's groups were in the VPC's one read of its groups."""
    push_image("abc1234")
    build(app_env(config=app_cfg(cfg)))
    removal = build(app_env(config=cfg))  # envs/stg.toml: the tier off
    assert {c.step for c in removal.changes} == {"app-off"}
    assert tier_left() == []
    _, planned = look(make_ctx, calls)
    assert planned.changes == []
    assert Counter(calls.names) == CONVERGED_READS


def test_doctor_says_a_tier_switched_off_still_stands_and_not_that_its_parts_are_orphans(app_env, cfg, capsys):
    """Through `awsprac doctor --env stg` (in-process): envs/stg.toml has the tier off."""
    import json

    from conftest import ENVS, run_cli

    push_image("abc1234")
    build(app_env(config=configs(cfg)[0]), STEPS)
    code, out, err = run_cli(capsys, "doctor", "--env", "stg", "--json", envs=ENVS)
    found = {(f["check"], f["resource"]): f for f in json.loads(out)["findings"]}
    assert code == 1
    (standing,) = [f for (check, _), f in found.items() if check == "app tier"]
    assert standing["resource"].startswith(f"security group {ALB} (sg-") and f", {BACKEND} (sg-" in standing["resource"]
    assert standing["fix"].startswith("`awsprac up --env stg` removes it")
    assert [key for key in found if key[0] == "orphans"] == []


@pytest.mark.parametrize("stop_after", ["DeleteSecurityGroup", "DeletePolicy", "DeleteRole"])
def test_a_removal_stopped_after_the_groups_went_is_finished_by_the_next_up(app_env, cfg, strict_aws, stop_after):
    """A run stopped once the tier's groups are gone (right after the last of them, the policy, the first
    role): the next `up` still notices what is left (the roles are in the account's IAM read every look
    makes) and removes it."""
    on, off = configs(cfg)
    push_image("abc1234")
    build(app_env(config=on), STEPS)
    seen = []

    def stopped(model, **kwargs):
        if model.name == stop_after:
            seen.append(model.name)
            if model.name != "DeleteSecurityGroup" or len(seen) == 2:  # the tier's two groups: only they go here
                raise RuntimeError(f"stopped right after {model.name}")

    steps = runner.resolve(STEPS)
    crashing = app_env(config=off, hooks=[("after-call.*.*", stopped)])
    assert not runner.apply(crashing, steps, runner.plan(crashing, steps)).ok
    assert group_id(BACKEND) is None and group_id(ALB) is None  # what the first look noticed the tier by is gone

    again = app_env(config=off)
    planned = runner.plan(again, steps)
    assert planned.changes and {c.kind for c in planned.changes if c.action is Action.DELETE} <= {"IAM role", "IAM policy"}
    assert runner.apply(again, steps, planned).ok
    assert tier_left() == [] and strict_aws.refused == []
    assert runner.plan(app_env(config=off), steps).changes == []
