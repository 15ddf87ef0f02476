"""The one rollout watch: `awsprac up` (step app, after it creates or updates the service) and
`awsprac app deploy` both wait here until the deployment of a task definition is done.

Done is the PRIMARY deployment's `rolloutState` COMPLETED with every desired task running, not the
`services_stable` waiter (which calls a circuit-breaker rollback "stable"). The service's new events are
shown as they come. A FAILED rollout (or the service put back on another revision) raises RolloutFailed
with what AWS said: the stopped tasks' reasons and, when they say the tasks could not reach ECR or
Secrets Manager, that the NAT is probably not forwarding. A timeout leaves it rolling: running the same
command again resumes the watch.
"""

from __future__ import annotations

import re

from awsprac.engine import waiting
from awsprac.engine.errors import AwspracError
from awsprac.steps.app.common import Names, names

ROLLOUT_TIMEOUT = 20 * 60.0  # seconds: the breaker needs >= 10 failed tasks before it rolls back
POLL = 10.0
# Reasons a task stops with when it cannot reach ECR or Secrets Manager: the NAT is not forwarding.
NO_EGRESS = (re.compile(r"CannotPullContainerError"), re.compile(r"ResourceInitializationError.*i/o timeout", re.S))


class RolloutFailed(AwspracError):
    """The rollout ended FAILED (exit 1): the circuit breaker put the service back on what it ran before."""


def describe(ctx, n: Names) -> dict | None:
    """The env's ECS service as AWS describes it, or None (no cluster, no service, or only an INACTIVE one)."""
    from awsprac.engine.aws import error_code, translate

    with translate("looking up", f"ECS service {n.service}"):
        try:
            found = ctx.aws.client("ecs").describe_services(cluster=n.cluster, services=[n.service])["services"]
        except Exception as exc:
            if error_code(exc) != "ClusterNotFoundException":
                raise
            return None
    return next((s for s in found if s.get("status") == "ACTIVE"), None)  # a deleted service stays visible as INACTIVE


def primary(service: dict) -> dict:
    return next((d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), {})


def revision(arn: str) -> str:
    return arn.rpartition("/")[2]


def outcome(service: dict, arn: str) -> tuple[str, str]:
    """("done" | "failed" | "waiting", what to show) for the deployment of task definition `arn`."""
    deployments = service.get("deployments", [])
    ours = next((d for d in deployments if d.get("taskDefinition") == arn), None)
    first = primary(service) or None
    if service.get("taskDefinition") != arn or (ours is not None and ours.get("rolloutState") == "FAILED"):
        return "failed", (ours or {}).get("rolloutStateReason", "rolled back")
    if ours is None or ours is not first:
        return "waiting", "deployment starting"
    running, desired, pending = ours.get("runningCount", 0), ours.get("desiredCount", 0), ours.get("pendingCount", 0)
    state = ours.get("rolloutState")
    # Without a rollout state (no circuit breaker on a hand-made service): done once the old tasks are gone.
    completed = state == "COMPLETED" if state else len(deployments) == 1
    if completed and running == desired:
        return "done", f"{running}/{desired} running"
    return "waiting", f"{state or 'IN_PROGRESS'}: {running}/{desired} running, {pending} pending"


def watch(ctx, arn: str, ref: str, seen: set[str] | None = None, doing: str = "deploy", timeout: float = ROLLOUT_TIMEOUT) -> str:
    """Poll the service until the rollout of task definition `arn` (running `ref`, an image or the revision)
    completes (returns its status) or fails (RolloutFailed: "{doing} of {ref} to SERVICE failed: ..."),
    showing the service's events not in `seen` as they come."""
    n = names(ctx.cfg)
    seen = set() if seen is None else seen
    last: dict = {}

    def check() -> tuple[bool, str]:
        last["service"] = service = describe(ctx, n)
        if service is None:
            raise AwspracError(f"ECS service {n.service} disappeared while awsprac waited for its rollout")
        for event in reversed(service.get("events", [])):
            if event.get("id") not in seen:
                seen.add(event.get("id"))
                ctx.report.info(f"  {event.get('message', '')}")
        last["outcome"], status = outcome(service, arn)
        return last["outcome"] != "waiting", status

    status = waiting.wait_for(ctx.report, f"rolling out {ref} to {n.service}", check, timeout, POLL)
    if last["outcome"] == "failed":
        reasons = stopped_reasons(ctx, n, arn)
        if reasons:
            ctx.report.info("stopped tasks:")
            for reason, count in reasons.items():
                ctx.report.info(f"  {reason}" + (f" ({count} tasks)" if count > 1 else ""))
        raise RolloutFailed(f"{doing} of {ref} to {n.service} failed: {failure_text(ctx, last['service'], arn, reasons)}")
    which = f"{revision(arn)}, " if ref != revision(arn) else ""
    ctx.report.applied(f"{n.service} runs {ref} ({which}{status})")
    return status


def failure_text(ctx, service: dict, arn: str, reasons: dict[str, int] | None = None, shown: str = "above") -> str:
    """What happened and what to do (for `deploy`, `up` and `doctor` alike); `shown`: where the events and
    the stopped tasks' reasons are shown."""
    n, env = names(ctx.cfg), ctx.cfg.env
    if reasons is None:
        reasons = stopped_reasons(ctx, n, arn)
    now = service.get("taskDefinition", "")
    back = f"the deployment circuit breaker rolled the service back to {revision(now)}" if now and now != arn else "the rollout FAILED"
    if any(sign.search(reason) for reason in reasons for sign in NO_EGRESS):
        advice = (
            "the tasks could not reach ECR or Secrets Manager: the NAT is probably not forwarding; "
            f"check it with `awsprac nat verify --env {env}` and `awsprac doctor --env {env}`"
        )
    else:
        advice = f"see the events and stopped tasks {shown}, and what the container said: `awsprac app logs --env {env} --since 30m`"
    return f"{back}; {advice}"


def stopped_reasons(ctx, n: Names, arn: str | None) -> dict[str, int]:
    """Distinct stoppedReason (and container reasons) of the service's stopped tasks (of `arn`), with counts."""
    from awsprac.engine.aws import translate

    ecs = ctx.aws.client("ecs")
    with translate("reading", f"the stopped tasks of ECS service {n.service}"):
        task_arns = ecs.list_tasks(cluster=n.cluster, serviceName=n.service, desiredStatus="STOPPED")["taskArns"][:100]
        tasks = ecs.describe_tasks(cluster=n.cluster, tasks=task_arns)["tasks"] if task_arns else []
    reasons: dict[str, int] = {}
    for task in tasks:
        if arn is not None and task.get("taskDefinitionArn") not in (arn, None):
            continue
        said = [task.get("stoppedReason", "")] + [c.get("reason", "") for c in task.get("containers", [])]
        for reason in dict.fromkeys(r for r in said if r):
            reasons[reason] = reasons.get(reason, 0) + 1
    return reasons
