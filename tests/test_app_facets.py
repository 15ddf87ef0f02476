"""The app tier's other facets on in-process moto: status and outputs, stop/start, cost, export, doctor.
These only read: they share one built tier (`shared_tier`); stop/start, which writes, is in test_app_park.py."""

from awsprac.engine import runner

from awsprac.commands import cost, doctor, export as terraform
from awsprac.engine import prices
from awsprac.engine.terraform import render
from awsprac.steps.app import service as app_service

from app_helpers import ALB, BACKEND, TIER, client, shared_tier  # noqa: F401
from db_helpers import Fail


def test_outputs_give_the_url_and_status_shows_every_resource_in_sync(shared_tier):
    built = shared_tier
    ctx = built()
    outputs = runner.outputs(ctx, runner.resolve(TIER))
    dns = client("elbv2").describe_load_balancers(Names=[ALB])["LoadBalancers"][0]["DNSName"]
    assert outputs["app_url"] == f"http://{dns}"
    assert outputs["ecs_service"] == outputs["ecs_cluster"] == BACKEND and outputs["image_tag"] == "abc1234"
    rows = [r for r in runner.status(built(), runner.resolve(TIER)) if r.step.startswith("app")]
    assert len(rows) == 13 and {r.sync for r in rows if r.kind != "service-linked role"} == {"in sync"}
    (service_row,) = [r for r in rows if r.kind == "ECS service"]
    assert service_row.state.startswith("ACTIVE 1/1 running")


def test_cost_adds_fargate_and_the_alb_which_bills_while_parked(shared_tier):
    built = shared_tier
    p = prices.price_table("ap-northeast-1")
    h = p["hours_per_month"]
    fargate = round(h * (0.25 * p["fargate"]["vcpu_hour"] + 0.5 * p["fargate"]["gb_hour"]), 2)
    alb = round(h * (p["alb"]["hour"] + 1.0 * p["alb"]["lcu_hour"] + 2 * p["public_ipv4_hour"]), 2)
    result = cost.estimate(built())
    lines = {r["kind"]: r for r in result["resources"]}
    assert (lines["Fargate tasks"]["running"], lines["Fargate tasks"]["parked"]) == (fargate, 0.0)
    assert lines["load balancer"]["running"] == lines["load balancer"]["parked"] == alb
    assert "keeps billing while parked" in lines["load balancer"]["basis"]
    assert lines["Fargate tasks"]["now"] == fargate  # running (parked: test_app_park.py)


def test_export_describes_every_resource_with_its_import_id(shared_tier):
    built = shared_tier
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
    text = render(next(f for f in exported.files if f.name == "app.tf"))
    assert 'resource "aws_ecs_service" "backend"' in text and "deployment_circuit_breaker" in text


def test_doctor_says_when_there_is_no_image_and_is_quiet_when_there_is(shared_tier):
    built = shared_tier
    assert [f for f in doctor.examine(built(), checks=(doctor.check_account, *app_service.doctor_checks))] == []
    # all checks, the family's found through the registry
    assert "app image" not in {f.check for f in doctor.examine(built())}
    no_tag = Fail("GetParameter", "ParameterNotFound", "not there", times=None)  # as if never recorded (read-only)
    (finding,) = doctor.examine(built(hooks=[no_tag.hook]), checks=app_service.doctor_checks)
    assert finding.check == "app image" and "--record-tag" in finding.fix
