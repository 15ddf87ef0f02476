"""The NAT family's cost facet: the instance (its hours, root volume and public IPv4) or the gateway,
its Elastic IPs, and the NAT gateway design priced next to the NAT instance one (the guide's reason
for the instance)."""

from __future__ import annotations

from awsprac.engine.aws import translate
from awsprac.engine.context import Context
from awsprac.engine.prices import Line, money


def cost_lines(ctx: Context, prices: dict, nat_gb: float) -> tuple[list[Line], list[str]]:
    from awsprac.steps import nat as family

    hours = prices["hours_per_month"]
    ipv4 = prices["public_ipv4_hour"] * hours
    out: list[Line] = []
    notes: list[str] = []

    nat = ctx.observed[family.NAME]
    if nat.instance is not None:
        raw = nat.instance.raw
        itype = raw.get("InstanceType", "")
        hourly = prices["ec2_instance_hour"].get(itype)
        if hourly is None:
            notes.append(f"no price for instance type {itype} in the {prices['region']} table: NAT instance hours left out")
        out.append(Line("NAT instance", nat.instance.name, nat.instance.id, nat.instance.state,
                        money((hourly or 0) * hours), 0.0, f"{itype} {hourly}/h x {hours} h; nothing while stopped"))
        for volume in _volumes(ctx, raw):
            vtype, size = volume["VolumeType"], volume["Size"]
            gb = prices["ebs_gb_month"].get(vtype)
            if gb is None:
                notes.append(f"no price for EBS {vtype} in the table: volume {volume['VolumeId']} left out")
                continue
            monthly = money(size * gb)
            out.append(Line("EBS volume", f"{nat.instance.name} root", volume["VolumeId"], nat.instance.state, monthly, monthly,
                            f"{size} GiB {vtype} x {gb}/GB-month, also while stopped"))
        if raw.get("PublicIpAddress") or nat.instance.state == "stopped":
            if not nat.addresses.get(family.names(ctx.cfg).instance_address):
                out.append(Line("public IPv4", f"{nat.instance.name} (auto-assigned)", raw.get("PublicIpAddress") or "-",
                                nat.instance.state, money(ipv4), 0.0, f"{prices['public_ipv4_hour']}/h x {hours} h; released while stopped"))
    for name, address in sorted(nat.addresses.items()):
        out.append(Line("Elastic IP", name, address.raw.get("PublicIp", address.id), address.state or "allocated",
                        money(ipv4), money(ipv4), f"{prices['public_ipv4_hour']}/h x {hours} h, attached or not"))
    if nat.gateway is not None:
        monthly = money(prices["nat_gateway_hour"] * hours + prices["nat_gateway_gb"] * nat_gb)
        out.append(Line("NAT gateway", nat.gateway.name, nat.gateway.id, nat.gateway.state, monthly, monthly,
                        f"{prices['nat_gateway_hour']}/h x {hours} h + {prices['nat_gateway_gb']}/GB x {nat_gb:g} GB; cannot be stopped"))
    return out, notes


def _volumes(ctx: Context, instance: dict) -> list[dict]:
    ids = [m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("VolumeId")]
    if not ids:
        return []
    with translate("looking up", "the NAT instance's volumes"):
        return ctx.aws.ec2.describe_volumes(VolumeIds=ids)["Volumes"]


def cost_comparison(prices: dict, nat_gb: float, lines_: list[Line]) -> dict:
    """The NAT gateway design next to the NAT instance one (instance hours, its disk and its public IPv4)."""
    hours = prices["hours_per_month"]
    gateway = money(prices["nat_gateway_hour"] * hours + prices["public_ipv4_hour"] * hours + prices["nat_gateway_gb"] * nat_gb)
    instance_kinds = ("NAT instance", "EBS volume", "public IPv4")
    mine = [line for line in lines_ if line.kind in instance_kinds]
    instance_type = "t2.micro"
    for line in mine:
        if line.kind == "NAT instance":
            instance_type = line.basis.split()[0]
    if mine:
        running, parked = sum(line.running for line in mine), sum(line.parked for line in mine)
    else:  # no NAT instance built: what the default one would cost
        running = prices["ec2_instance_hour"].get(instance_type, 0) * hours + 8 * prices["ebs_gb_month"]["gp3"] + prices["public_ipv4_hour"] * hours
        parked = 8 * prices["ebs_gb_month"]["gp3"]
    return {"nat_gateway_design": {
        "nat_gateway_monthly": gateway,
        "nat_gateway_basis": f"{prices['nat_gateway_hour']}/h + {prices['public_ipv4_hour']}/h IPv4, x {hours} h, + {prices['nat_gateway_gb']}/GB x {nat_gb:g} GB",
        "nat_gb": nat_gb,
        "nat_instance_running": money(running),
        "nat_instance_parked": money(parked),
        "nat_instance_type": instance_type,
    }}


def cost_comparison_text(result: dict) -> str:
    """The comparison as `awsprac cost` says it under its table."""
    g = result["nat_gateway_design"]
    return (
        f"NAT gateway design instead of the NAT instance: ${g['nat_gateway_monthly']:.2f}/month ({g['nat_gateway_basis']}), "
        f"always on; the NAT instance ({g['nat_instance_type']}): ${g['nat_instance_running']:.2f} running, ${g['nat_instance_parked']:.2f} parked."
    )
