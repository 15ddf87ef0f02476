"""`awsprac app deploy | url | logs | exec` through the command line, against in-process moto.

The tier is made directly with boto3 (the way `up` or a person following the guide leaves it). moto
never runs a task, and (made faithful by awsprac's sandbox patch) completes every rollout at once: a
rollout in progress or failing (its deployments, events and stopped tasks) is scripted with botocore hooks, and ExecuteCommand (not implemented by moto)
is answered from a hook. A stand-in `session-manager-plugin` on PATH records how it is run.
"""

import json
import os
import sys
import time

import boto3
import botocore.awsrequest
import pytest

from conftest import Calls, aws_error, hook_every_session, run_cli as run

REGION = "ap-northeast-1"
ACCOUNT = "123456789012"
NAME = "aws-practice-backend-stg"
REPO = "aws-practice-stg"
URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPO}"
LOG_GROUP = f"/ecs/{NAME}"
PASSWORD = "pa55-Secret-VALUE-never-shown"
TD = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{NAME}"


def client(service, endpoint=None):
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def answer(parsed: dict):
    """What a before-call hook returns to answer a call itself (nothing is sent to moto)."""
    return botocore.awsrequest.AWSResponse("https://aws.invalid", 200, {}, None), {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200}}


def put_image(tag: str, endpoint=None) -> None:
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": f"sha256:{tag:0>64}"},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": f"sha256:{tag:f>64}"}],
    }
    client("ecr", endpoint).put_image(repositoryName=REPO, imageManifest=json.dumps(manifest), imageTag=tag)


def make_image(endpoint=None) -> None:
    """The ECR repository with images `old1` (running) and `new2` (recorded in SSM, as `image release --record-tag` leaves it)."""
    client("ecr", endpoint).create_repository(repositoryName=REPO, imageTagMutability="IMMUTABLE")
    put_image("old1", endpoint)
    put_image("new2", endpoint)
    client("ssm", endpoint).put_parameter(Name="image-tag-aws-practice-stg", Value="new2", Type="String")


@pytest.fixture
def image(mocked):
    make_image()


