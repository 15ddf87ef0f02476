"""Step `subnets`: public and private subnets in each AZ, CIDRs split from the VPC block (docs/reference.md section 2)."""

from __future__ import annotations

from dataclasses import dataclass

from awsprac.engine import lookup, tags
from awsprac.engine.aws import translate
from awsprac.engine.cidr import split
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import applying, delete_change, delete_when_free, eventually, network_interfaces, retag, update

NAME = "subnets"
REQUIRES = ("vpc",)
INDEPENDENT_CHANGES = True  # the runner may create (or delete) the subnets at the same time
TIERS = ("public", "private")


@dataclass(frozen=True)
class SubnetSpec:
    name: str
    tier: str
    az: str
    cidr: str
    kind: str = "subnet"


@dataclass(frozen=True)
class Observed:
    subnets: dict[str, lookup.Found]  # by Name

    @property
    def ready(self) -> bool:
        return bool(self.subnets)

    def resources(self) -> list[lookup.Found]:
        return list(self.subnets.values())

    def ids(self, tier: str, cfg: EnvConfig) -> list[str]:
        return [self.subnets[s.name].id for s in desired(cfg) if s.tier == tier and s.name in self.subnets]

    def outputs(self) -> dict:
        return {"subnet_ids": {name: f.id for name, f in sorted(self.subnets.items())}} if self.subnets else {}


def subnet_name(tier: str, az: str, cfg: EnvConfig) -> str:
    # "ap-northeast-1a" -> "1a", as the guide names them: public-subnet-1a-stg
    zone = az[len(cfg.region) - 1:]
    return f"{tier}-subnet-{zone}-{cfg.env}"


def desired(cfg: EnvConfig) -> list[SubnetSpec]:
    """In order public-1a, public-1c, private-1a, private-1c: that is the order of the CIDR split."""
    slots = [(tier, az) for tier in TIERS for az in cfg.network.azs]
    cidrs = split(cfg.network.vpc_cidr, len(slots))
    return [SubnetSpec(subnet_name(tier, az, cfg), tier, az, cidr) for (tier, az), cidr in zip(slots, cidrs)]


def observe(ctx: Context) -> Observed:
    vpc_id = ctx.observed["vpc"].id
    names = [s.name for s in desired(ctx.cfg)]
    with translate("looking up", f"subnets of {ctx.cfg.vpc_name}"):
        return Observed(lookup.find_by_names(ctx.aws.ec2, lookup.SUBNET, names, vpc_id))


def diff(ctx: Context, want: list[SubnetSpec], have: Observed) -> list[Change]:
    changes = []
    for spec in want:
        found = have.subnets.get(spec.name)
        if found is None:
            fields = (FieldDiff("az", None, spec.az), FieldDiff("cidr", None, spec.cidr))
            changes.append(Change(NAME, Action.CREATE, "subnet", spec.name, fields=fields, spec=spec))
            continue
        fixed = [
            FieldDiff(label, current, wanted)
            for label, current, wanted in (("az", found.raw["AvailabilityZone"], spec.az), ("cidr", found.raw["CidrBlock"], spec.cidr))
            if current != wanted
        ]
        if fixed:
            changes.append(Change(
                NAME, Action.REPORT, "subnet", spec.name, found.id, tuple(fixed),
                note="a subnet's AZ and CIDR cannot change in place: delete it (nothing may run in it), then `awsprac up`",
            ))
        changes += update(ctx, NAME, found, [], spec)
    return changes


def apply(ctx: Context, change: Change) -> None:
    ec2, spec = ctx.aws.ec2, change.spec
    with applying(change):
        if change.action is Action.DELETE:
            delete_when_free(ctx, change, ec2.delete_subnet, lambda: network_interfaces(ec2, subnet_id=change.id), SubnetId=change.id)
        elif change.action is Action.CREATE:
            vpc_id = ctx.observed["vpc"].id
            subnet = eventually(
                ctx, f"vpc {vpc_id}", ec2.create_subnet, VpcId=vpc_id, AvailabilityZone=spec.az, CidrBlock=spec.cidr,
                TagSpecifications=tags.specification("subnet", ctx.tags(spec.name)),
            )["Subnet"]
            if subnet.get("State") != "available":
                with ctx.report.waiting(f"subnet {spec.name} ({subnet['SubnetId']}) becoming available"):
                    eventually(ctx, f"subnet {subnet['SubnetId']}", ec2.get_waiter("subnet_available").wait, SubnetIds=[subnet["SubnetId"]], WaiterConfig={"Delay": 2, "MaxAttempts": 60})
        else:
            retag(ctx, ctx.observed[NAME].subnets[change.name])


def teardown(ctx: Context, have: Observed) -> list[Change]:
    return [c for found in have.subnets.values() for c in delete_change(NAME, found, ctx)]


# --- facets ---


def export_terraform(ctx: Context, out) -> None:
    from awsprac.engine.terraform import Resource, address_name
    from awsprac.steps.vpc import NETWORK_TF

    cfg = ctx.cfg
    f = out.file(*NETWORK_TF)
    vpc_id = ctx.observed["vpc"].vpc.id
    have: Observed = ctx.observed[NAME]
    for spec in desired(cfg):
        found = have.subnets.get(spec.name)
        if found is None:
            out.missing(f"subnet {spec.name}")
            continue
        zone = spec.az[len(cfg.region) - 1:]  # "1a", as in the subnet's name
        f.add(Resource("aws_subnet", address_name(f"{spec.tier}_{zone}"), {
            "vpc_id": out.ref("aws_vpc", vpc_id),
            "cidr_block": found.raw["CidrBlock"],
            "availability_zone": found.raw["AvailabilityZone"],
            "tags": out.tags(found.name),
        }, found.id))
