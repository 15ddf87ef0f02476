"""`awsprac stop` / `start` for the app tier: the service scaled to 0, and back to `app.desired_count`.

Stop parks the service before the DB and the NAT instance stop; start scales it back after them (its
tasks need the NAT to pull the image and the secret). The load balancer cannot be parked: it bills
by the hour while it exists (`awsprac cost` says so); only `destroy` stops that.
"""

from __future__ import annotations

from awsprac.context import Context
from awsprac.steps.app.common import names

PARKED, SCALED = "parked", "scaled"


def target(ctx: Context, starting: bool):
    """An operate.Target for the service, or None when the tier is off or has no service."""
    from awsprac import operate
    from awsprac.steps.app import rollout

    if not ctx.cfg.app.enabled:
        return None
    ecs, name = ctx.aws.client("ecs"), names(ctx.cfg).backend
    wanted = ctx.cfg.app.desired_count

    def read() -> str | None:
        try:
            service = rollout.describe(ecs, name, name)
        except Exception as exc:
            from awsprac.aws import is_not_found

            if is_not_found(exc):
                return None
            raise
        if service is None:
            return None
        return PARKED if service.get("desiredCount") == 0 else SCALED

    def act() -> None:
        ecs.update_service(cluster=name, service=name, desiredCount=wanted if starting else 0)

    return operate.Target(
        f"ECS service {name}", read, act,
        act_from=frozenset({PARKED}) if starting else frozenset({SCALED}),
        done=frozenset({SCALED}) if starting else frozenset({PARKED}),
        broken=frozenset(), busy_codes=(), timeout=120.0, interval=5.0,
    )


def advice(ctx: Context, starting: bool) -> None:
    if ctx.cfg.app.enabled and not starting:
        ctx.report.info(f"the load balancer {names(ctx.cfg).alb} keeps billing while the service is parked (`awsprac cost` shows it; `awsprac destroy` ends it)")
