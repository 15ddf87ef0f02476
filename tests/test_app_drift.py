"""Drift in the app tier that decides whether a new task definition revision is registered: the roles the
task definition names (a new revision, the service moved to it) and the load balancer's subnets (fixed on
the load balancer, no revision). In-process moto."""

import pytest

from awsprac.engine import runner
from awsprac.engine.plan import Action

from app_helpers import ACCOUNT, ALB, BACKEND, EXEC_ROLE, TIER, app_env, client, push_image  # noqa: F401
from conftest import build
from db_helpers import Recorder

REGISTERED = ("cpu", "memory", "networkMode", "requiresCompatibilities", "runtimePlatform", "containerDefinitions")


@pytest.fixture(autouse=True)
def instant_waits(clock):
    pass


def role(name):
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def service():
    return client("ecs").describe_services(cluster=BACKEND, services=[BACKEND])["services"][0]


def app_changes(ctx):
    return [c for c in runner.plan(ctx, runner.resolve(TIER)).changes if c.step.startswith("app")]


def test_a_task_definition_naming_other_roles_gets_a_new_revision_and_the_service_moves_to_it(app_env):
    push_image("abc1234")
    build(app_env(), TIER)
    ecs = client("ecs")
    current = ecs.describe_task_definition(taskDefinition=service()["taskDefinition"], include=["TAGS"])
    # What a hand-made revision (the guide's console steps) names: AWS's default execution role, another task role.
    td = current["taskDefinition"]
    by_hand = ecs.register_task_definition(family=BACKEND, **{k: td[k] for k in REGISTERED}, tags=current["tags"],
                                           executionRoleArn=role("ecsTaskExecutionRole"), taskRoleArn=role("my-api-task-role"))
    ecs.update_service(cluster=BACKEND, service=BACKEND, taskDefinition=by_hand["taskDefinition"]["taskDefinitionArn"])
    assert service()["taskDefinition"].endswith(":2")

    changes = app_changes(app_env())
    assert [(c.action, c.kind) for c in changes] == [(Action.UPDATE, "task definition"), (Action.UPDATE, "ECS service")]
    revision, moved = changes
    assert {f.field: (f.have, f.want) for f in revision.fields} == {
        "executionRoleArn": (role("ecsTaskExecutionRole"), role(EXEC_ROLE)),
        "taskRoleArn": (role("my-api-task-role"), role(BACKEND)),
    }
    assert revision.note == "registers a new revision"
    assert [(f.field, f.want) for f in moved.fields] == [("task definition", "(new revision)")]

    sent = Recorder()
    build(app_env(hooks=[sent.hook]), TIER)
    (registered,) = sent.of("RegisterTaskDefinition")
    assert (registered["executionRoleArn"], registered["taskRoleArn"]) == (role(EXEC_ROLE), role(BACKEND))
    assert registered["containerDefinitions"][0]["image"] == td["containerDefinitions"][0]["image"]  # only the roles changed
    assert service()["taskDefinition"].endswith(":3")
    assert [u["taskDefinition"] for u in sent.of("UpdateService")] == [service()["taskDefinition"]]
    assert app_changes(app_env()) == []


def test_the_load_balancers_subnets_are_set_on_it_without_a_new_revision(app_env):
    push_image("abc1234")
    build(app_env(), TIER)
    ec2, elb = client("ec2"), client("elbv2")
    subnets = {next(t["Value"] for t in s["Tags"] if t["Key"] == "Name"): s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "tag:Name", "Values": ["public-subnet-1a-stg", "public-subnet-1c-stg", "private-subnet-1c-stg"]}])["Subnets"]}
    public = {name: id for name, id in subnets.items() if name.startswith("public")}
    lb = elb.describe_load_balancers(Names=[ALB])["LoadBalancers"][0]["LoadBalancerArn"]
    elb.set_subnets(LoadBalancerArn=lb, Subnets=[public["public-subnet-1a-stg"], subnets["private-subnet-1c-stg"]])  # by hand, by mistake

    (change,) = app_changes(app_env())
    assert (change.action, change.kind, change.name) == (Action.UPDATE, "load balancer", ALB)
    assert [f.field for f in change.fields] == ["subnets"]
    assert change.fields[0].want == f"{public['public-subnet-1a-stg']}, {public['public-subnet-1c-stg']}"

    sent = Recorder()
    build(app_env(hooks=[sent.hook]), TIER)
    assert sent.of("SetSubnets") == [{"LoadBalancerArn": lb, "Subnets": [public["public-subnet-1a-stg"], public["public-subnet-1c-stg"]]}]
    assert sent.of("RegisterTaskDefinition") == [] and sent.of("UpdateService") == []
    zones = elb.describe_load_balancers(LoadBalancerArns=[lb])["LoadBalancers"][0]["AvailabilityZones"]
    assert sorted(z["SubnetId"] for z in zones) == sorted(public.values())
    assert service()["taskDefinition"].endswith(":1")
    assert app_changes(app_env()) == []
