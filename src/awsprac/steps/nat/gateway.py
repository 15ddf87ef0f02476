"""Mode gateway (and the instance's optional Elastic IP): the Elastic IPs and the NAT gateway, found by
name, made, waited on, released."""

from __future__ import annotations

from awsprac.engine import lookup, tags, tokens, waiting
from awsprac.engine.aws import error_code, is_not_found
from awsprac.engine.context import Context
from awsprac.engine.errors import AwspracError
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import eventually, gone_is_fine, retag, update
from awsprac.steps.nat.instance import subnet_name_of
from awsprac.steps.nat import ADDRESS, AddressSpec, DEAD_GATEWAY, GATEWAY, GATEWAY_BUDGET, GatewaySpec, INSTANCE, NAME, NAT_INSTANCE, Observed, RELEASE_BUDGET, names


def addresses_and_gateway(ctx: Context, vpc_id: str) -> tuple[dict[str, lookup.Found], lookup.Found | None]:
    """The Elastic IPs and the NAT gateway by name. Outside gateway mode they are mostly leftovers of
    another mode that are not there: one look at the names' tags says which kinds to describe at all."""
    ec2, n = ctx.aws.ec2, names(ctx.cfg)
    address_names = [n.instance_address, n.gateway_address]
    look_for_addresses = look_for_gateway = True
    if ctx.cfg.nat.mode != "gateway" and not ctx.cfg.nat.elastic_ip:
        ids = named_ids(ec2, [*address_names, n.gateway])
        look_for_addresses = any(i.startswith("eipalloc-") for i in ids)
        look_for_gateway = any(i.startswith("nat-") for i in ids)
    addresses = lookup.find_by_names(ec2, lookup.ELASTIC_IP, address_names) if look_for_addresses else {}
    gateway = lookup.find_by_names(ec2, lookup.NAT_GATEWAY, [n.gateway], vpc_id).get(n.gateway) if look_for_gateway else None
    return addresses, gateway


def named_ids(ec2, names: list[str]) -> set[str]:
    """Ids of every EC2 resource whose Name tag is one of the names, whatever its kind (one read)."""
    pages = ec2.get_paginator("describe_tags").paginate(Filters=[{"Name": "key", "Values": ["Name"]}, {"Name": "value", "Values": names}])
    return {t["ResourceId"] for page in pages for t in page.get("Tags", [])}


def diff_address(ctx: Context, spec: AddressSpec, have: Observed) -> list[Change]:
    address = have.addresses.get(spec.name)
    if spec.for_kind == GATEWAY:
        if address is None:
            return [Change(NAME, Action.CREATE, ADDRESS, spec.name, fields=(FieldDiff("for", None, f"NAT gateway {names(ctx.cfg).gateway}"),), spec=spec)]
        return update(ctx, NAME, address, [], spec)
    target = have.instance.id if have.instance else None
    if address is None:
        return [Change(NAME, Action.CREATE, ADDRESS, spec.name, fields=(FieldDiff("associated with", None, target or "the NAT instance"),), spec=spec)]
    fields = []
    if target is None or address.raw.get("InstanceId") != target:
        fields.append(FieldDiff("associated with", address.raw.get("InstanceId") or None, target or "the new NAT instance"))
    return update(ctx, NAME, address, fields, spec)


def diff_gateway(ctx: Context, spec: GatewaySpec, have: Observed) -> list[Change]:
    gateway = have.gateway
    if gateway is None:
        fields = (FieldDiff("subnet", None, spec.subnet), FieldDiff("elastic IP", None, spec.address), FieldDiff("connectivity", None, "public"))
        return [Change(NAME, Action.CREATE, GATEWAY, spec.name, fields=fields, spec=spec)]
    fields = []
    if gateway.state == "pending":
        fields.append(FieldDiff("state", "pending", "available"))
    changes = update(ctx, NAME, gateway, fields, spec)
    address = have.addresses.get(spec.address)
    allocations = [a.get("AllocationId") for a in gateway.raw.get("NatGatewayAddresses", [])]
    fixed = [FieldDiff(label, current, wanted) for label, current, wanted in (
        ("subnet", subnet_name_of(ctx, gateway.raw.get("SubnetId")), spec.subnet),
        ("connectivity", gateway.raw.get("ConnectivityType", "public"), "public"),
    ) if current != wanted]
    if address is not None and address.id not in allocations:
        fixed.append(FieldDiff("elastic IP", ", ".join(a for a in allocations if a) or None, f"{spec.address} ({address.id})"))
    if fixed:
        changes.append(Change(NAME, Action.REPORT, GATEWAY, spec.name, gateway.id, tuple(fixed),
                              note="a NAT gateway's subnet and address cannot change: delete it, then `awsprac up` makes a new one"))
    return changes


