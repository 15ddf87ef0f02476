"""End to end with the app tier on: the installed `awsprac` in a subprocess against a moto server.
Without an image, then with one; a second `up` that writes nothing (its reads counted); stop/start;
destroy leaving nothing the env owns."""

import json

import boto3
import pytest

from conftest import is_write

pytestmark = pytest.mark.e2e

BACKEND, ALB = "aws-practice-backend-stg", "aws-practice-alb-stg"
# A converged `up` with the tier on: every call, the account guard's GetCallerIdentity included, at most
# 28 (issue 15): the 19 of an env without the tier, and 9 reads of the tier.
MAX_CONVERGED_CALLS = 28


def client(server, service):
    return boto3.client(service, region_name="ap-northeast-1", endpoint_url=server.endpoint)


def enable_app(awsprac, on: bool = True) -> None:
    path = awsprac.cwd / "envs" / "stg.toml"
    text = path.read_text()
    head, app = text.split("[app]\n", 1)
    before, after = ("enabled = false", "enabled = true") if on else ("enabled = true", "enabled = false")
    path.write_text(head + "[app]\n" + app.replace(before, after, 1))


def push_image(server, tag: str) -> None:
    """What `awsprac image release --record-tag` leaves: the image in ECR, its tag in SSM."""
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"digest": "sha256:" + "a" * 64, "size": 1, "mediaType": "application/vnd.docker.container.image.v1+json"}, "layers": []}
    client(server, "ecr").put_image(repositoryName="aws-practice-stg", imageManifest=json.dumps(manifest), imageTag=tag)
    client(server, "ssm").put_parameter(Name="image-tag-aws-practice-stg", Value=tag, Type="String", Overwrite=True)


def owned_app(server) -> list[str]:
    """What of the tier is still there (services and task definitions count while ACTIVE)."""
    ecs, elb = client(server, "ecs"), client(server, "elbv2")
    left = [c["clusterName"] for c in ecs.describe_clusters(clusters=[BACKEND])["clusters"] if c["status"] == "ACTIVE"]
    left += ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]
    left += [lb["LoadBalancerName"] for lb in elb.describe_load_balancers()["LoadBalancers"]]
    left += [tg["TargetGroupName"] for tg in elb.describe_target_groups()["TargetGroups"]]
    left += [g["GroupName"] for g in client(server, "ec2").describe_security_groups()["SecurityGroups"] if g["GroupName"] in (BACKEND, ALB)]
    left += [r["RoleName"] for r in client(server, "iam").list_roles()["Roles"] if r["RoleName"] in (BACKEND, "ecs-task-execution-stg")]
    left += [p["PolicyName"] for p in client(server, "iam").list_policies(Scope="Local")["Policies"] if p["PolicyName"] == "secrets-manager-read-stg"]
    left += [g["logGroupName"] for g in client(server, "logs").describe_log_groups(logGroupNamePrefix="/ecs/")["logGroups"]]
    return left


