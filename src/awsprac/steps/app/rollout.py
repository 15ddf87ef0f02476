"""Waiting for a service's rollout: the PRIMARY deployment's `rolloutState`, not `services_stable`
(which calls a circuit-breaker rollback "stable"). A FAILED rollout is reported with the service's
latest events and the stopped tasks' reasons."""

from __future__ import annotations

from awsprac import waiting
from awsprac.context import Context
from awsprac.errors import AwspracError

ROLLOUT_WAIT = 20 * 60.0
POLL = 10.0
NO_NAT_HINT = "the private subnets cannot reach ECR or Secrets Manager: check the NAT (`awsprac status`) and its route"


class RolloutFailed(AwspracError):
    """The circuit breaker stopped the deployment (and rolled back to the last working revision)."""


def primary(service: dict) -> dict:
    return next((d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), {})


def describe(ecs, cluster: str, name: str) -> dict | None:
    services = ecs.describe_services(cluster=cluster, services=[name]).get("services", [])
    return next((s for s in services if s.get("status") != "INACTIVE"), None)


def stopped_reasons(ecs, cluster: str, name: str, limit: int = 3) -> list[str]:
    arns = ecs.list_tasks(cluster=cluster, serviceName=name, desiredStatus="STOPPED").get("taskArns", [])[:limit]
    if not arns:
        return []
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns).get("tasks", [])
    return [t.get("stoppedReason", "") for t in tasks if t.get("stoppedReason")]


def failure_text(ecs, cluster: str, service: dict) -> str:
    events = [e.get("message", "") for e in service.get("events", [])[:3]]
    reasons = stopped_reasons(ecs, cluster, service["serviceName"])
    text = f"service {service['serviceName']}: the rollout failed and the circuit breaker rolled it back"
    if reasons:
        text += "; stopped tasks: " + " | ".join(reasons)
        if any("i/o timeout" in r or "CannotPullContainerError" in r for r in reasons):
            text += f" ({NO_NAT_HINT})"
    if events:
        text += "; latest events: " + " | ".join(events)
    return text


def wait(ctx: Context, cluster: str, name: str, timeout: float = ROLLOUT_WAIT) -> None:
    """Until the PRIMARY deployment is COMPLETED with its tasks running; FAILED raises RolloutFailed."""
    ecs = ctx.aws.client("ecs")

    def check() -> tuple[bool, str]:
        service = describe(ecs, cluster, name)
        if service is None:
            raise AwspracError(f"service {name} disappeared while awsprac waited for its rollout")
        deployment = primary(service)
        state = deployment.get("rolloutState", "")
        if state == "FAILED":
            raise RolloutFailed(failure_text(ecs, cluster, service))
        running, wanted = deployment.get("runningCount", 0), deployment.get("desiredCount", service.get("desiredCount", 0))
        return state == "COMPLETED" and running >= wanted, f"{state or 'starting'}, {running}/{wanted} tasks running"

    waiting.wait_for(ctx.report, f"service {name} rolling out", check, timeout=timeout, interval=POLL)
