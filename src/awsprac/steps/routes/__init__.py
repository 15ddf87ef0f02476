"""The routes family. Step `routes`: the private route table (docs/reference.md section 4); step `public-routes`
(public.py) makes the public one with this module's code, before the NAT instance is launched.

- `{project}-rtb-public-{env}` (step public-routes): 0.0.0.0/0 -> the internet gateway; the public subnets.
- `{project}-rtb-private-{env}`: 0.0.0.0/0 -> the NAT instance's network interface or the NAT
  gateway (no default route in nat.mode none); the private subnets; the VPC's *main* table, so a
  subnet someone forgets to associate never reaches the internet directly. The table that was main
  before is remembered in a tag on the private table, and destroy gives it the main role back.

Routes are reconciled by destination: missing -> create, wrong target or blackhole -> replace,
right -> nothing. Only the default route is managed; other routes (endpoints, peering) are left alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from awsprac.engine import lookup, tags
from awsprac.engine.aws import error_code, translate
from awsprac.config import EnvConfig
from awsprac.engine.dag import concurrently
from awsprac.engine.context import Context
from awsprac.engine.errors import AwspracError
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import applying, delete_when_free, eventually, gone_is_fine, retag, update
from awsprac.steps import subnets as subnets_step

NAME = "routes"
# After public-routes: on destroy the private table (the VPC's main) goes first, the public one after.
REQUIRES = ("subnets", "igw", "nat", "public-routes")

KIND = lookup.ROUTE_TABLE.kind
DEFAULT = "0.0.0.0/0"
ORIGINAL_MAIN_KEY = "awsprac:original-main-route-table"
TIERS = ("public", "private")


@dataclass(frozen=True)
class RouteTableSpec:
    name: str
    tier: str
    subnets: tuple[str, ...]  # subnet names
    main: bool
    kind: str = KIND


def table_name(tier: str, cfg: EnvConfig) -> str:
    return f"{cfg.project}-rtb-{tier}-{cfg.env}"


def specs(cfg: EnvConfig, tier: str) -> list[RouteTableSpec]:
    subnets = subnets_step.desired(cfg)
    return [RouteTableSpec(table_name(tier, cfg), tier, tuple(s.name for s in subnets if s.tier == tier), main=tier == "private")]


def desired(cfg: EnvConfig) -> list[RouteTableSpec]:
    return specs(cfg, "private")


@dataclass(frozen=True)
class Target:
    """Where a default route should go. An instance and its primary network interface are one target."""

    kind: str  # "gateway" | "interface" | "nat-gateway"
    id: str
    label: str
    instance: str = ""
    parked: bool = False  # the NAT instance stopped by `awsprac stop`: its route is a blackhole until `start`

    def matches(self, route: dict) -> bool:
        if route.get("State") == "blackhole" and not self.parked:
            return False
        if self.kind == "interface":
            return route.get("NetworkInterfaceId") == self.id or bool(self.instance and route.get("InstanceId") == self.instance)
        if self.kind == "nat-gateway":
            return route.get("NatGatewayId") == self.id
        return route.get("GatewayId") == self.id

    def params(self) -> dict:
        return {"interface": {"NetworkInterfaceId": self.id}, "nat-gateway": {"NatGatewayId": self.id}}.get(self.kind, {"GatewayId": self.id})


@dataclass(frozen=True)
class Observed:
    vpc_id: str | None = None
    tables: dict[str, lookup.Found] = field(default_factory=dict)  # the step's own, by Name
    all_tables: tuple[dict, ...] = ()  # every table of the VPC, as described
    wanted: int = 1  # how many tables the step makes
    ours: dict[str, str] = field(default_factory=dict)  # both steps' tables found: Name -> id

    @property
    def ready(self) -> bool:
        return len(self.tables) == self.wanted

    @property
    def main(self) -> tuple[str, str] | None:
        """(table id, association id) of the VPC's main association."""
        for table in self.all_tables:
            for association in table.get("Associations", []):
                if association.get("Main"):
                    return table["RouteTableId"], association["RouteTableAssociationId"]
        return None

    def association(self, subnet_id: str) -> tuple[str, str] | None:
        """(table id, association id) of a subnet's explicit association, if it has one."""
        for table in self.all_tables:
            for association in table.get("Associations", []):
                if association.get("SubnetId") == subnet_id and _live(association):
                    return table["RouteTableId"], association["RouteTableAssociationId"]
        return None

    def exists(self, table_id: str) -> bool:
        return any(t["RouteTableId"] == table_id for t in self.all_tables)

    def resources(self) -> list[lookup.Found]:
        return list(self.tables.values())

    def outputs(self) -> dict:
        # Both route steps give both tables: the outputs are merged step by step.
        return {"route_table_ids": dict(sorted(self.ours.items()))} if self.ours else {}


