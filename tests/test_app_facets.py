"""The app tier's other facets on in-process moto: status and outputs, stop/start, cost, export, doctor."""

import pytest

from awsprac import cost, doctor, operate, runner, terraform
from awsprac.steps.app import service as app_service

from app_helpers import ALB, BACKEND, app_env, client, push_image  # noqa: F401
from conftest import Calls, build

TIER = ["vpc", "subnets", "secrets", "ecr", "app-iam", "app-network", "app-alb", "app"]


@pytest.fixture
def built(app_env, clock):
    push_image("abc1234")
    build(app_env(), TIER)
    return app_env


def desired_count():
    return client("ecs").describe_services(cluster=BACKEND, services=[BACKEND])["services"][0]["desiredCount"]


def test_outputs_give_the_url_and_status_shows_every_resource_in_sync(built):
    ctx = built()
    outputs = runner.outputs(ctx, runner.resolve(TIER))
    dns = client("elbv2").describe_load_balancers(Names=[ALB])["LoadBalancers"][0]["DNSName"]
    assert outputs["app_url"] == f"http://{dns}"
    assert outputs["ecs_service"] == outputs["ecs_cluster"] == BACKEND and outputs["image_tag"] == "abc1234"
    rows = [r for r in runner.status(built(), runner.resolve(TIER)) if r.step.startswith("app")]
    assert len(rows) == 13 and {r.sync for r in rows if r.kind != "service-linked role"} == {"in sync"}
    (service_row,) = [r for r in rows if r.kind == "ECS service"]
    assert service_row.state.startswith("ACTIVE 1/1 running")


def test_stop_parks_the_service_first_and_start_brings_it_back(built, capsys):
    build(built(), ["rds"])
    calls = Calls()
    operate.stop(built(hooks=[("before-call.*.*", calls)]))
    assert desired_count() == 0
    assert calls.writes.index("UpdateService") < calls.writes.index("StopDBInstance")  # its tasks use the DB
    assert "keeps billing while the service is parked" in capsys.readouterr().err
    again = Calls()
    operate.stop(built(hooks=[("before-call.*.*", again)]))
    assert [w for w in again.writes if w == "UpdateService"] == []  # already parked: nothing sent
    assert runner.plan(built(), runner.resolve(TIER)).changes == []  # parked is not drift
    started = Calls()
    operate.start(built(hooks=[("before-call.*.*", started)]))
    assert desired_count() == 1
    assert started.writes.index("StartDBInstance") < started.writes.index("UpdateService")


def test_cost_adds_fargate_and_the_alb_which_bills_while_parked(built):
    p = cost.price_table("ap-northeast-1")
    h = p["hours_per_month"]
    fargate = round(h * (0.25 * p["fargate"]["vcpu_hour"] + 0.5 * p["fargate"]["gb_hour"]), 2)
    alb = round(h * (p["alb"]["hour"] + 1.0 * p["alb"]["lcu_hour"] + 2 * p["public_ipv4_hour"]), 2)
    result = cost.estimate(built())
    lines = {r["kind"]: r for r in result["resources"]}
    assert (lines["Fargate tasks"]["running"], lines["Fargate tasks"]["parked"]) == (fargate, 0.0)
    assert lines["load balancer"]["running"] == lines["load balancer"]["parked"] == alb
    assert "keeps billing while parked" in lines["load balancer"]["basis"]
    operate.stop(built())
    parked = {r["kind"]: r for r in cost.estimate(built())["resources"]}
    assert parked["Fargate tasks"]["now"] == 0.0 and parked["load balancer"]["now"] == alb


def test_export_describes_every_resource_with_its_import_id(built):
    exported = terraform.build(built())
    ids = {r.address: r.import_id for r in exported.resources}
    lb = client("elbv2").describe_load_balancers(Names=[ALB])["LoadBalancers"][0]["LoadBalancerArn"]
    assert ids["aws_ecs_service.backend"] == f"{BACKEND}/{BACKEND}"
    assert ids["aws_ecs_cluster.backend"] == BACKEND and ids["aws_lb.main"] == lb
    assert ids["aws_cloudwatch_log_group.backend"] == f"/ecs/{BACKEND}"
    assert ids["aws_iam_policy.secrets_manager_read"].endswith(":policy/secrets-manager-read-stg")
    assert ids["aws_iam_role.task_execution"] == "ecs-task-execution-stg" and ids["aws_iam_role.task"] == BACKEND
    assert {"aws_lb_target_group.backend", "aws_lb_listener.port_80", "aws_ecs_task_definition.backend",
            "aws_security_group.alb", "aws_security_group.backend"} <= set(ids)
    text = terraform.render(next(f for f in exported.files if f.name == "app.tf"))
    assert 'resource "aws_ecs_service" "backend"' in text and "deployment_circuit_breaker" in text


def test_doctor_says_when_there_is_no_image_and_is_quiet_when_there_is(app_env, built):
    assert [f for f in doctor.examine(built(), checks=(doctor.check_account, *doctor.app_doctor.CHECKS))] == []
    client("ssm").delete_parameter(Name=app_service.tag_parameter(built().cfg))
    (finding,) = doctor.examine(built(), checks=doctor.app_doctor.CHECKS)
    assert finding.check == "app image" and "--record-tag" in finding.fix
