"""Step `app-off`: the app tier taken down once `[app] enabled = false`, as Terraform treats a removed
module: `plan` lists each of its resources as a delete, `up` asks and removes them, `destroy` too.

With the tier off, steps app-iam, app-network, app-alb and app describe nothing and look at nothing.
This step notices a tier that still stands from reads every look makes anyway: the VPC's security
groups (one batched read, shared with steps nat, rds and db-ingress) hold this env's backend and ALB
groups, the account's roles (one batched IAM read) its two roles. Only then is the rest of the tier
looked at (by its own steps, as if it were on) and its teardown planned in the order AWS requires, each
change carried out by the step that owns its kind:

    service scaled to 0, deleted, waited inactive -> task definitions -> cluster -> listener ->
    target group -> load balancer (waited until gone) -> the DB group's rule from the backend group
    (step db-ingress leaves it to this step: the API keeps its database until the service is gone) ->
    security groups, backend then ALB (retried while interfaces linger) -> policy -> roles (last: what a
    removal stopped on the way is noticed by).

The log group is kept (logs are data): the plan says so, and `awsprac destroy --env ENV --force`
removes it. `destroy` with the tier off looks at the whole tier whatever the groups say (a removal
stopped after the groups went leaves nothing else to notice it by), and removes it in the same order.

It requires only the subnets and the internet gateway: on destroy they (and the VPC) outlive the
load balancer, which holds interfaces and public addresses in them; on `up` nothing else it does waits
for the rest of the env (a database still being created does not hold the tier's removal back). The
DB group's rules it reads as step db-ingress does, from the same one read of the VPC's groups.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from awsprac.engine import batched, tags
from awsprac.engine.context import Context
from awsprac.engine.dag import concurrently
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change, RemovesOnly
from awsprac.steps.app import loggroup
from awsprac.steps.app.common import names

NAME = "app-off"
REQUIRES = ("subnets", "igw")
OBSERVES_AFTER = ("vpc",)  # the VPC's id

OFF = "[app] enabled = false"


def desired(cfg) -> list:
    return []  # nothing of its own: it only removes


@dataclass(frozen=True)
class Observed(RemovesOnly):
    standing: tuple[Change, ...] = ()  # the tier's teardown but its log group, in AWS's order
    logs: Found | None = None  # the log group, its tags read
    looked: bool = False  # the tier was looked at (else: the tier is on, or none of its groups stands)


def observe(ctx: Context) -> Observed:
    if ctx.cfg.app.enabled:
        return Observed()
    if not _stands(ctx):
        return Observed()
    return _look(ctx)


def _stands(ctx: Context) -> bool:
    """This env's tier groups in the VPC, or its roles in the account: both come from reads every look makes
    anyway. The roles go last on removal (then the groups are gone already): a removal stopped on the way is
    still noticed."""
    n = names(ctx.cfg)
    groups = batched.security_groups(ctx, ctx.observed["vpc"].id, [n.backend, n.alb])
    if any(ctx.owns(group) for group in groups.values()):
        return True
    roles = [batched.iam_role(ctx, name) for name in (n.execution_role, n.backend) if name in batched.iam_roles(ctx)]
    return any(role is not None and tags.is_owned(tags.as_dict(role.get("Tags")), ctx.cfg.project, ctx.cfg.env) for role in roles)


def _look(ctx: Context) -> Observed:
    """The tier as its own steps see it when it is on, and their teardowns, in AWS's order."""
    from awsprac.steps.app import alb, iam, network, service
    from awsprac.steps.rds import ingress

    on = dataclasses.replace(ctx.cfg, app=dataclasses.replace(ctx.cfg.app, enabled=True))
    view = dataclasses.replace(ctx, cfg=on, observed=dict(ctx.observed))  # their looks stay out of ctx.observed
    groups = view.observed[network.NAME] = network.observe(view)  # the load balancer's look reads it
    roles, front, back = concurrently(lambda: iam.observe(view), lambda: alb.observe(view), lambda: service.observe(view))
    changes = (service.teardown(view, dataclasses.replace(back, logs=None)) + alb.teardown(view, front)
               + ingress.removed_with(ctx, ingress.observe(ctx), NAME) + network.teardown(view, groups) + iam.teardown(view, roles))
    return Observed(tuple(changes), loggroup.with_read_tags(ctx, back.logs), looked=True)


def _off(change: Change) -> Change:
    note = "; ".join(x for x in (change.note, OFF) if x) if change.action is Action.DELETE else change.note
    return dataclasses.replace(change, step=NAME, note=note)


def diff(ctx: Context, want: list, have: Observed) -> list[Change]:
    changes = [_off(c) for c in have.standing]
    if have.logs is not None and ctx.owns(have.logs):
        changes.append(loggroup.kept(ctx, NAME, have.logs, f"kept: logs are data; `awsprac destroy --env {ctx.cfg.env} --force` removes them"))
    return changes


def apply(ctx: Context, change: Change) -> None:
    _owner(change.kind).apply(ctx, change)


def _owner(kind: str):
    """The step whose apply() carries out a change of this kind."""
    from awsprac.steps.app import alb, iam, network, service
    from awsprac.steps.rds import ingress

    owners = {service: (service.SERVICE, service.TASKDEF, service.CLUSTER, service.LOGS), alb: (alb.LISTENER, alb.TG, alb.LB),
              ingress: (ingress.RULE,), network: (network.KIND,), iam: (iam.ROLE, iam.POLICY)}
    return next(step for step, kinds in owners.items() if kind in kinds)


def teardown(ctx: Context, have: Observed) -> list[Change]:
    """destroy with the tier off: the whole tier, whatever the groups said; the log group as destroy always treats it."""
    if ctx.cfg.app.enabled:
        return []  # the tier's own steps delete it
    tier = have if have.looked else _look(ctx)
    return [_off(c) for c in (*tier.standing, *loggroup.teardown(ctx, NAME, tier.logs, tags_read=True))]


# --- doctor ---


def doctor_names(cfg) -> dict[str, set[str]]:
    """The tier's groups and roles, on or off: a tier switched off but standing is not orphaned (the check
    below says what to do about it)."""
    from awsprac.steps.app import iam, network

    n = names(cfg)
    return {network.KIND: {n.alb, n.backend}, iam.ROLE: {n.execution_role, n.backend}}


def check_standing(scan) -> list:
    """`[app] enabled = false` while this env's tier still stands (and bills): `up` removes it."""
    from awsprac.engine.doctor import Finding

    cfg = scan.cfg
    if cfg.app.enabled or not scan.vpc_id:
        return []
    n = names(cfg)
    groups = batched.security_groups(scan.ctx, scan.vpc_id, [n.backend, n.alb])
    standing = [f"{name} ({group.id})" for name, group in sorted(groups.items()) if scan.ctx.owns(group)]
    if not standing:
        return []
    return [Finding("app tier", f"security group {', '.join(standing)}",
                    f"{OFF} in {cfg.path}, but the tier still stands (its load balancer and service bill while they do)",
                    f"`awsprac up --env {cfg.env}` removes it (`awsprac plan --env {cfg.env}` shows what); to keep it, set [app] enabled = true")]


doctor_checks = (check_standing,)