def _live(association: dict) -> bool:
    return (association.get("AssociationState") or {}).get("State", "associated") in ("associated", "associating")


def observe(ctx: Context) -> Observed:
    return observe_tables(ctx, desired(ctx.cfg))


def observe_tables(ctx: Context, want: list[RouteTableSpec]) -> Observed:
    vpc_id = ctx.observed["vpc"].id
    if not vpc_id:
        return Observed(wanted=len(want))
    names = {s.name for s in want}
    with translate("looking up", f"route tables of {ctx.cfg.vpc_name}"):
        # One describe for the whole VPC, shared by both route steps in a look: the tables, the main
        # association, every subnet association.
        items = ctx.reads.once(("route tables", vpc_id), lambda: lookup.describe(ctx.aws.ec2, lookup.ROUTE_TABLE, [{"Name": "vpc-id", "Values": [vpc_id]}]))
    by_name: dict[str, list[lookup.Found]] = {}
    ours: dict[str, str] = {}
    all_ours = {table_name(tier, ctx.cfg) for tier in TIERS}
    for item in items:
        found = lookup.to_found(lookup.ROUTE_TABLE, item)
        if found.name in names:
            by_name.setdefault(found.name, []).append(found)
        if found.name in all_ours:
            ours[found.name] = found.id
    tables = {name: lookup.single(lookup.ROUTE_TABLE, name, matches) for name, matches in by_name.items()}
    return Observed(vpc_id, tables, tuple(items), len(want), ours)


def target(ctx: Context, tier: str) -> Target | None | str:
    """The default route's target; None when there should be none; a text placeholder when it is not built yet."""
    if tier == "public":
        igw = ctx.observed["igw"]
        return Target("gateway", igw.id, igw.id) if igw.id else "the internet gateway (once built)"
    nat, mode = ctx.observed["nat"], ctx.cfg.nat.mode
    if mode == "none":
        return None
    if mode == "instance":
        if nat.instance is None or not nat.interface:
            return "the NAT instance's network interface (once built)"
        from awsprac.steps.nat.park import PARKED_STATES

        return Target("interface", nat.interface, f"{nat.interface} (NAT instance {nat.instance.id})", nat.instance.id,
                      parked=nat.instance.state in PARKED_STATES)
    if nat.gateway is None:
        return "the NAT gateway (once built)"
    return Target("nat-gateway", nat.gateway.id, nat.gateway.id)


def route_text(route: dict | None) -> str | None:
    if route is None:
        return None
    via = next((route[k] for k in ("NatGatewayId", "NetworkInterfaceId", "InstanceId", "GatewayId", "TransitGatewayId",
                                   "VpcPeeringConnectionId", "EgressOnlyInternetGatewayId", "LocalGatewayId", "CarrierGatewayId") if route.get(k)), "?")
    return f"{via} (blackhole)" if route.get("State") == "blackhole" else via


def default_route(table: lookup.Found | None) -> dict | None:
    if table is None:
        return None
    return next((r for r in table.raw.get("Routes", []) if r.get("DestinationCidrBlock") == DEFAULT), None)


