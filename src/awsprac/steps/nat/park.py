"""The NAT family's park facet: the NAT instance is started first and stopped last (while it is
stopped the private subnets have no way out); its public IP changes unless it has an Elastic IP. A NAT
gateway cannot be stopped (said, not acted on)."""

from __future__ import annotations

from awsprac.engine import lookup
from awsprac.engine.aws import translate
from awsprac.engine.context import Context
from awsprac.engine.park import Parked, Target

PARK_LABEL = ("NAT instance", "NAT instance")  # short, and as in "no NAT instance"
PARKED_STATES = frozenset({"stopped", "stopping"})  # what `stop` leaves: status says parked, plan no drift
NAT_WAIT = 600.0
NAT_POLL = 5.0
EC2_BUSY = ("IncorrectInstanceState", "IncorrectState")


def park_target(ctx: Context, starting: bool) -> Parked:
    cfg = ctx.cfg
    instance = nat_instance(ctx)
    old_ip = instance.raw.get("PublicIpAddress") if instance is not None else None

    def advise(outcome: dict) -> None:
        _advice(ctx, starting, instance, old_ip)

    return Parked(
        nat_target(ctx, instance, starting) if instance is not None else None, instance.state if instance else None,
        absent=f"no NAT instance in env {cfg.env}: nothing to {{verb}} there" if cfg.nat.mode == "instance" else "",
        note=f" (nat.mode is {cfg.nat.mode}: only a NAT instance can be stopped)" if cfg.nat.mode != "instance" else "",
        advise=advise,
    )


def nat_instance(ctx: Context) -> lookup.Found | None:
    """The env's NAT instance (mode instance), or None."""
    from awsprac.steps import nat, vpc

    if ctx.cfg.nat.mode != "instance":
        return None
    vpc_id = vpc.observe(ctx).id
    if not vpc_id:
        return None
    name = nat.names(ctx.cfg).instance
    with translate("looking up", f"NAT instance {name}"):
        return lookup.find_by_names(ctx.aws.ec2, nat.NAT_INSTANCE, [name], vpc_id).get(name)


def nat_target(ctx: Context, instance: lookup.Found, starting: bool) -> Target:
    ec2 = ctx.aws.ec2

    def read() -> str | None:
        reply = ec2.describe_instances(InstanceIds=[instance.id])
        found = [i for r in reply["Reservations"] for i in r["Instances"]]
        return found[0]["State"]["Name"] if found else None

    def act() -> None:
        if starting:
            ec2.start_instances(InstanceIds=[instance.id])
        else:
            ec2.stop_instances(InstanceIds=[instance.id])

    return Target(
        f"NAT instance {instance.name} ({instance.id})", read, act,
        act_from=frozenset({"stopped"}) if starting else frozenset({"running"}),
        done=frozenset({"running"}) if starting else frozenset({"stopped"}),
        broken=frozenset({"shutting-down", "terminated"}), busy_codes=EC2_BUSY, timeout=NAT_WAIT, interval=NAT_POLL,
    )


def public_ip(ctx: Context, instance_id: str) -> str | None:
    reply = ctx.aws.ec2.describe_instances(InstanceIds=[instance_id])
    found = [i for r in reply["Reservations"] for i in r["Instances"]]
    return found[0].get("PublicIpAddress") if found else None


def _advice(ctx: Context, starting: bool, instance, old_ip: str | None) -> None:
    cfg = ctx.cfg
    if instance is not None:
        if starting:
            new_ip = public_ip(ctx, instance.id)
            if cfg.nat.elastic_ip:
                ctx.report.info(f"NAT instance public IP: {new_ip} (its Elastic IP)")
            elif old_ip and new_ip and old_ip != new_ip:
                ctx.report.warn(f"the NAT instance's public IP changed: {old_ip} -> {new_ip} (no Elastic IP): update any allow-list that names it")
            else:
                ctx.report.info(f"NAT instance public IP: {new_ip or '-'} (no Elastic IP: it changes at every stop/start)")
        else:
            ctx.report.warn("while the NAT instance is stopped the private subnets have no way out to the internet (their route points at it)")
            if not cfg.nat.elastic_ip:
                ctx.report.warn("its public IP is released: it gets a new one on `awsprac start` (nat.elastic_ip = true keeps one, at $0.005/hour)")
    if cfg.nat.mode == "gateway" and not starting:
        ctx.report.info("nat.mode is gateway: a NAT gateway cannot be stopped, it is billed by the hour while it exists (`awsprac cost` shows it)")