def apply_address(ctx: Context, change: Change) -> None:
    ec2 = ctx.aws.ec2
    if change.action is Action.DELETE:
        release_address(ctx, change)
        return
    if change.action is Action.CREATE:
        allocation = ec2.allocate_address(Domain="vpc", TagSpecifications=tags.specification("elastic-ip", ctx.tags(change.name)))["AllocationId"]
        current = None
    else:
        address = ctx.observed[NAME].addresses[change.name]
        retag(ctx, address)
        allocation, current = address.id, address.raw.get("InstanceId") or None
    if change.spec.for_kind == INSTANCE:
        # The instance may have been launched moments ago in this run: look it up now.
        instance = lookup.find_by_names(ec2, NAT_INSTANCE, [names(ctx.cfg).instance], ctx.observed["vpc"].id).get(names(ctx.cfg).instance)
        if instance is not None and current != instance.id:
            eventually(ctx, f"instance {instance.id}", ec2.associate_address, AllocationId=allocation, InstanceId=instance.id, AllowReassociation=True)


def release_address(ctx: Context, change: Change) -> None:
    ec2 = ctx.aws.ec2
    try:
        found = ec2.describe_addresses(AllocationIds=[change.id])["Addresses"]
    except Exception as exc:
        if is_not_found(exc):
            return
        raise
    if found and found[0].get("AssociationId") and found[0].get("InstanceId"):
        gone_is_fine(ec2.disassociate_address, AssociationId=found[0]["AssociationId"])

    def release() -> None:
        gone_is_fine(ec2.release_address, AllocationId=change.id)

    held = ["InvalidIPAddress.InUse", "DependencyViolation"]
    if change.name == names(ctx.cfg).gateway_address:
        # A deleted NAT gateway holds its address a little longer, and AWS then answers AuthFailure
        # ("You do not have permission to access the specified resource"), even after the gateway shows deleted.
        held.append("AuthFailure")
    waiting.retry_on(lambda e: error_code(e) in held, release, RELEASE_BUDGET, ctx.report, f"releasing elastic IP {change.name}")


def apply_gateway(ctx: Context, change: Change) -> None:
    ec2 = ctx.aws.ec2
    if change.action is Action.DELETE:
        gone_is_fine(ec2.delete_nat_gateway, NatGatewayId=change.id)
        wait_gateway(ctx, change.name, change.id, "deleted")
        return
    if change.action is Action.CREATE:
        wait_gateway(ctx, change.name, create_gateway(ctx, change.spec), "available")
        return
    gateway = ctx.observed[NAME].gateway
    retag(ctx, gateway)
    if gateway.state == "pending":
        wait_gateway(ctx, change.name, gateway.id, "available")


def create_gateway(ctx: Context, spec: GatewaySpec) -> str:
    ec2, vpc_id = ctx.aws.ec2, ctx.observed["vpc"].id
    address = lookup.find_by_names(ec2, lookup.ELASTIC_IP, [spec.address]).get(spec.address)
    if address is None:
        raise AwspracError(f"elastic IP {spec.address} is missing: run `awsprac up --env {ctx.cfg.env}` again")
    subnet_id = ctx.observed["subnets"].subnets[spec.subnet].id
    dead = sorted(g["NatGatewayId"] for g in ec2.describe_nat_gateways(Filters=[
        {"Name": "tag:Name", "Values": [spec.name]}, {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "state", "Values": list(DEAD_GATEWAY)},
    ])["NatGateways"])
    for _ in range(5):
        reply = ec2.create_nat_gateway(
            SubnetId=subnet_id, AllocationId=address.id, ConnectivityType="public",
            ClientToken=tokens.client_token("nat-gateway", vpc_id, spec.name, address.id, *dead),
            TagSpecifications=tags.specification("natgateway", ctx.tags(spec.name)),
        )["NatGateway"]
        if reply.get("State") not in DEAD_GATEWAY:
            return reply["NatGatewayId"]
        dead.append(reply["NatGatewayId"])  # the token's earlier gateway, gone since
    raise AwspracError(f"creating NAT gateway {spec.name}: AWS keeps answering with deleted gateways ({', '.join(dead)})")


def wait_gateway(ctx: Context, name: str, gateway_id: str, state: str) -> None:
    ec2 = ctx.aws.ec2

    def check() -> tuple[bool, str]:
        try:
            found = ec2.describe_nat_gateways(NatGatewayIds=[gateway_id])["NatGateways"]
        except Exception as exc:
            if is_not_found(exc):
                return state == "deleted", "not visible yet" if state != "deleted" else "deleted"
            raise
        current = found[0]["State"] if found else "deleted"
        if state == "available" and current in ("failed", "deleting", "deleted"):
            reason = found[0].get("FailureMessage", "") if found else ""
            raise AwspracError(f"NAT gateway {name} ({gateway_id}) is {current}{': ' + reason if reason else ''}; delete it, then run `awsprac up` again")
        return current == state, current

    waiting.wait_for(ctx.report, f"NAT gateway {name} ({gateway_id}) becoming {state}", check, GATEWAY_BUDGET, interval=10)