def diff(ctx: Context, want: list[RouteTableSpec], have: Observed, step: str = NAME) -> list[Change]:
    changes = []
    subnet_ids = ctx.observed["subnets"].subnets
    for spec in want:
        wanted = target(ctx, spec.tier)
        wanted_text = wanted.label if isinstance(wanted, Target) else wanted
        table = have.tables.get(spec.name)
        if table is None:
            fields = [FieldDiff(f"route {DEFAULT}", None, wanted_text or "(none: nat.mode is none)")] if wanted is not None else []
            fields.append(FieldDiff("subnets", None, ", ".join(spec.subnets)))
            if spec.main:
                fields.append(FieldDiff("main route table of the VPC", None, True))
            changes.append(Change(step, Action.CREATE, KIND, spec.name, fields=tuple(fields), spec=spec))
            continue
        fields = []
        route = default_route(table)
        if wanted is None:
            if route is not None:
                fields.append(FieldDiff(f"route {DEFAULT}", route_text(route), None))
        elif not (isinstance(wanted, Target) and route is not None and wanted.matches(route)):
            fields.append(FieldDiff(f"route {DEFAULT}", route_text(route), wanted_text))
        for subnet in spec.subnets:
            found = subnet_ids.get(subnet)
            current = have.association(found.id) if found else None
            if current is None or current[0] != table.id:
                fields.append(FieldDiff(f"subnet {subnet}", _table_label(have, current[0]) if current else "(main table)", spec.name))
        main = have.main
        if spec.main and (main is None or main[0] != table.id):
            fields.append(FieldDiff("main route table of the VPC", _table_label(have, main[0]) if main else None, spec.name))
        changes += update(ctx, step, table, fields, spec)
    return changes


def _table_label(have: Observed, table_id: str) -> str:
    for name, found in have.tables.items():
        if found.id == table_id:
            return name
    return table_id


def apply(ctx: Context, change: Change) -> None:
    """Once the table exists (and, for the main one, the original main table is on record), its route, its
    subnets and the main association are independent writes: sent at once."""
    ec2, have = ctx.aws.ec2, ctx.observed[change.step]
    with applying(change):
        if change.action is Action.DELETE:
            _delete(ctx, change, have)
            return
        spec: RouteTableSpec = change.spec
        main = have.main
        if change.action is Action.CREATE:
            table_tags = ctx.tags(spec.name)
            if spec.main and main is not None:
                table_tags[ORIGINAL_MAIN_KEY] = main[0]
            table_id = ec2.create_route_table(
                VpcId=have.vpc_id, TagSpecifications=tags.specification("route-table", table_tags),
                # One token per attempt: botocore's own retries of this call cannot make a second table. Not
                # derived from names: AWS would hand back a table someone deleted since, for as long as it keeps tokens.
                ClientToken=uuid.uuid4().hex,
            )["RouteTable"]["RouteTableId"]
            route = None
        else:
            table = have.tables[spec.name]
            retag(ctx, table)
            table_id, route = table.id, default_route(table)
            if spec.main and main is not None and main[0] != table_id:
                # Before the main role moves: a crash in between must not lose which table had it.
                _remember_original_main(ctx, have, table, main[0])
        writes = [lambda: _set_default_route(ctx, spec, table_id, route)]
        for subnet in spec.subnets:
            subnet_id = ctx.observed["subnets"].subnets[subnet].id
            current = have.association(subnet_id)
            if current is None:
                writes.append(lambda subnet_id=subnet_id: eventually(
                    ctx, f"route table {table_id}", ec2.associate_route_table, RouteTableId=table_id, SubnetId=subnet_id))
            elif current[0] != table_id:
                # associate_route_table on an associated subnet fails on AWS: the association is moved instead.
                writes.append(lambda current=current: eventually(
                    ctx, f"route table {table_id}", ec2.replace_route_table_association, AssociationId=current[1], RouteTableId=table_id))
        if spec.main and main is not None and main[0] != table_id:
            # The main association can only be replaced, never removed.
            writes.append(lambda: eventually(
                ctx, f"route table {table_id}", ec2.replace_route_table_association, AssociationId=main[1], RouteTableId=table_id))
        concurrently(*writes)


