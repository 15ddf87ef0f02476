"""Step `igw`: the internet gateway `{project}-igw-{env}`, attached to the env's VPC (docs/reference.md section 2)."""

from __future__ import annotations

from dataclasses import dataclass

from awsprac.engine import lookup, tags
from awsprac.engine.aws import translate
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import applying, delete_change, delete_when_free, eventually, gone_is_fine, retag, update

NAME = "igw"
REQUIRES = ("vpc",)


@dataclass(frozen=True)
class IgwSpec:
    name: str
    kind: str = "internet gateway"


@dataclass(frozen=True)
class Observed:
    igw: lookup.Found | None

    @property
    def ready(self) -> bool:
        return self.igw is not None

    @property
    def id(self) -> str | None:
        return self.igw.id if self.igw else None

    @property
    def attached_to(self) -> list[str]:
        return attachments(self.igw)

    def resources(self) -> list[lookup.Found]:
        return [self.igw] if self.igw else []

    def outputs(self) -> dict:
        return {"igw_id": self.id} if self.igw else {}


def attachments(igw: lookup.Found | None) -> list[str]:
    if igw is None:
        return []
    return [a["VpcId"] for a in igw.raw.get("Attachments", []) if a.get("State") in ("attached", "available", "attaching")]


def desired(cfg: EnvConfig) -> list[IgwSpec]:
    return [IgwSpec(cfg.igw_name)]


def observe(ctx: Context) -> Observed:
    name = ctx.cfg.igw_name
    with translate("looking up", f"internet gateway {name}"):
        # Not per VPC: a detached gateway must still be found, not duplicated.
        return Observed(lookup.find_by_names(ctx.aws.ec2, lookup.INTERNET_GATEWAY, [name]).get(name))


def diff(ctx: Context, want: list[IgwSpec], have: Observed) -> list[Change]:
    (spec,) = want
    vpc_id = ctx.observed["vpc"].id or "(new vpc)"
    if have.igw is None:
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=(FieldDiff("attached to", None, vpc_id),), spec=spec)]
    fields = []
    if have.attached_to != [vpc_id]:
        fields.append(FieldDiff("attached to", ", ".join(have.attached_to) or None, vpc_id))
    return update(ctx, NAME, have.igw, fields, spec)


def apply(ctx: Context, change: Change) -> None:
    ec2 = ctx.aws.ec2
    with applying(change):
        if change.action is Action.DELETE:
            # Detaching fails while public addresses are mapped in the VPC (a NAT instance going away).
            for vpc_id in attachments(ctx.observed[NAME].igw):
                delete_when_free(ctx, change, ec2.detach_internet_gateway, InternetGatewayId=change.id, VpcId=vpc_id)
            delete_when_free(ctx, change, ec2.delete_internet_gateway, InternetGatewayId=change.id)
            return
        vpc_id = ctx.observed["vpc"].id
        if change.action is Action.CREATE:
            igw_id = ec2.create_internet_gateway(
                TagSpecifications=tags.specification("internet-gateway", ctx.tags(change.name)),
            )["InternetGateway"]["InternetGatewayId"]
            eventually(ctx, f"internet gateway {igw_id}", ec2.attach_internet_gateway, InternetGatewayId=igw_id, VpcId=vpc_id)
            return
        igw = ctx.observed[NAME].igw
        retag(ctx, igw)
        current = attachments(igw)
        for other in current:
            if other != vpc_id:
                gone_is_fine(ec2.detach_internet_gateway, InternetGatewayId=igw.id, VpcId=other)
        if vpc_id not in current:
            ec2.attach_internet_gateway(InternetGatewayId=igw.id, VpcId=vpc_id)


def teardown(ctx: Context, have: Observed) -> list[Change]:
    return delete_change(NAME, have.igw, ctx)


# --- facets ---


def export_terraform(ctx: Context, out) -> None:
    from awsprac.engine.terraform import Resource
    from awsprac.steps.vpc import NETWORK_TF

    f = out.file(*NETWORK_TF)
    igw = ctx.observed[NAME].igw
    if igw is None:
        out.missing(f"internet gateway {ctx.cfg.igw_name}")
        return
    # vpc_id here is the attachment: no aws_internet_gateway_attachment as well.
    vpc_id = ctx.observed["vpc"].vpc.id
    f.add(Resource("aws_internet_gateway", "main", {"vpc_id": out.ref("aws_vpc", vpc_id), "tags": out.tags(igw.name)}, igw.id))
