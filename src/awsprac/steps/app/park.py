"""The app family's park facet (`awsprac stop` / `start`): the service scaled to 0, and back to
`app.desired_count`.

The step comes last in the registry, so the walker stops it first (before the DB and the NAT instance)
and starts it last (its tasks need the NAT to pull the image and the secret). The load balancer cannot
be parked: it bills by the hour while it exists (`awsprac cost` says so); only `destroy` stops that.
"""

from __future__ import annotations

from awsprac.engine.context import Context
from awsprac.engine.park import Parked, Target
from awsprac.steps.app.common import names

PARK_LABEL = ("ECS service", "ECS service")  # short, and as in "no ECS service"
PARKED, SCALED = "parked", "scaled"
PARKED_STATES = frozenset({PARKED})  # the service at desired count 0 (what `stop` leaves): status says parked, plan no drift
SERVICE_WAIT = 120.0
SERVICE_POLL = 5.0


def park_target(ctx: Context, starting: bool) -> Parked | None:
    """None while the tier is off: the family has nothing in this env to speak of."""
    from awsprac.steps.app import rollout

    cfg = ctx.cfg
    if not cfg.app.enabled:
        return None
    ecs, n = ctx.aws.client("ecs"), names(cfg)
    wanted = cfg.app.desired_count

    def read() -> str | None:
        service = rollout.describe(ctx, n)
        if service is None:
            return None
        return PARKED if service.get("desiredCount") == 0 else SCALED

    def act() -> None:
        ecs.update_service(cluster=n.cluster, service=n.service, desiredCount=wanted if starting else 0)

    def advise(outcome: dict) -> None:
        if not starting:
            ctx.report.info(f"the load balancer {n.alb} keeps billing while the service is parked (`awsprac cost` shows it; `awsprac destroy` ends it)")

    target = Target(
        f"ECS service {n.service}", read, act,
        act_from=frozenset({PARKED}) if starting else frozenset({SCALED}),
        done=frozenset({SCALED}) if starting else frozenset({PARKED}),
        broken=frozenset(), busy_codes=(), timeout=SERVICE_WAIT, interval=SERVICE_POLL,
    )
    state = read()
    return Parked(target if state is not None else None, state,
                  absent=f"no ECS service {n.service} in env {cfg.env}: nothing to {{verb}} there", advise=advise)