def _remember_original_main(ctx: Context, have: Observed, table: lookup.Found, main_id: str) -> None:
    """Keep the first table that was main, unless it is gone; never one of ours."""
    recorded = table.tags.get(ORIGINAL_MAIN_KEY)
    if recorded and have.exists(recorded):
        return
    if main_id in set(have.ours.values()):
        return
    ctx.aws.ec2.create_tags(Resources=[table.id], Tags=[{"Key": ORIGINAL_MAIN_KEY, "Value": main_id}])


def _set_default_route(ctx: Context, spec: RouteTableSpec, table_id: str, route: dict | None) -> None:
    ec2 = ctx.aws.ec2
    wanted = target(ctx, spec.tier)
    if wanted is None:
        if route is not None:
            gone_is_fine(ec2.delete_route, RouteTableId=table_id, DestinationCidrBlock=DEFAULT)
        return
    if not isinstance(wanted, Target):
        raise AwspracError(f"route {DEFAULT} of {spec.name} needs {wanted}, which does not exist: run `awsprac up --env {ctx.cfg.env}` again")
    if route is not None and wanted.matches(route):
        return
    if route is None:
        try:
            eventually(ctx, f"route table {table_id}", ec2.create_route, RouteTableId=table_id, DestinationCidrBlock=DEFAULT, **wanted.params())
            return
        except Exception as exc:
            if error_code(exc) != "RouteAlreadyExists":  # appeared since it was observed: replace it instead
                raise
    ec2.replace_route(RouteTableId=table_id, DestinationCidrBlock=DEFAULT, **wanted.params())


def _delete(ctx: Context, change: Change, have: Observed) -> None:
    ec2 = ctx.aws.ec2
    table = next((t for t in have.all_tables if t["RouteTableId"] == change.id), None)
    if table is None:
        return
    main = have.main
    writes = []
    if main is not None and main[0] == change.id:
        original = _original_main(ctx, have, change.id)
        if original is None:
            raise AwspracError(f"{change.name} is the VPC's main route table and no other table can take that role")
        writes.append(lambda: gone_is_fine(ec2.replace_route_table_association, AssociationId=main[1], RouteTableId=original))
    for association in table.get("Associations", []):
        if association.get("SubnetId") and _live(association):
            writes.append(lambda a=association: gone_is_fine(ec2.disassociate_route_table, AssociationId=a["RouteTableAssociationId"]))
    # The main role given back and the subnets let go are independent; the table goes once all are done.
    if writes:
        concurrently(*writes)
    delete_when_free(ctx, change, ec2.delete_route_table, RouteTableId=change.id)


def _original_main(ctx: Context, have: Observed, table_id: str) -> str | None:
    """The table to give the main role back to: the remembered one, else any table of the VPC that is not ours."""
    ours = set(have.ours.values())
    found = next((f for f in have.tables.values() if f.id == table_id), None)
    recorded = found.tags.get(ORIGINAL_MAIN_KEY) if found else None
    if recorded and have.exists(recorded) and recorded not in ours:
        return recorded
    return next((t["RouteTableId"] for t in have.all_tables if t["RouteTableId"] not in ours), None)


def teardown(ctx: Context, have: Observed, want: list[RouteTableSpec] | None = None, step: str = NAME) -> list[Change]:
    changes = []
    main = have.main
    for spec in want if want is not None else desired(ctx.cfg):
        found = have.tables.get(spec.name)
        if found is None:
            continue
        if not ctx.owns(found):
            note = f"left alone: not tagged {tags.ENV_KEY}={ctx.cfg.env}, so not this env's to delete"
            changes.append(Change(step, Action.REPORT, KIND, found.name, found.id, note=note))
        elif main is not None and main[0] == found.id and _original_main(ctx, have, found.id) is None:
            changes.append(Change(step, Action.REPORT, KIND, found.name, found.id,
                                  note="left: it is the VPC's main route table and no other table can take that role; it goes with the VPC"))
        else:
            changes.append(Change(step, Action.DELETE, KIND, found.name, found.id))
    return changes


# --- facets ---

from awsprac.steps.routes.export import export_terraform  # noqa: E402
