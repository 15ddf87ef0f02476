"""Step `vpc`: the VPC `{project}-{env}`: CIDR, tenancy, DNS support and hostnames (docs/reference.md section 2)."""

from __future__ import annotations

from dataclasses import dataclass

from awsprac.engine import lookup, tags
from awsprac.engine.aws import is_not_found, translate
from awsprac.config import EnvConfig
from awsprac.engine.dag import concurrently
from awsprac.engine.context import Context
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import applying, delete_change, delete_when_free, eventually, network_interfaces, retag, update

NAME = "vpc"
REQUIRES: tuple[str, ...] = ()

# What AWS gives a new VPC; a setting that differs needs a call after the create.
NEW_VPC_DNS = (True, False)  # (enableDnsSupport, enableDnsHostnames)


@dataclass(frozen=True)
class VpcSpec:
    name: str
    cidr: str
    tenancy: str
    dns_support: bool
    dns_hostnames: bool
    kind: str = "vpc"


@dataclass(frozen=True)
class Observed:
    vpc: lookup.Found | None
    dns: tuple[bool, bool] | None = None  # (support, hostnames)

    @property
    def ready(self) -> bool:
        return self.vpc is not None

    @property
    def id(self) -> str | None:
        return self.vpc.id if self.vpc else None

    def resources(self) -> list[lookup.Found]:
        return [self.vpc] if self.vpc else []

    def outputs(self) -> dict:
        return {"vpc_id": self.id, "vpc_cidr": self.vpc.raw["CidrBlock"]} if self.vpc else {}


def desired(cfg: EnvConfig) -> list[VpcSpec]:
    n = cfg.network
    return [VpcSpec(cfg.vpc_name, n.vpc_cidr, n.instance_tenancy, n.dns_support, n.dns_hostnames)]


def observe(ctx: Context) -> Observed:
    ec2, name = ctx.aws.ec2, ctx.cfg.vpc_name

    def dns(vpc_id: str) -> tuple[bool, bool]:
        # DNS attributes are not part of DescribeVpcs: one read each, both at once.
        support, hostnames = concurrently(
            lambda: ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsSupport")["EnableDnsSupport"]["Value"],
            lambda: ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"],
        )
        return support, hostnames

    # Looking again after this run made or saw the VPC: its id is known, so the attributes are read at
    # the same time as the VPC itself (and again only if the VPC turns out to have another id).
    earlier = ctx.observed.get(NAME)
    known = ctx.made.get(("vpc", name)) or (earlier.vpc.id if earlier is not None and earlier.vpc is not None else None)
    with translate("looking up", f"vpc {name}"):
        if known:
            found, guessed = concurrently(lambda: lookup.find_by_names(ec2, lookup.VPC, [name]), lambda: _or_none(dns, known))
        else:
            found, guessed = lookup.find_by_names(ec2, lookup.VPC, [name]), None
        vpc = found.get(name)
        if vpc is None:
            return Observed(None)
        return Observed(vpc, guessed if vpc.id == known and guessed is not None else dns(vpc.id))


def _or_none(read, vpc_id: str):
    try:
        return read(vpc_id)
    except Exception as exc:
        if is_not_found(exc):  # deleted since: the look by name says what there is now
            return None
        raise


def diff(ctx: Context, want: list[VpcSpec], have: Observed) -> list[Change]:
    (spec,) = want
    if have.vpc is None:
        fields = (FieldDiff("cidr", None, spec.cidr), FieldDiff("dns", None, _dns_text(spec.dns_support, spec.dns_hostnames)))
        return [Change(NAME, Action.CREATE, "vpc", spec.name, fields=fields, spec=spec)]
    vpc = have.vpc
    changes = []
    fixed = [
        FieldDiff(label, current, wanted)
        for label, current, wanted in (
            ("cidr", vpc.raw["CidrBlock"], spec.cidr),
            ("tenancy", vpc.raw.get("InstanceTenancy", "default"), spec.tenancy),
        )
        if current != wanted
    ]
    if fixed:
        changes.append(Change(
            NAME, Action.REPORT, "vpc", spec.name, vpc.id, tuple(fixed),
            note="a VPC's CIDR and tenancy cannot change in place: `awsprac destroy`, then `awsprac up`, rebuilds it",
        ))
    support, hostnames = have.dns
    fields = []
    if support != spec.dns_support:
        fields.append(FieldDiff("enableDnsSupport", support, spec.dns_support))
    if hostnames != spec.dns_hostnames:
        fields.append(FieldDiff("enableDnsHostnames", hostnames, spec.dns_hostnames))
    return changes + update(ctx, NAME, vpc, fields, spec)


