"""`awsprac doctor` checks for the app tier: no image to run, a recorded tag the repository lacks, a
failed rollout (with why), a load balancer that failed to provision. Read-only, like every check."""

from __future__ import annotations


def check_app(scan) -> list:
    from awsprac.engine.doctor import Finding
    from awsprac.steps.app import alb, rollout, service
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
    if have.service is not None and rollout.primary(have.service.raw).get("rolloutState") == "FAILED":
        raw = have.service.raw
        findings.append(Finding("app rollout", f"ECS service {n.service}", "the rollout failed: " + rollout.failure_text(ctx, raw, rollout.primary(raw).get("taskDefinition", "")),
                                f"fix what the events say, then `awsprac up --env {cfg.env}` (or `awsprac app deploy --env {cfg.env}`)"))
    if lb is not None and lb.state == "failed":
        findings.append(Finding("app load balancer", f"load balancer {n.alb} ({lb.id})", "failed to provision",
                                f"delete it (`aws elbv2 delete-load-balancer --load-balancer-arn {lb.id}`), then `awsprac up --env {cfg.env}`"))
    return findings


doctor_checks = (check_app,)
