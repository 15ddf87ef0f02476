"""`awsprac app deploy` and `awsprac app url`: roll the API's service to an image, and say where it answers.

A deploy registers a task definition revision that copies the service's current one with only the
`api` container's image changed: secrets stay `valueFrom` ARNs (no secret is ever read), so no value
can reach the revision, the screen or a log. The service is pointed at it and the rollout watched until
the new PRIMARY deployment's `rolloutState` is COMPLETED with every desired task running. The
`services_stable` waiter is not used: after a circuit-breaker rollback it reports success.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from awsprac.engine import waiting
from awsprac.engine.errors import AwspracError, MissingPrerequisite, UsageError

CONTAINER = "api"
ROLLOUT_TIMEOUT = 20 * 60.0  # seconds: the breaker needs >= 10 failed tasks before it rolls back
POLL = 10.0
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # what docker accepts as a tag
# Reasons a task stops with when it cannot reach ECR or Secrets Manager: the NAT is not forwarding.
NO_EGRESS = (re.compile(r"CannotPullContainerError"), re.compile(r"ResourceInitializationError.*i/o timeout", re.S))


class DeployFailed(AwspracError):
    """The rollout ended FAILED (exit 1): the service runs what it ran before."""


@dataclass(frozen=True)
class Names:
    cluster: str
    service: str
    family: str
    alb: str
    log_group: str


def names(cfg) -> Names:
    backend = cfg.name("{project}-backend-{env}")
    return Names(cluster=backend, service=backend, family=backend, alb=cfg.name("{project}-alb-{env}"), log_group=f"/ecs/{backend}")


def build_the_tier(cfg) -> str:
    return f"enable the tier (`[app] enabled = true` in {cfg.path}) and run `awsprac up --env {cfg.env}`"


def find_service(ctx) -> dict:
    """The env's ECS service as AWS describes it; exit 2 saying how to build it when there is none."""
    from awsprac.engine.aws import error_code, translate

    n = names(ctx.cfg)
    with translate("looking up", f"ECS service {n.service}"):
        try:
            found = ctx.aws.client("ecs").describe_services(cluster=n.cluster, services=[n.service])["services"]
        except Exception as exc:
            if error_code(exc) != "ClusterNotFoundException":
                raise
            found = []
    live = [s for s in found if s.get("status") == "ACTIVE"]  # a deleted service stays visible as INACTIVE
    if not live:
        raise MissingPrerequisite(
            f"no ECS service {n.service} in cluster {n.cluster}: {build_the_tier(ctx.cfg)} "
            f"(with an image released first: `awsprac image release --env {ctx.cfg.env} --dockerfile-dir DIR --record-tag`)"
        )
    return live[0]


# --- deploy ---


def deploy(app, tag: str | None) -> None:
    from awsprac.steps.ecr import image as images
    from awsprac.engine.aws import translate

    if tag is not None and not TAG.match(tag):
        raise UsageError(f"--tag {tag!r} is not an image tag (letters, digits, '_', '.', '-'; at most 128 characters)")
    ctx = app.context()
    n = names(app.cfg)
    service = find_service(ctx)
    where = images.target(app)
    if tag is None:
        tag = images.recorded_ref(app).rpartition(":")[2]
    ref = where.ref(tag)
    if not images.tag_exists(app, where, tag):
        raise AwspracError(
            f"image tag {tag} is not in ECR repository {where.repository}: push it first "
            f"(`awsprac image release --env {app.cfg.env} --dockerfile-dir DIR`) or name a tag that is there; nothing was changed"
        )
    current = task_definition(ctx, service["taskDefinition"])
    seen = {e["id"] for e in service.get("events", [])}
    if _image(current) == ref:
        arn = current["taskDefinitionArn"]
        outcome = rollout(service, arn)[0]
        if outcome == "done":
            app.report.info(f"{n.service} already runs {ref} ({_revision(arn)}): nothing to deploy")
            app.report.line(ref)
            return
        if outcome == "waiting":  # a deploy that stopped watching (Ctrl-C, timeout): watch it again
            app.report.info(f"{n.service} is already rolling out {ref} ({_revision(arn)}): watching it")
    else:
        arn = register(ctx, current, ref)
        with translate("updating", f"ECS service {n.service}"):
            ctx.aws.client("ecs").update_service(cluster=n.cluster, service=n.service, taskDefinition=arn)
        app.report.applied(f"{n.service} -> {_revision(arn)} ({ref})")
    watch(ctx, arn, ref, seen)
    app.report.line(ref)


