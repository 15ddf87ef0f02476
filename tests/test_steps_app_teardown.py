"""The app tier's teardown (AWS's order, retries for lingering interfaces, logs kept unless --force), the
rollout failure report, and the [app] section of the env file."""

import dataclasses
from pathlib import Path

import pytest

from awsprac.engine import runner

from awsprac import config
from awsprac.engine.errors import ConfigError
from awsprac.engine.plan import Action
from awsprac.steps.app import rollout

from app_helpers import ALB, BACKEND, EXEC_ROLE, LOGS, POLICY, app_cfg, app_env, client, push_image  # noqa: F401
from conftest import build
from db_helpers import Fail, Recorder, ok

TIER = ["vpc", "subnets", "secrets", "ecr", "app-iam", "app-network", "app-alb", "app"]
APP_STEPS = ["app-iam", "app-network", "app-alb", "app"]


def destroy(ctx, names=APP_STEPS):
    steps = runner.resolve(names)
    planned = runner.teardown_plan(ctx, steps)
    outcome = runner.destroy(ctx, steps, planned)
    assert outcome.ok, outcome.failed
    return planned


def test_destroy_goes_in_aws_order_and_keeps_the_logs_without_force(app_env, clock):
    push_image("abc1234")
    build(app_env(), TIER)
    sent = Recorder()
    planned = destroy(app_env(hooks=[sent.hook]))
    order = [n for n in sent.writes if n in (
        "UpdateService", "DeleteService", "DeregisterTaskDefinition", "DeleteCluster", "DeleteListener", "DeleteTargetGroup",
        "DeleteLoadBalancer", "DeleteSecurityGroup", "DeleteRole", "DeletePolicy")]
    assert order[:3] == ["UpdateService", "DeleteService", "DeregisterTaskDefinition"] or order[:4] == ["UpdateService", "DeleteService", "DeleteCluster", "DeregisterTaskDefinition"]
    assert sent.of("UpdateService")[0]["desiredCount"] == 0 and sent.of("DeleteService")[0]["force"] is True
    assert order.index("DeleteService") < order.index("DeleteListener") < order.index("DeleteTargetGroup")
    assert order.index("DeleteListener") < order.index("DeleteLoadBalancer") < order.index("DeleteSecurityGroup")
    groups = [p["GroupId"] for p in sent.of("DeleteSecurityGroup")]
    assert len(groups) == 2  # the backend's (it refers to the ALB's), then the ALB's
    # the roles (and the policy, once no role holds it) go once the service that used them is gone
    assert sent.writes.index("DeleteService") < sent.writes.index("DeleteRole") < sent.writes.index("DeletePolicy")
    # what is gone, and the log group kept (logs are data)
    assert client("ecs").describe_services(cluster=BACKEND, services=[BACKEND])["services"][0]["status"] == "INACTIVE"
    assert client("ecs").list_task_definitions(status="ACTIVE")["taskDefinitionArns"] == []
    assert client("elbv2").describe_load_balancers()["LoadBalancers"] == []
    assert client("elbv2").describe_target_groups()["TargetGroups"] == []
    assert [r["RoleName"] for r in client("iam").list_roles()["Roles"] if r["RoleName"] in (EXEC_ROLE, BACKEND)] == []
    assert [p for p in client("iam").list_policies(Scope="Local")["Policies"] if p["PolicyName"] == POLICY] == []
    (kept,) = [c for c in planned.changes if c.kind == "log group"]
    assert kept.action is Action.REPORT and "logs are data" in kept.note and "--force" in kept.note
    assert client("logs").describe_log_groups(logGroupNamePrefix=LOGS)["logGroups"]
    # the service-linked role is the account's: it stays
    assert any(r["RoleName"].lower() == "awsservicerolefor" + "ecs" for r in client("iam").list_roles()["Roles"])
    destroy(app_env(force=True))
    assert client("logs").describe_log_groups(logGroupNamePrefix=LOGS)["logGroups"] == []


def test_a_group_still_held_by_interfaces_is_retried_until_free(app_env, clock):
    build(app_env(), TIER)
    lingering = Fail("DeleteSecurityGroup", "DependencyViolation", "resource sg-1 has a dependent object", times=3)
    destroy(app_env(hooks=[lingering.hook]))
    assert lingering.calls == 3 and clock.pauses[:3] == [5, 10, 20]
    assert [g for g in client("ec2").describe_security_groups()["SecurityGroups"] if g["GroupName"] in (ALB, BACKEND)] == []


