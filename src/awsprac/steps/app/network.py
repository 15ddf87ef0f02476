"""Step `app-network`: security groups `{project}-alb-{env}` (HTTPS 443, or HTTP 80 while no certificate is
configured, from anywhere) and `{project}-backend-{env}` (the container port from the ALB's group only).

The DB's group lets the backend in on 5432: that rule is step rds's (it owns the DB's group). On
destroy, a group's references in other groups are revoked first (DB -> backend -> ALB), then the group
is deleted, retrying while the load balancer's and the tasks' network interfaces linger.
"""

from __future__ import annotations

from dataclasses import dataclass

from awsprac.engine import batched, tags

from awsprac.engine import sgrules
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import applying, delete_change, delete_when_free, network_interfaces, retag, update
from awsprac.engine.sgrules import ANYWHERE, Rule
from awsprac.steps.app.common import listener_port, names

NAME = "app-network"
REQUIRES = ("vpc",)

KIND = "security group"
DESCRIPTION = "Managed by Terraform"  # what the guide's console screens leave; kept as is
ALL_OUT = "all traffic to 0.0.0.0/0"
LISTENER_PORTS = (80, 443)


@dataclass(frozen=True)
class SgSpec:
    name: str
    inbound: tuple[Rule, ...]  # a rule from another group names it in `source`; its id is found at diff time
    description: str = DESCRIPTION
    kind: str = KIND


@dataclass(frozen=True)
class Observed:
    groups: tuple[tuple[str, Found], ...] = ()

    @property
    def ready(self) -> bool:
        return True

    def get(self, name: str) -> Found | None:
        return dict(self.groups).get(name)

    def resources(self) -> list[Found]:
        return [f for _, f in self.groups]

    def outputs(self) -> dict:
        return {f"{'alb' if '-alb-' in n else 'backend'}_security_group_id": f.id for n, f in self.groups}


def desired(cfg: EnvConfig) -> list[SgSpec]:
    if not cfg.app.enabled:
        return []
    n = names(cfg)
    alb = SgSpec(n.alb, (Rule(listener_port(cfg), cidr=ANYWHERE),))
    backend = SgSpec(n.backend, (Rule(cfg.app.container_port, source=n.alb),))
    return [alb, backend]


def observe(ctx: Context) -> Observed:
    want = desired(ctx.cfg)
    if not want:
        return Observed()
    # One read of the VPC's groups, shared with steps nat and rds.
    found = batched.security_groups(ctx, ctx.observed["vpc"].id, [s.name for s in want])
    return Observed(tuple((s.name, found[s.name]) for s in want if s.name in found))


def group_id(ctx: Context, name: str) -> str:
    """A group of this step by name: made in this run, or observed; "" while still to be made."""
    if (KIND, name) in ctx.made:
        return ctx.made[(KIND, name)]
    have = ctx.observed.get(NAME)
    found = have.get(name) if have else None
    return found.id if found else ""


def rules_of(ctx: Context, spec: SgSpec) -> list[Rule]:
    """The spec's rules with their source groups' ids filled in."""
    return [Rule(r.port, r.cidr, group_id(ctx, r.source) if r.source else "", r.source) for r in spec.inbound]


def _is_all_out(rule: dict) -> bool:
    return rule.get("IpProtocol") == "-1" and any(r.get("CidrIp") == ANYWHERE for r in rule.get("IpRanges", []))


def _former_listener(rule: Rule, spec: SgSpec) -> bool:
    """The ALB's group opened the other listener port before (a certificate added or removed since)."""
    return rule.cidr == ANYWHERE and rule.port in LISTENER_PORTS and any(r.cidr == ANYWHERE for r in spec.inbound)