def task_definition(ctx, arn: str) -> dict:
    from awsprac.engine.aws import translate

    with translate("reading", f"task definition {arn}"):
        answer = ctx.aws.client("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"])
    return {**answer["taskDefinition"], "tags": answer.get("tags", [])}


def _image(definition: dict) -> str:
    for container in definition["containerDefinitions"]:
        if container["name"] == CONTAINER:
            return container["image"]
    raise AwspracError(
        f"task definition {definition['taskDefinitionArn']} has no container named {CONTAINER!r}: "
        f"`awsprac up` puts the service back on awsprac's task definition"
    )


def revision_request(ecs, current: dict, ref: str, ownership: dict[str, str]) -> dict:
    """RegisterTaskDefinition's parameters: every setting of `current` (what the API accepts back), the `api`
    container's image set to `ref`, this env's ownership tags. Secrets are copied as they are: ARNs."""
    accepted = ecs.meta.service_model.operation_model("RegisterTaskDefinition").input_shape.members
    request = {key: value for key, value in current.items() if key in accepted and key != "tags"}
    request["containerDefinitions"] = [
        {**c, "image": ref} if c["name"] == CONTAINER else c for c in current["containerDefinitions"]
    ]
    kept = {t["key"]: t["value"] for t in current.get("tags", []) if not t["key"].startswith("aws:")}
    request["tags"] = [{"key": k, "value": v} for k, v in {**kept, **ownership}.items()]
    return request


def register(ctx, current: dict, ref: str) -> str:
    """The new revision's ARN. The family's latest revision is reused when it is exactly this one (a deploy
    that stopped between registering and updating the service): no revision piles up per retry."""
    from awsprac.engine.aws import translate

    ecs = ctx.aws.client("ecs")
    family = current["family"]
    request = revision_request(ecs, current, ref, ctx.tags(family))
    with translate("registering", f"a revision of task definition {family}"):
        latest = task_definition(ctx, family)
        if latest["taskDefinitionArn"] != current["taskDefinitionArn"] and _same(revision_request(ecs, latest, _image(latest), {}), request):
            ctx.report.info(f"reusing {_revision(latest['taskDefinitionArn'])}, registered with {ref} by an earlier deploy")
            return latest["taskDefinitionArn"]
        arn = ecs.register_task_definition(**request)["taskDefinition"]["taskDefinitionArn"]
    ctx.report.applied(f"registered {_revision(arn)} with image {ref}")
    return arn


def _same(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k != "tags"} == {k: v for k, v in b.items() if k != "tags"}


def _revision(arn: str) -> str:
    return arn.rpartition("/")[2]


def rollout(service: dict, arn: str) -> tuple[str, str]:
    """("done" | "failed" | "waiting", what to show) for the deployment of task definition `arn`."""
    deployments = service.get("deployments", [])
    ours = next((d for d in deployments if d.get("taskDefinition") == arn), None)
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    if service.get("taskDefinition") != arn or (ours is not None and ours.get("rolloutState") == "FAILED"):
        return "failed", (ours or {}).get("rolloutStateReason", "rolled back")
    if ours is None or ours is not primary:
        return "waiting", "deployment starting"
    running, desired, pending = ours.get("runningCount", 0), ours.get("desiredCount", 0), ours.get("pendingCount", 0)
    state = ours.get("rolloutState")
    # Without a rollout state (no circuit breaker on a hand-made service): done once the old tasks are gone.
    completed = state == "COMPLETED" if state else len(deployments) == 1
    if completed and running == desired:
        return "done", f"{running}/{desired} running"
    return "waiting", f"{state or 'IN_PROGRESS'}: {running}/{desired} running, {pending} pending"