def test_the_db_rule_is_revoked_before_the_backend_group_goes(app_env, cfg, clock):
    # The DB group's rules are step db-ingress's; the tunnel's (from the NAT group) is off here: no NAT is built.
    no_tunnel = dataclasses.replace(app_cfg(cfg), database=dataclasses.replace(cfg.database, tunnel=False))
    names = ["vpc", "subnets", "secrets", "app-network", "rds", "db-ingress"]
    build(app_env(config=no_tunnel), names)
    db_sg = client("ec2").describe_security_groups(Filters=[{"Name": "group-name", "Values": ["aws-practice-db-stg"]}])["SecurityGroups"][0]
    sent = Recorder()
    destroy(app_env(config=no_tunnel, hooks=[sent.hook]), ["app-network"])  # the DB stays: its rule must go for the group to go
    revoked = sent.of("RevokeSecurityGroupIngress")
    assert [r["GroupId"] for r in revoked] == [db_sg["GroupId"]]
    assert sent.writes.index("RevokeSecurityGroupIngress") < sent.writes.index("DeleteSecurityGroup")


def test_a_failed_rollout_says_why_with_events_and_stopped_reasons(app_env, clock, capsys):
    push_image("abc1234")
    build(app_env(), TIER)
    reason = "ResourceInitializationError: unable to pull secrets or registry auth: ... dial tcp 10.0.2.1:443: i/o timeout"

    def failed(parsed, **kwargs):
        for service in parsed.get("services", []):
            service["deployments"] = [{"status": "PRIMARY", "rolloutState": "FAILED", "runningCount": 0, "desiredCount": 1,
                                       "taskDefinition": service["taskDefinition"]}]
            service["events"] = [{"id": "e1", "message": "(service x) deployment failed: tasks failed to start."}]

    def stopped(model, params, **kwargs):
        if model.name == "ListTasks":
            return ok({"taskArns": ["arn:aws:ecs:ap-northeast-1:123456789012:task/x/1"]})
        if model.name == "DescribeTasks":
            return ok({"tasks": [{"stoppedReason": reason}]})
        return None

    arn = client("ecs").describe_services(cluster=BACKEND, services=[BACKEND])["services"][0]["taskDefinition"]
    ctx = app_env(hooks=[("after-call.ecs.DescribeServices", failed), ("before-call.*.*", stopped)])
    with pytest.raises(rollout.RolloutFailed) as failure:
        rollout.watch(ctx, arn, "abc1234", doing="rollout")
    text = str(failure.value)
    assert text.startswith(f"rollout of abc1234 to {BACKEND} failed") and "the NAT is probably not forwarding" in text
    said = capsys.readouterr().err
    assert reason in said and "tasks failed to start" in said  # the stopped tasks' reasons and the service's events


def _load(tmp_path: Path, app: str) -> config.EnvConfig:
    source = (Path(__file__).resolve().parents[1] / "envs" / "stg.toml").read_text()
    head = source[: source.index("[app]")]
    (tmp_path / "stg.toml").write_text(head + app)
    return config.load(tmp_path, "stg")


def test_the_app_section_is_read_with_its_secret_mapping(tmp_path):
    cfg = _load(tmp_path, '[app]\nenabled = true\ncpu = 512\nmemory = 2048\n[app.secrets]\nDB_USERNAME = "DB_USER_NAME"\n')
    assert (cfg.app.enabled, cfg.app.cpu, cfg.app.memory, cfg.app.desired_count, cfg.app.container_port) == (True, 512, 2048, 1, 8080)
    assert cfg.app.secrets == (("DB_USERNAME", "DB_USER_NAME"),)
    assert config.load(Path(__file__).resolve().parents[1] / "envs", "stg").app.enabled is False  # off by default


@pytest.mark.parametrize("app, says", [
    ("cpu = 256\nmemory = 4096\n", "app.memory: 4096 MiB does not go with cpu 256"),
    ("cpu = 300\n", "app.cpu: 300 must be one of"),
    ('health_check_path = "health"\n', "app.health_check_path"),
    ("log_retention_days = 8\n", "app.log_retention_days: 8"),
    ('certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc"\n', "must be in the env's region ap-northeast-1"),
    ('[app.secrets]\nDB_USERNAME = "DB_USER"\n', "app.secrets.DB_USERNAME: 'DB_USER' is not a key of the DB secret"),
    ("bogus = 1\n", "app.bogus: unknown key"),
])
def test_bad_app_settings_are_refused_naming_the_key(tmp_path, app, says):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        _load(tmp_path, "[app]\n" + app)