def diff(ctx: Context, want: list[SgSpec], have: Observed) -> list[Change]:
    changes: list[Change] = []
    for spec in want:
        sg = have.get(spec.name)
        rules = rules_of(ctx, spec)
        if sg is None:
            fields = (FieldDiff("description", None, spec.description), FieldDiff("inbound", None, "; ".join(r.text() for r in rules)),
                      FieldDiff("outbound", None, ALL_OUT))
            note = "HTTP only: HTTPS needs app.certificate_arn (an ACM certificate)" if listener_port(ctx.cfg) == 80 and "-alb-" in spec.name else ""
            changes.append(Change(NAME, Action.CREATE, KIND, spec.name, fields=fields, spec=spec, note=note))
            continue
        if sg.raw.get("Description") != spec.description:
            changes.append(Change(NAME, Action.REPORT, KIND, spec.name, sg.id, (FieldDiff("description", sg.raw.get("Description"), spec.description),),
                                  note="a security group's description cannot change: recreate it by hand"))
        inbound = sg.raw.get("IpPermissions", [])
        fields = []
        lacking = sgrules.missing(rules, inbound)
        if lacking:
            fields.append(FieldDiff("inbound", None, "; ".join(r.text() for r in lacking)))
        if not any(_is_all_out(r) for r in sg.raw.get("IpPermissionsEgress", [])):
            fields.append(FieldDiff("outbound", None, ALL_OUT))
        extra = sgrules.unwanted(rules, inbound)
        former = [r for r in extra if _former_listener(r, spec)]
        by_hand = [r for r in extra if r not in former]
        if former or (by_hand and ctx.options.prune):
            fields.append(FieldDiff("inbound to remove", "; ".join(r.text() for r in former + (by_hand if ctx.options.prune else [])), None))
        elif by_hand:
            changes.append(Change(NAME, Action.REPORT, KIND, spec.name, sg.id, (FieldDiff("rules added by hand", "; ".join(r.text() for r in by_hand), "(none)"),),
                                  note="kept; `awsprac up --prune` removes them"))
        changes += update(ctx, NAME, sg, fields, spec)
    return changes


def apply(ctx: Context, change: Change) -> None:
    ec2 = ctx.aws.ec2
    with applying(change):
        if change.action is Action.DELETE:
            _delete(ctx, change)
            return
        spec = change.spec
        if change.action is Action.CREATE:
            gid = ec2.create_security_group(
                GroupName=spec.name, Description=spec.description, VpcId=ctx.observed["vpc"].id,
                TagSpecifications=tags.specification("security-group", ctx.tags(spec.name)),
            )["GroupId"]  # a new group allows all outbound traffic
            ctx.made[(KIND, spec.name)] = gid
            sgrules.authorize(ec2, gid, rules_of(ctx, spec))
            return
        sg = ctx.observed[NAME].get(spec.name)
        retag(ctx, sg)
        rules = rules_of(ctx, spec)
        inbound = sg.raw.get("IpPermissions", [])
        sgrules.authorize(ec2, sg.id, sgrules.missing(rules, inbound))
        if not any(_is_all_out(r) for r in sg.raw.get("IpPermissionsEgress", [])):
            try:
                ec2.authorize_security_group_egress(GroupId=sg.id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": ANYWHERE}]}])
            except Exception as exc:
                from awsprac.engine.aws import error_code

                if error_code(exc) != "InvalidPermission.Duplicate":
                    raise
        extra = sgrules.unwanted(rules, inbound)
        sgrules.revoke(ec2, sg.id, [r for r in extra if ctx.options.prune or _former_listener(r, spec)])


def _delete(ctx: Context, change: Change) -> None:
    ec2, vpc_id = ctx.aws.ec2, ctx.observed["vpc"].id
    if vpc_id:
        # The DB's group refers to the backend's, the backend's to the ALB's: AWS refuses while referred to.
        sgrules.revoke_references(ec2, vpc_id, change.id)
    delete_when_free(ctx, change, ec2.delete_security_group, blockers=lambda: network_interfaces(ec2, group_id=change.id), GroupId=change.id)


def teardown(ctx: Context, have: Observed) -> list[Change]:
    """Backend's group first (its rule refers to the ALB's), then the ALB's."""
    n = names(ctx.cfg)
    changes: list[Change] = []
    for name in (n.backend, n.alb):
        changes += delete_change(NAME, have.get(name), ctx)
    return changes