@pytest.fixture
def tier(image, monkeypatch):
    """Cluster, task definition (secrets as ARNs of the DB secret's keys), service on `old1`, settled."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")  # the first deployment COMPLETED, 1/1 running
    return make_tier()


def make_tier(endpoint=None) -> str:
    secret = client("secretsmanager", endpoint).create_secret(Name="rds-main-stg", SecretString=json.dumps({"DB_PASSWORD": PASSWORD, "DB_USER_NAME": "app"}))["ARN"]
    ecs = client("ecs", endpoint)
    ecs.create_cluster(clusterName=NAME)
    ecs.register_task_definition(
        family=NAME, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        runtimePlatform={"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/ecs-task-execution-stg", taskRoleArn=f"arn:aws:iam::{ACCOUNT}:role/{NAME}",
        containerDefinitions=[{
            "name": "api", "image": f"{URI}:old1", "essential": True, "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
            "secrets": [{"name": "DB_PASSWORD", "valueFrom": f"{secret}:DB_PASSWORD::"}, {"name": "DB_USERNAME", "valueFrom": f"{secret}:DB_USER_NAME::"}],
            "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": LOG_GROUP, "awslogs-region": REGION, "awslogs-stream-prefix": "ecs"}},
        }],
        tags=[{"key": "Name", "value": NAME}, {"key": "awsprac:project", "value": "aws-practice"}, {"key": "awsprac:env", "value": "stg"}],
    )
    ecs.create_service(cluster=NAME, serviceName=NAME, taskDefinition=f"{NAME}:1", desiredCount=1, launchType="FARGATE")
    return secret


@pytest.fixture
def hooks(monkeypatch):
    """botocore hooks on every session the CLI makes; tests add theirs before running it."""
    return hook_every_session(monkeypatch, [])


@pytest.fixture
def calls(hooks):
    recorder = Calls()
    hooks.append(("before-call.*.*", recorder))
    return recorder


@pytest.fixture(autouse=True)
def instant_waits(clock):
    pass


class Rollout:
    """ECS running the deployment UpdateService starts: DescribeServices shows its scripted states
    (rolloutState, running count), then, when it FAILED, the circuit breaker's rollback with events;
    ListTasks/DescribeTasks show the stopped tasks with `stopped_reason`."""

    def __init__(self, states, stopped_reason: str = ""):
        self.states = list(states)
        self.stopped_reason = stopped_reason
        self.new_td = None
        self.polls = 0

    def hooks(self):
        return [("before-parameter-build.ecs.UpdateService", self.updated), ("after-call.ecs.DescribeServices", self.describe),
                ("before-parameter-build.ecs.ListTasks", self.listing), ("before-call.ecs.ListTasks", self.list_tasks),
                ("before-call.ecs.DescribeTasks", self.describe_tasks)]

    def updated(self, params, **kwargs):
        self.new_td = params["taskDefinition"]

    def describe(self, parsed, **kwargs):
        if self.new_td is None or not parsed.get("services"):
            return
        service = parsed["services"][0]
        state, running = self.states[min(self.polls, len(self.states) - 1)]
        self.polls += 1
        new = {"id": "ecs-svc/2", "status": "PRIMARY", "taskDefinition": self.new_td, "desiredCount": 1, "runningCount": running,
               "pendingCount": 1 - running, "rolloutState": state, "rolloutStateReason": f"ECS deployment ecs-svc/2 {state.lower()}."}
        old = {"id": "ecs-svc/1", "status": "ACTIVE", "taskDefinition": f"{TD}:1", "desiredCount": 1, "runningCount": 1,
               "pendingCount": 0, "rolloutState": "COMPLETED"}
        service["events"] = [{"id": "e1", "createdAt": "2026-11-30T10:00:00Z", "message": f"(service {NAME}) has started 1 tasks: (task 0f1e2d)."}]
        if state == "FAILED":
            service["taskDefinition"] = f"{TD}:1"
            new["status"] = "ACTIVE"
            old.update(status="PRIMARY", id="ecs-svc/3")
            service["events"].insert(0, {"id": "e2", "createdAt": "2026-11-30T10:09:00Z",
                                         "message": f"(service {NAME}) (deployment ecs-svc/2) deployment failed: tasks failed to start."})
        service["deployments"] = [new, old] if state != "COMPLETED" else [new]

    def listing(self, params, **kwargs):
        self.listed = params.get("desiredStatus")

    def list_tasks(self, **kwargs):
        if self.listed == "STOPPED" and self.stopped_reason:
            return answer({"taskArns": [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{NAME}/0f1e2d"]})
        return None

    def describe_tasks(self, **kwargs):
        return answer({"tasks": [{
            "taskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{NAME}/0f1e2d", "taskDefinitionArn": self.new_td, "lastStatus": "STOPPED",
            "stoppedReason": self.stopped_reason, "containers": [{"name": "api", "lastStatus": "STOPPED"}],
        }], "failures": []})


def deployed(revision: int) -> dict:
    return client("ecs").describe_task_definition(taskDefinition=f"{NAME}:{revision}", include=["TAGS"])


def service_td() -> str:
    return client("ecs").describe_services(cluster=NAME, services=[NAME])["services"][0]["taskDefinition"]


# --- deploy ---


def test_deploy_registers_a_revision_with_only_the_image_changed_and_waits_for_completed(capsys, tier, calls, hooks):
    rollout = Rollout([("IN_PROGRESS", 0), ("IN_PROGRESS", 0), ("COMPLETED", 1)])
    hooks.extend(rollout.hooks())
    code, out, err = run(capsys, "app", "deploy", "--env", "stg", "--tag", "new2")
    assert code == 0, err
    assert out == f"{URI}:new2\n"
    before, after = deployed(1), deployed(2)
    (old,), (new,) = before["taskDefinition"]["containerDefinitions"], after["taskDefinition"]["containerDefinitions"]
    assert new["image"] == f"{URI}:new2"
    assert {**new, "image": old["image"]} == old  # nothing else in the container changed: secrets, ports, logs
    for key in ("cpu", "memory", "networkMode", "executionRoleArn", "taskRoleArn", "requiresCompatibilities", "runtimePlatform"):
        assert after["taskDefinition"][key] == before["taskDefinition"][key]
    assert all(s["valueFrom"].startswith(tier) for s in new["secrets"])
    assert PASSWORD not in json.dumps(after, default=str) and PASSWORD not in out + err
    assert {"key": "awsprac:env", "value": "stg"} in after["tags"]
    assert service_td() == f"{TD}:2"
    assert rollout.polls == 3  # IN_PROGRESS was not taken for done
    assert "has started 1 tasks" in err  # the service's events, shown as they come
    assert calls.writes.count("RegisterTaskDefinition") == 1 and calls.writes.count("UpdateService") == 1


def test_deploy_without_a_tag_uses_the_recorded_one(capsys, tier, hooks):
    rollout = Rollout([("COMPLETED", 1)])
    hooks.extend(rollout.hooks())
    code, out, err = run(capsys, "app", "deploy", "--env", "stg")
    assert code == 0, err
    assert deployed(2)["taskDefinition"]["containerDefinitions"][0]["image"] == f"{URI}:new2"


def test_deploying_the_running_tag_changes_nothing(capsys, tier, calls):
    code, out, err = run(capsys, "app", "deploy", "--env", "stg", "--tag", "old1")
    assert code == 0, err
    assert calls.writes == []
    assert f"{NAME} already runs {URI}:old1 ({NAME}:1): nothing to deploy" in err


def test_a_deploy_stopped_while_watching_is_watched_again_without_a_write(capsys, tier, calls, hooks):
    rev2 = client("ecs").register_task_definition(**{
        **{k: v for k, v in deployed(1)["taskDefinition"].items() if k in ("family", "networkMode", "requiresCompatibilities", "cpu", "memory")},
        "containerDefinitions": [{**deployed(1)["taskDefinition"]["containerDefinitions"][0], "image": f"{URI}:new2"}],
    })["taskDefinition"]["taskDefinitionArn"]
    client("ecs").update_service(cluster=NAME, service=NAME, taskDefinition=rev2)  # then Ctrl-C while it rolled out
    rollout = Rollout([("IN_PROGRESS", 0), ("IN_PROGRESS", 0), ("COMPLETED", 1)])
    rollout.new_td = rev2
    hooks.extend(rollout.hooks())
    code, out, err = run(capsys, "app", "deploy", "--env", "stg", "--tag", "new2")
    assert code == 0, err
    assert f"{NAME} is already rolling out {URI}:new2 ({NAME}:2): watching it" in err
    assert calls.writes == [] and rollout.polls == 3


def test_a_revision_left_by_a_stopped_deploy_is_reused_not_registered_again(capsys, tier, calls, hooks):
    rollout = Rollout([("COMPLETED", 1)])
    hooks.extend(rollout.hooks())
    current = deployed(1)
    request = {k: v for k, v in current["taskDefinition"].items() if k in (
        "family", "taskRoleArn", "executionRoleArn", "networkMode", "requiresCompatibilities", "cpu", "memory", "runtimePlatform")}
    request["containerDefinitions"] = [{**current["taskDefinition"]["containerDefinitions"][0], "image": f"{URI}:new2"}]
    client("ecs").register_task_definition(**request)  # a deploy that died before UpdateService
    code, out, err = run(capsys, "app", "deploy", "--env", "stg", "--tag", "new2")
    assert code == 0, err
    assert "RegisterTaskDefinition" not in calls.writes
    assert service_td() == f"{TD}:2"


def test_a_tag_not_in_the_repository_is_exit_1_and_changes_nothing(capsys, tier, calls):
    code, out, err = run(capsys, "app", "deploy", "--env", "stg", "--tag", "abc1234")
    assert code == 1
    assert err.startswith(f"error: image tag abc1234 is not in ECR repository {REPO}: ") and err.count("\n") == 1
    assert "RegisterTaskDefinition" not in calls.names and "UpdateService" not in calls.names
    assert service_td() == f"{TD}:1"


def test_a_bad_tag_is_exit_2_before_anything_is_sent(capsys, tier, calls):
    code, out, err = run(capsys, "app", "deploy", "--env", "stg", "--tag", "new 2;rm")
    assert code == 2 and err.startswith("error: --tag 'new 2;rm' is not an image tag") and calls.names == []


def test_without_the_service_deploy_says_to_build_the_tier(capsys, image, calls):
    code, out, err = run(capsys, "app", "deploy", "--env", "stg")
    assert code == 2
    assert err.startswith(f"error: no ECS service {NAME} in cluster {NAME}: enable the tier (`[app] enabled = true` in ")
    assert "run `awsprac up --env stg`" in err and err.count("\n") == 1
    assert calls.writes == []


NAT_REASONS = [
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
    f"{URI}:new2: dial tcp 54.248.0.1:443: i/o timeout",
    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
    "unable to retrieve secret from asm: There is a connection issue between the task and AWS Secrets Manager. "
    "Check your task network configuration. operation error Secrets Manager: GetSecretValue, https response error "
    "StatusCode: 0, RequestID: , canceled, context deadline exceeded: dial tcp 10.0.0.1:443: i/o timeout",
]


@pytest.mark.parametrize("reason", NAT_REASONS, ids=["CannotPullContainerError", "ResourceInitializationError"])
def test_a_failed_rollout_is_exit_1_with_events_reasons_and_the_nat_hint(capsys, tier, hooks, reason):
    rollout = Rollout([("IN_PROGRESS", 0), ("FAILED", 0)], stopped_reason=reason)
    hooks.extend(rollout.hooks())
    code, out, err = run(capsys, "app", "deploy", "--env", "stg", "--tag", "new2")
    assert code == 1
    assert "deployment failed: tasks failed to start." in err  # the service's latest events
    assert f"  {reason}\n" in err  # the stopped task's reason
    last = err.splitlines()[-1]
    assert last.startswith(f"error: deploy of {URI}:new2 to {NAME} failed: the deployment circuit breaker rolled the service back to {NAME}:1; ")
    assert "the NAT is probably not forwarding" in last
    assert "`awsprac nat verify --env stg`" in last and "`awsprac doctor --env stg`" in last
    assert out == ""


def test_a_failed_rollout_for_another_reason_points_at_the_logs_not_the_nat(capsys, tier, hooks):
    rollout = Rollout([("FAILED", 0)], stopped_reason="Essential container in task exited")
    hooks.extend(rollout.hooks())
    code, out, err = run(capsys, "app", "deploy", "--env", "stg", "--tag", "new2")
    assert code == 1
    assert "  Essential container in task exited\n" in err
    assert "nat verify" not in err and "`awsprac app logs --env stg --since 30m`" in err.splitlines()[-1]


# --- url ---


def load_balancer(*listeners: tuple[str, int]) -> str:
    ec2, elb = client("ec2"), client("elbv2")
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]][:2]
    lb = elb.create_load_balancer(Name="aws-practice-alb-stg", Subnets=subnets, Scheme="internet-facing", Type="application")["LoadBalancers"][0]
    group = elb.create_target_group(Name=NAME, Protocol="HTTP", Port=8080, VpcId=lb["VpcId"], TargetType="ip")["TargetGroups"][0]
    for protocol, port in listeners:
        extra = {}
        if protocol == "HTTPS":
            certificate = client("acm").request_certificate(DomainName="api.example.com")["CertificateArn"]
            extra = {"Certificates": [{"CertificateArn": certificate}]}
        elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol=protocol, Port=port,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}], **extra)
    return lb["DNSName"]


def test_url_is_http_without_a_certificate(capsys, mocked):
    dns = load_balancer(("HTTP", 80))
    code, out, err = run(capsys, "app", "url", "--env", "stg")
    assert (code, out) == (0, f"http://{dns}\n"), err


def test_url_is_https_when_the_listener_is_443(capsys, mocked):
    dns = load_balancer(("HTTP", 80), ("HTTPS", 443))
    code, out, err = run(capsys, "app", "url", "--env", "stg")
    assert (code, out) == (0, f"https://{dns}\n"), err


def test_url_without_the_load_balancer_says_what_to_run(capsys, mocked):
    code, out, err = run(capsys, "app", "url", "--env", "stg")
    assert code == 2 and out == ""
    assert err.startswith("error: no load balancer aws-practice-alb-stg: enable the tier (`[app] enabled = true` in ")
    assert err.endswith("and run `awsprac up --env stg`\n")


# --- logs ---


def put_logs(*events: tuple[int, str], stream: str = "ecs/api/0f1e2d") -> None:
    logs = client("logs")
    if not logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=stream)["logStreams"]:
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=[{"timestamp": t, "message": m} for t, m in events])


@pytest.fixture
def log_group(mocked):
    client("logs").create_log_group(logGroupName=LOG_GROUP)
    now = int(time.time() * 1000)
    put_logs((now - 2 * 3600_000, "Started Application in 9.1 seconds"), (now - 5 * 60_000, "GET /health 200"))
    return now


def test_logs_since_reads_back_that_far(capsys, log_group):
    code, out, err = run(capsys, "app", "logs", "--env", "stg", "--since", "1h")
    assert code == 0, err
    assert out.endswith(" ecs/api/0f1e2d GET /health 200\n") and out.count("\n") == 1
    code, out, err = run(capsys, "app", "logs", "--env", "stg", "--since", "3h")
    assert [line.split(" ", 2)[2] for line in out.splitlines()] == ["Started Application in 9.1 seconds", "GET /health 200"]


def test_logs_default_to_the_last_10_minutes(capsys, log_group):
    code, out, err = run(capsys, "app", "logs", "--env", "stg")
    assert code == 0 and out.count("\n") == 1 and "GET /health 200" in out


def test_a_bad_since_is_exit_2(capsys, mocked):
    code, out, err = run(capsys, "app", "logs", "--env", "stg", "--since", "10 minutes")
    assert code == 2 and err.startswith("error: Invalid value for '--since': give a number and a unit, like 30s, 10m") and err.count("\n") == 1


def test_logs_follow_prints_new_lines_once_and_ctrl_c_ends_it_cleanly(capsys, log_group, monkeypatch):
    from awsprac.engine import waiting

    class Clock:
        pauses = 0

        def now(self):
            return 0.0

        def pause(self, seconds):
            self.pauses += 1
            if self.pauses == 1:
                put_logs((log_group, "POST /orders 201"), (log_group, "POST /orders 500"))
            elif self.pauses == 3:
                raise KeyboardInterrupt

    monkeypatch.setattr(waiting, "clock", Clock())
    code, out, err = run(capsys, "app", "logs", "--env", "stg", "--follow")
    assert code == 0, err
    assert [line.split(" ", 2)[2] for line in out.splitlines()] == ["GET /health 200", "POST /orders 201", "POST /orders 500"]


def test_logs_without_the_log_group_say_what_to_run(capsys, mocked):
    code, out, err = run(capsys, "app", "logs", "--env", "stg")
    assert code == 2 and err.startswith(f"error: no log group {LOG_GROUP}: enable the tier") and "awsprac up --env stg" in err


# --- exec ---

PLUGIN = '''
import json, os, sys
with open(os.environ["STAND_IN_PLUGIN_LOG"], "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "session": os.environ.get("AWS_SSM_START_SESSION_RESPONSE")}) + "\\n")
if sys.argv[1:] == ["--version"]:
    print(os.environ.get("STAND_IN_PLUGIN_VERSION", "1.2.650.0"))
'''
TASK = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{NAME}/5a6b7c"
SESSION = {"sessionId": "ecs-execute-command-0a1b2c", "streamUrl": "wss://ssmmessages.ap-northeast-1.amazonaws.com/v1/data-channel/ecs-execute-command-0a1b2c?role=publish_subscribe",
           "tokenValue": "AAEAAWhk-session-token"}


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A stand-in session-manager-plugin on PATH; returns its record (one entry per run)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    exe = folder / "session-manager-plugin"
    exe.write_text(f"#!{sys.executable}\n{PLUGIN}")
    exe.chmod(0o755)
    log = tmp_path / "plugin.log"
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STAND_IN_PLUGIN_LOG", str(log))
    return lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


class Tasks:
    """ECS with `running` tasks of the service, and ExecuteCommand answered as AWS does (moto lacks it)."""

    def __init__(self, running: bool = True, refuse: str = ""):
        self.running, self.refuse = running, refuse
        self.executed: list[dict] = []

    def hooks(self):
        return [("before-call.ecs.ListTasks", self.list_tasks), ("before-call.ecs.DescribeTasks", self.describe_tasks),
                ("before-parameter-build.ecs.ExecuteCommand", self.record), ("before-call.ecs.ExecuteCommand", self.execute)]

    def list_tasks(self, **kwargs):
        return answer({"taskArns": [TASK] if self.running else []})

    def describe_tasks(self, **kwargs):
        return answer({"tasks": [{"taskArn": TASK, "lastStatus": "RUNNING", "enableExecuteCommand": True, "taskDefinitionArn": f"{TD}:1",
                                  "containers": [{"name": "api", "lastStatus": "RUNNING", "runtimeId": "5a6b7c-0123456789"}]}], "failures": []})

    def record(self, params, **kwargs):
        self.executed.append(dict(params))

    def execute(self, **kwargs):
        if self.refuse:
            return aws_error(self.refuse, "The execute command failed because execute command was not enabled when the task was run "
                             "or the execute command agent isn't running.")
        return answer({"clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{NAME}", "containerArn": f"{TASK}/api", "containerName": "api",
                       "interactive": True, "session": SESSION, "taskArn": TASK})


def test_exec_opens_a_shell_and_runs_the_plugin_as_the_aws_cli_does(capsys, tier, hooks, plugin):
    tasks = Tasks()
    hooks.extend(tasks.hooks())
    code, out, err = run(capsys, "app", "exec", "--env", "stg")
    assert code == 0, err
    assert tasks.executed == [{"cluster": NAME, "task": TASK, "container": "api", "interactive": True, "command": "/bin/sh"}]
    version, session = plugin()
    assert version["argv"] == ["--version"]
    assert session["argv"] == ["AWS_SSM_START_SESSION_RESPONSE", REGION, "StartSession", "",
                               json.dumps({"Target": f"ecs:{NAME}_5a6b7c_5a6b7c-0123456789"}), f"https://ecs.{REGION}.amazonaws.com"]
    assert json.loads(session["session"]) == SESSION  # the token goes in the environment, never in the process list


def test_exec_gives_an_old_plugin_the_session_as_its_argument(capsys, tier, hooks, plugin, monkeypatch):
    monkeypatch.setenv("STAND_IN_PLUGIN_VERSION", "1.2.497.0")  # the last version without the environment variable
    hooks.extend(Tasks().hooks())
    code, out, err = run(capsys, "app", "exec", "--env", "stg")
    assert code == 0, err
    version, session = plugin()
    assert json.loads(session["argv"][0]) == SESSION and session["session"] is None


def test_exec_into_a_task_without_the_exec_agent_says_how_to_get_one(capsys, tier, hooks, plugin):
    hooks.extend(Tasks(refuse="TargetNotConnectedException").hooks())
    code, out, err = run(capsys, "app", "exec", "--env", "stg")
    assert code == 1 and [c["argv"] for c in plugin()] == [["--version"]]
    assert err.startswith("error: task 5a6b7c does not accept ECS Exec (TargetNotConnectedException): ")
    assert "`awsprac up --env stg`" in err and err.count("\n") == 1


def test_exec_without_the_plugin_is_exit_2_with_nothing_sent(capsys, tier, calls, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no session-manager-plugin anywhere
    code, out, err = run(capsys, "app", "exec", "--env", "stg")
    assert code == 2 and calls.names == []
    assert err.startswith("error: session-manager-plugin is not installed or not on PATH: `awsprac app exec` needs it (install: https://docs.aws.amazon.com/")


def test_exec_without_a_running_task_is_exit_2(capsys, tier, hooks, plugin):
    tasks = Tasks(running=False)
    hooks.extend(tasks.hooks())
    code, out, err = run(capsys, "app", "exec", "--env", "stg")
    assert code == 2 and tasks.executed == [] and plugin() == []
    assert err.startswith(f"error: no running task of ECS service {NAME} (desired 1, running 1): `awsprac app deploy --env stg` starts one")


@pytest.mark.parametrize("args, shows", [(["--help"], "  app "), (["app", "--help"], "  deploy "), (["app", "logs", "--help"], "--since AGE")])
def test_help_lists_app_without_importing_it(args, shows):
    import subprocess

    code = (
        "import sys\nfrom awsprac.commands.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in ('boto3', 'botocore', 'rich', 'awsprac.steps.app') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert shows in proc.stdout and "LOADED []" in proc.stdout, proc.stdout + proc.stderr


# --- end to end: `awsprac app deploy` against `awsprac sandbox` (moto's server, made faithful by awsprac) ---


def test_deploy_in_the_sandbox_rolls_out_a_new_tag_and_finishes(tmp_path):
    """AWS starts a deployment on UpdateService and completes it; the sandbox must too, or the watch runs 20 minutes."""
    import shutil
    import signal
    import subprocess
    from pathlib import Path

    from conftest import ENVS, readline_within

    exe = shutil.which("awsprac", path=str(Path(sys.executable).parent)) or shutil.which("awsprac")
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "AWS_PROFILE")}
    box_err = tmp_path / "sandbox.err"
    with open(box_err, "w") as err:  # a file, not a pipe nobody reads while the sandbox runs
        box = subprocess.Popen([exe, "sandbox"], stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        endpoint = readline_within(box.stdout, 60, "awsprac sandbox printing its endpoint").strip()
        assert endpoint.startswith("http://127.0.0.1:"), box_err.read_text()
        make_image(endpoint)
        make_tier(endpoint)
        env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "NO_COLOR": "1"})

        def deploy(*args):
            return subprocess.run([exe, "--envs-dir", str(ENVS), "app", "deploy", "--env", "stg", *args], env=env, capture_output=True, text=True, timeout=60)

        done = deploy("--tag", "new2")
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{URI}:new2\n"
        assert "has reached a steady state" in done.stderr and "(aws-practice-backend-stg:2, 1/1 running)" in done.stderr
        service = client("ecs", endpoint).describe_services(cluster=NAME, services=[NAME])["services"][0]
        assert service["taskDefinition"] == f"{TD}:2" and service["runningCount"] == 1
        assert [(d["status"], d["rolloutState"], d["taskDefinition"]) for d in service["deployments"]] == [("PRIMARY", "COMPLETED", f"{TD}:2")]
        again = deploy("--tag", "new2")
        assert again.returncode == 0 and "already runs" in again.stderr and "registered" not in again.stderr, again.stderr
    finally:
        box.send_signal(signal.SIGINT)
        box.wait(timeout=30)
