"""`awsprac doctor --env stg` on the app tier, through the command line (in-process moto): a rollout the
circuit breaker rolled back, and a load balancer AWS failed to provision. Moto has neither: AWS's answers
(DescribeServices' deployments and events, the stopped tasks, DescribeLoadBalancers' state) are injected
with botocore hooks. Doctor exits 1 when it finds anything (0 when healthy)."""

import json

import boto3
import pytest

from conftest import ENVS, hook_every_session, run_cli
from test_app_commands import ACCOUNT, NAME, REGION, TD, answer, make_image, make_tier

ALB = "aws-practice-alb-stg"
PULL = ("CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
        f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/aws-practice-stg:new2: dial tcp 10.0.2.1:443: i/o timeout")


@pytest.fixture
def envs(tmp_path):
    """envs/stg.toml with the tier on."""
    folder = tmp_path / "envs"
    folder.mkdir()
    text = (ENVS / "stg.toml").read_text()
    head, app = text.split("[app]", 1)
    (folder / "stg.toml").write_text(head + "[app]" + app.replace("enabled = false", "enabled = true", 1))
    return folder


@pytest.fixture
def hooks(monkeypatch):
    return hook_every_session(monkeypatch, [])


def doctor(capsys, envs, *args):
    return run_cli(capsys, "doctor", "--env", "stg", *args, envs=envs)


def rolled_back(parsed, **kwargs):
    """DescribeServices after the circuit breaker gave up on revision 2: back on revision 1 (PRIMARY, rolling
    back), the failed deployment still listed (ACTIVE, FAILED) until its tasks are gone; events newest first."""
    for service in parsed.get("services", []):
        service["taskDefinition"] = f"{TD}:1"
        service["deployments"] = [
            {"id": "ecs-svc/3", "status": "PRIMARY", "taskDefinition": f"{TD}:1", "desiredCount": 1, "runningCount": 1, "pendingCount": 0,
             "failedTasks": 0, "rolloutState": "IN_PROGRESS", "rolloutStateReason": "ECS deployment ecs-svc/3 in progress."},
            {"id": "ecs-svc/2", "status": "ACTIVE", "taskDefinition": f"{TD}:2", "desiredCount": 0, "runningCount": 0, "pendingCount": 0,
             "failedTasks": 10, "rolloutState": "FAILED", "rolloutStateReason": "ECS deployment circuit breaker: tasks failed to start."},
        ]
        service["events"] = [
            {"id": "e3", "createdAt": "2026-11-30T10:10:00Z", "message": f"(service {NAME}) rolling back to deployment ecs-svc/3."},
            {"id": "e2", "createdAt": "2026-11-30T10:09:00Z", "message": f"(service {NAME}) (deployment ecs-svc/2) deployment failed: tasks failed to start."},
            {"id": "e1", "createdAt": "2026-11-30T10:00:00Z", "message": f"(service {NAME}) has started 1 tasks: (task 0f1e2d)."},
            {"id": "e0", "createdAt": "2026-11-30T09:00:00Z", "message": f"(service {NAME}) has reached a steady state."},
        ]


def stopped_tasks(model, params, **kwargs):
    """The failed revision's stopped tasks (AWS keeps them at least an hour), three alike."""
    tasks = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{NAME}/{i}" for i in ("0f1e2d", "1a2b3c", "4d5e6f")]
    if model.name == "ListTasks":
        return answer({"taskArns": tasks})
    if model.name == "DescribeTasks":
        return answer({"tasks": [{"taskArn": t, "taskDefinitionArn": f"{TD}:2", "lastStatus": "STOPPED", "stopCode": "TaskFailedToStart",
                                  "stoppedReason": PULL, "containers": [{"name": "api", "lastStatus": "STOPPED"}]} for t in tasks], "failures": []})
    return None


def test_a_rolled_back_rollout_is_a_finding_with_the_stopped_tasks_events_and_the_nat_hint(mocked, capsys, envs, hooks):
    make_image()
    make_tier()
    hooks += [("after-call.ecs.DescribeServices", rolled_back), ("before-call.ecs.*", stopped_tasks)]
    code, out, err = doctor(capsys, envs, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["healthy"] is False
    (finding,) = report["findings"]
    assert (finding["check"], finding["resource"]) == ("app rollout", f"ECS service {NAME}")
    assert finding["problem"] == (
        f"the rollout of {NAME}:2 failed (ECS deployment circuit breaker: tasks failed to start.): "
        f"the deployment circuit breaker rolled the service back to {NAME}:1; "
        "the tasks could not reach ECR or Secrets Manager: the NAT is probably not forwarding; "
        "check it with `awsprac nat verify --env stg` and `awsprac doctor --env stg`; "
        f"stopped tasks: {PULL} (3 tasks); "
        f"latest events: (service {NAME}) rolling back to deployment ecs-svc/3. | "
        f"(service {NAME}) (deployment ecs-svc/2) deployment failed: tasks failed to start. | (service {NAME}) has started 1 tasks: (task 0f1e2d)."
    )
    assert finding["fix"] == "fix what the stopped tasks and events say, then `awsprac up --env stg` (or `awsprac app deploy --env stg`)"

    code, out, err = doctor(capsys, envs)
    assert code == 1 and "1 problem(s)" in out and f"✗ [app rollout] ECS service {NAME}" in out


def test_a_settled_service_is_healthy(mocked, capsys, envs, hooks):
    make_image()
    make_tier()
    code, out, err = doctor(capsys, envs)
    assert code == 0 and "healthy" in out


def test_a_load_balancer_that_failed_to_provision_is_a_finding_with_how_to_replace_it(mocked, capsys, envs, hooks):
    make_image()  # an image to run: no other finding
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.7.{i}.0/24", AvailabilityZone=f"ap-northeast-1{z}")["Subnet"]["SubnetId"]
               for i, z in ((0, "a"), (1, "c"))]
    arn = boto3.client("elbv2", region_name=REGION).create_load_balancer(Name=ALB, Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]

    def failed(parsed, **kwargs):
        for lb in parsed.get("LoadBalancers", []):
            lb["State"] = {"Code": "failed", "Reason": "Subnets subnet-0a, subnet-0c have insufficient free IP addresses."}

    hooks.append(("after-call.elastic-load-balancing-v2.DescribeLoadBalancers", failed))
    code, out, err = doctor(capsys, envs, "--json")
    assert code == 1
    (finding,) = json.loads(out)["findings"]
    assert finding == {
        "check": "app load balancer", "resource": f"load balancer {ALB} ({arn})",
        "problem": "failed to provision: Subnets subnet-0a, subnet-0c have insufficient free IP addresses.",
        "fix": f"delete it (`aws elbv2 delete-load-balancer --load-balancer-arn {arn}`), then `awsprac up --env stg`",
    }
    code, out, err = doctor(capsys, envs)
    assert code == 1 and f"✗ [app load balancer] load balancer {ALB}" in out
