"""The NAT family's doctor facet: the names it may own in any mode, and the checks of its kind (a route
left pointing at a NAT that is gone, a NAT instance that drops what it should forward)."""

from __future__ import annotations

from awsprac.config import EnvConfig
from awsprac.engine import lookup
from awsprac.engine.doctor import Finding, Scan, label


def doctor_names(cfg: EnvConfig) -> dict[str, set[str]]:
    """Every NAT mode's names, whatever the mode now: a mode switch leaves nothing orphaned."""
    from awsprac.steps import nat

    n = nat.names(cfg)
    return {
        lookup.ELASTIC_IP.kind: {n.instance_address, n.gateway_address},
        lookup.NAT_GATEWAY.kind: {n.gateway},
        nat.NAT_INSTANCE.kind: {n.instance},
        lookup.SECURITY_GROUP.kind: {n.sg},
    }


def check_blackhole_routes(scan: Scan) -> list[Finding]:
    """A route whose target is gone (a terminated NAT instance, a deleted NAT gateway): private hosts lose egress."""
    from awsprac.steps import routes

    cfg, findings = scan.cfg, []
    for tier in ("private", "public"):
        table = scan.one(lookup.ROUTE_TABLE, routes.table_name(tier, cfg))
        if table is None:
            continue
        for route in table.raw.get("Routes", []):
            if route.get("State") != "blackhole":
                continue
            destination = route.get("DestinationCidrBlock") or route.get("DestinationPrefixListId") or "?"
            target = next((route[k] for k in ("NetworkInterfaceId", "InstanceId", "NatGatewayId", "GatewayId") if route.get(k)), "?")
            findings.append(Finding(
                "blackhole route", label(table),
                f"route {destination} -> {target} is a blackhole (its target is gone): the {tier} subnets have no way out",
                f"`awsprac up --env {cfg.env}` points it at the current NAT (launching one if needed); by hand: "
                + scan.cli(f"aws ec2 replace-route --route-table-id {table.id} --destination-cidr-block {destination} --network-interface-id NAT_ENI_ID"),
            ))
    return findings


def check_nat_source_dest(scan: Scan) -> list[Finding]:
    """A NAT instance with the source/destination check on drops every packet it should forward."""
    from awsprac.steps import nat

    if scan.cfg.nat.mode != "instance":
        return []
    instance = scan.one(nat.NAT_INSTANCE, nat.names(scan.cfg).instance)
    if instance is None or not instance.raw.get("SourceDestCheck", False):
        return []
    return [Finding(
        "NAT source/dest check", label(instance),
        "source/destination check is ON: the instance drops the private subnets' traffic instead of forwarding it",
        f"`awsprac up --env {scan.cfg.env}`, or: " + scan.cli(f"aws ec2 modify-instance-attribute --instance-id {instance.id} --no-source-dest-check"),
    )]


doctor_checks = (check_blackhole_routes, check_nat_source_dest)