def watch(ctx, arn: str, ref: str, seen: set[str]) -> None:
    """Poll the service until the rollout of `arn` completes (returns) or fails (DeployFailed), showing the
    service's new events as they come. A timeout leaves it rolling: the same command resumes the watch."""
    n = names(ctx.cfg)
    last: dict = {}

    def check() -> tuple[bool, str]:
        last["service"] = service = find_service(ctx)
        for event in reversed(service.get("events", [])):
            if event["id"] not in seen:
                seen.add(event["id"])
                ctx.report.info(f"  {event['message']}")
        outcome, status = rollout(service, arn)
        last["outcome"] = outcome
        return outcome != "waiting", status

    status = waiting.wait_for(ctx.report, f"rolling out {ref} to {n.service}", check, ROLLOUT_TIMEOUT, POLL)
    if last["outcome"] == "failed":
        fail(ctx, last["service"], arn, ref)
    ctx.report.applied(f"{n.service} runs {ref} ({_revision(arn)}, {status})")


def fail(ctx, service: dict, arn: str, ref: str) -> None:
    """Say what AWS said (the stopped tasks' reasons; the service's events were shown as they came) and what
    to do, then exit 1."""
    n, env = names(ctx.cfg), ctx.cfg.env
    reasons = stopped_reasons(ctx, arn)
    if reasons:
        ctx.report.info("stopped tasks:")
        for reason, count in reasons.items():
            ctx.report.info(f"  {reason}" + (f" ({count} tasks)" if count > 1 else ""))
    now = service.get("taskDefinition", "")
    back = f"the deployment circuit breaker rolled the service back to {_revision(now)}" if now and now != arn else "the rollout FAILED"
    if any(sign.search(reason) for reason in reasons for sign in NO_EGRESS):
        advice = (
            "the tasks could not reach ECR or Secrets Manager: the NAT is probably not forwarding; "
            f"check it with `awsprac nat verify --env {env}` and `awsprac doctor --env {env}`"
        )
    else:
        advice = f"see the events and stopped tasks above, and what the container said: `awsprac app logs --env {env} --since 30m`"
    raise DeployFailed(f"deploy of {ref} to {n.service} failed: {back}; {advice}")


def stopped_reasons(ctx, arn: str) -> dict[str, int]:
    """Distinct stoppedReason (and container reasons) of the service's stopped tasks of `arn`, with counts."""
    from awsprac.engine.aws import translate

    n, ecs = names(ctx.cfg), ctx.aws.client("ecs")
    with translate("reading", f"the stopped tasks of ECS service {n.service}"):
        task_arns = ecs.list_tasks(cluster=n.cluster, serviceName=n.service, desiredStatus="STOPPED")["taskArns"][:100]
        tasks = ecs.describe_tasks(cluster=n.cluster, tasks=task_arns)["tasks"] if task_arns else []
    reasons: dict[str, int] = {}
    for task in tasks:
        if task.get("taskDefinitionArn") not in (arn, None):
            continue
        said = [task.get("stoppedReason", "")] + [c.get("reason", "") for c in task.get("containers", [])]
        for reason in dict.fromkeys(r for r in said if r):
            reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


# --- url ---


def url(app) -> None:
    from awsprac.engine.aws import error_code, translate

    ctx = app.context()
    n = names(app.cfg)
    elb = ctx.aws.client("elbv2")
    with translate("looking up", f"load balancer {n.alb}"):
        try:
            balancer = elb.describe_load_balancers(Names=[n.alb])["LoadBalancers"][0]
        except Exception as exc:
            if error_code(exc) != "LoadBalancerNotFound":
                raise
            raise MissingPrerequisite(f"no load balancer {n.alb}: {build_the_tier(app.cfg)}") from None
        listeners = elb.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    if not listeners:
        raise MissingPrerequisite(f"load balancer {n.alb} has no listener yet: run `awsprac up --env {app.cfg.env}`")
    app.report.line(address(balancer["DNSName"], listeners))


def address(dns: str, listeners: list[dict]) -> str:
    """https:// when a listener speaks HTTPS (443), else http://; a port only when it is not the scheme's own."""
    secure = [l for l in listeners if l.get("Protocol") == "HTTPS"]
    listener = min(secure or listeners, key=lambda l: l.get("Port", 0))
    scheme = "https" if secure else "http"
    port = listener.get("Port")
    return f"{scheme}://{dns}" + ("" if port == {"https": 443, "http": 80}[scheme] else f":{port}")
