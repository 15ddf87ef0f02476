"""`awsprac doctor` checks for the app tier: no image to run, a recorded tag the repository lacks, a
failed rollout (with the stopped tasks' reasons and the service's latest events), a load balancer that
failed to provision. Read-only, like every check."""

from __future__ import annotations


def check_app(scan) -> list:
    from awsprac.engine.doctor import Finding
    from awsprac.steps.app import alb, service
    from awsprac.steps.app.common import names

    cfg = scan.cfg
    if not cfg.app.enabled:
        return []
    ctx, n = scan.ctx, names(cfg)
    have, lb = service.observe(ctx), alb.observe(ctx).lb
    findings = []
    release = f"`awsprac image release --env {cfg.env} --record-tag`, then `awsprac up --env {cfg.env}`"
    if have.tag is None:
        findings.append(Finding("app image", f"SSM parameter {service.tag_parameter(cfg)}", "no image tag recorded: the API has nothing to run", release))
    elif have.tag_in_repository is False:
        findings.append(Finding("app image", f"SSM parameter {service.tag_parameter(cfg)}",
                                f"records tag {have.tag!r}, which the ECR repository does not hold", release))
    failed = _failed_deployment(have.service.raw) if have.service is not None else None
    if failed is not None:
        findings.append(_rollout_finding(ctx, have.service.raw, failed))
    if lb is not None and lb.state == "failed":
        why = (lb.raw.get("State") or {}).get("Reason")
        findings.append(Finding("app load balancer", f"load balancer {n.alb} ({lb.id})", "failed to provision" + (f": {why}" if why else ""),
                                f"delete it (`aws elbv2 delete-load-balancer --load-balancer-arn {lb.id}`), then `awsprac up --env {cfg.env}`"))
    return findings


EVENTS = 3  # the service's latest events a finding quotes


def _failed_deployment(service: dict) -> dict | None:
    """A deployment whose rollout FAILED: the PRIMARY one (a circuit breaker without rollback), or the one
    the breaker is rolling back from (ACTIVE, FAILED, until its tasks are gone)."""
    return next((d for d in service.get("deployments", []) if d.get("rolloutState") == "FAILED"), None)


def _rollout_finding(ctx, service: dict, failed: dict):
    from awsprac.engine.doctor import Finding
    from awsprac.steps.app import rollout
    from awsprac.steps.app.common import names

    n, env = names(ctx.cfg), ctx.cfg.env
    arn = failed.get("taskDefinition", "")
    reasons = rollout.stopped_reasons(ctx, n, arn)
    told = ["stopped tasks: " + " | ".join(r + (f" ({count} tasks)" if count > 1 else "") for r, count in reasons.items())] if reasons else []
    events = [e.get("message", "") for e in service.get("events", [])[:EVENTS]]
    told += [f"latest events: {' | '.join(events)}"] if events else []
    why = f" ({failed['rolloutStateReason']})" if failed.get("rolloutStateReason") else ""
    return Finding("app rollout", f"ECS service {n.service}",
                   f"the rollout of {rollout.revision(arn)} failed{why}: " + rollout.failure_text(ctx, service, arn, reasons, shown="after this")
                   + "".join(f"; {line}" for line in told),
                   f"fix what the stopped tasks and events say, then `awsprac up --env {env}` (or `awsprac app deploy --env {env}`)")


doctor_checks = (check_app,)