def test_the_tier_without_then_with_an_image_a_quiet_second_up_stop_start_and_destroy(awsprac, server):
    enable_app(awsprac)
    first = awsprac("up", "--env", "stg", "--yes")
    assert first.returncode == 0, first.stderr
    assert "awsprac image release --env stg --record-tag" in first.stdout + first.stderr
    assert client(server, "ecs").describe_services(cluster=BACKEND, services=[BACKEND])["services"] == []
    assert client(server, "elbv2").describe_load_balancers(Names=[ALB])["LoadBalancers"]

    push_image(server, "abc1234")
    second = awsprac("up", "--env", "stg", "--yes")
    assert second.returncode == 0, second.stderr
    assert "created ECS service aws-practice-backend-stg" in second.stderr
    assert client(server, "ecs").describe_services(cluster=BACKEND, services=[BACKEND])["services"][0]["desiredCount"] == 1

    server.start_recording()
    third = awsprac("up", "--env", "stg", "--yes")
    actions = server.recorded_actions()
    assert third.returncode == 0, third.stderr
    assert "no changes, everything is in sync." in third.stdout
    assert [a for a in actions if is_write(a)] == []
    print(f"converged up with the app tier on: {len(actions)} calls: {sorted(actions)}")
    assert len(actions) <= MAX_CONVERGED_CALLS, sorted(actions)

    outputs = json.loads(awsprac("outputs", "--env", "stg", "--json").stdout)["outputs"]
    dns = client(server, "elbv2").describe_load_balancers(Names=[ALB])["LoadBalancers"][0]["DNSName"]
    assert outputs["app_url"] == f"http://{dns}"
    status = json.loads(awsprac("status", "--env", "stg", "--json").stdout)["resources"]
    assert {row["sync"] for row in status if row["step"].startswith("app") and row["kind"] != "service-linked role"} == {"in sync"}

    stopped = awsprac("stop", "--env", "stg")
    assert stopped.returncode == 0, stopped.stderr
    assert client(server, "ecs").describe_services(cluster=BACKEND, services=[BACKEND])["services"][0]["desiredCount"] == 0
    parked = awsprac("plan", "--env", "stg").stdout
    assert "no changes, everything is in sync." in parked and "ECS service" not in parked  # parked is not drift
    rows = json.loads(awsprac("status", "--env", "stg", "--json").stdout)["resources"]
    assert [r["sync"] for r in rows if r["kind"] == "ECS service"] == ["parked"]
    started = awsprac("start", "--env", "stg")
    assert started.returncode == 0, started.stderr
    assert client(server, "ecs").describe_services(cluster=BACKEND, services=[BACKEND])["services"][0]["desiredCount"] == 1

    kept = awsprac("destroy", "--env", "stg", "--yes")
    assert kept.returncode == 0, kept.stderr
    assert "logs are data" in kept.stdout + kept.stderr
    assert owned_app(server) == [f"/ecs/{BACKEND}"]
    gone = awsprac("destroy", "--env", "stg", "--yes", "--force")
    assert gone.returncode == 0, gone.stderr
    assert owned_app(server) == []


def test_a_recorded_tag_missing_from_the_repository_exits_1_naming_it_and_changes_nothing(awsprac, server):
    enable_app(awsprac)
    client(server, "ssm").put_parameter(Name="image-tag-aws-practice-stg", Value="nothere", Type="String")
    server.start_recording()
    result = awsprac("up", "--env", "stg", "--yes")
    actions = server.recorded_actions()
    assert result.returncode == 1
    assert "'nothere'" in result.stderr and "Traceback" not in result.stderr
    assert [a for a in actions if is_write(a)] == []


def test_switched_off_the_tier_shows_as_to_be_removed_and_up_removes_it_keeping_its_logs(awsprac, server):
    enable_app(awsprac)
    client(server, "ecr").create_repository(repositoryName="aws-practice-stg", imageTagMutability="IMMUTABLE", tags=[
        {"Key": "Name", "Value": "aws-practice-stg"}, {"Key": "awsprac:project", "Value": "aws-practice"}, {"Key": "awsprac:env", "Value": "stg"}])
    push_image(server, "abc1234")  # what `awsprac image release --record-tag` leaves
    built = awsprac("up", "--env", "stg", "--yes")
    assert built.returncode == 0, built.stderr
    enable_app(awsprac, on=False)

    rows = json.loads(awsprac("status", "--env", "stg", "--json").stdout)["resources"]
    assert {(r["kind"], r["name"]) for r in rows if r["sync"] == "to be removed"} >= {("ECS service", BACKEND), ("load balancer", ALB)}
    planned = awsprac("plan", "--env", "stg")
    assert "[app] enabled = false" in planned.stdout and "logs are data" in planned.stdout
    removed = awsprac("up", "--env", "stg", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert owned_app(server) == [f"/ecs/{BACKEND}"]

    server.start_recording()
    again = awsprac("up", "--env", "stg", "--yes")
    assert again.returncode == 0 and "no changes, everything is in sync." in again.stdout
    assert [a for a in server.recorded_actions() if is_write(a)] == []
    assert awsprac("destroy", "--env", "stg", "--yes", "--force").returncode == 0
    assert owned_app(server) == []