def apply(ctx: Context, change: Change) -> None:
    ec2, spec = ctx.aws.ec2, change.spec
    with applying(change):
        if change.action is Action.DELETE:
            delete_when_free(ctx, change, ec2.delete_vpc, lambda: network_interfaces(ec2, vpc_id=change.id), VpcId=change.id)
            return
        if change.action is Action.CREATE:
            vpc = ec2.create_vpc(
                CidrBlock=spec.cidr, InstanceTenancy=spec.tenancy,
                TagSpecifications=tags.specification("vpc", ctx.tags(spec.name)),
            )["Vpc"]
            vpc_id = ctx.made[("vpc", spec.name)] = vpc["VpcId"]
            if vpc.get("State") != "available":
                with ctx.report.waiting(f"vpc {spec.name} ({vpc_id}) becoming available"):
                    eventually(ctx, f"vpc {vpc_id}", ec2.get_waiter("vpc_available").wait, VpcIds=[vpc_id], WaiterConfig={"Delay": 2, "MaxAttempts": 60})
            _set_dns(ctx, vpc_id, NEW_VPC_DNS, spec)
            return
        have: Observed = ctx.observed[NAME]
        retag(ctx, have.vpc)
        _set_dns(ctx, change.id, have.dns, spec)


def _set_dns(ctx: Context, vpc_id: str, have: tuple[bool, bool], spec: VpcSpec) -> None:
    # AWS takes one attribute per call. Hostnames need support: support goes on first,
    # and when turning support off, hostnames go off first.
    calls = []
    if have[0] != spec.dns_support:
        calls.append({"EnableDnsSupport": {"Value": spec.dns_support}})
    if have[1] != spec.dns_hostnames:
        calls.append({"EnableDnsHostnames": {"Value": spec.dns_hostnames}})
    if not spec.dns_support:
        calls.reverse()
    for attribute in calls:
        eventually(ctx, f"vpc {vpc_id}", ctx.aws.ec2.modify_vpc_attribute, VpcId=vpc_id, **attribute)


def teardown(ctx: Context, have: Observed) -> list[Change]:
    changes = delete_change(NAME, have.vpc, ctx)
    if changes and changes[0].action is Action.DELETE:
        theirs = _subnets_not_ours(ctx, have.vpc.id)
        if theirs:
            # AWS refuses to delete a VPC that still has subnets; those are someone else's, so not ours to delete.
            env = ctx.cfg.env
            listed = ", ".join(f"{name or '(no Name)'} {subnet_id}" for subnet_id, name in theirs)
            return [Change(NAME, Action.REPORT, have.vpc.kind, have.vpc.name, have.vpc.id, note=(
                f"kept: it holds subnet(s) env {env} does not own ({listed}), and AWS deletes no VPC with subnets; "
                f"delete them if nobody needs them (aws ec2 delete-subnet --subnet-id ID), then `awsprac destroy --env {env}` again"))]
    return changes


def _subnets_not_ours(ctx: Context, vpc_id: str) -> list[tuple[str, str]]:
    with translate("looking up", f"the subnets of vpc {vpc_id}"):
        subnets = ctx.aws.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    return sorted((s["SubnetId"], tags.as_dict(s.get("Tags")).get("Name", "")) for s in subnets
                  if not tags.is_owned(tags.as_dict(s.get("Tags")), ctx.cfg.project, ctx.cfg.env))


def _dns_text(support: bool, hostnames: bool) -> str:
    return f"support={str(support).lower()}, hostnames={str(hostnames).lower()}"


# --- facets ---

NETWORK_TF = ("network.tf", "VPC, subnets, internet gateway (docs/reference.md section 2).")


def export_terraform(ctx: Context, out) -> None:
    from awsprac.engine.errors import UsageError
    from awsprac.engine.terraform import Resource

    have: Observed = ctx.observed[NAME]
    cfg = ctx.cfg
    if have.vpc is None:
        raise UsageError(f"env {cfg.env} has nothing built yet (no VPC {cfg.vpc_name}): run `awsprac up --env {cfg.env}` first")
    raw = have.vpc.raw
    support, hostnames = have.dns
    out.file(*NETWORK_TF).add(Resource("aws_vpc", "main", {
        "cidr_block": raw["CidrBlock"],
        "instance_tenancy": raw.get("InstanceTenancy", "default"),
        "enable_dns_support": support,
        "enable_dns_hostnames": hostnames,
        "tags": out.tags(have.vpc.name),
    }, have.vpc.id))
