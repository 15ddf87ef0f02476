"""What the app tier costs per month: Fargate (vCPU-hours and GB-hours of the running tasks) and the
load balancer (hours, an LCU estimate, its public IPv4 addresses). Parked (`awsprac stop`), the tasks
cost nothing; the load balancer keeps billing."""

from __future__ import annotations

from awsprac.engine.context import Context
from awsprac.engine.prices import Line, money

LCU_ESTIMATE = 1.0  # LCUs per hour: a small API's traffic stays well under one


def cost_lines(ctx: Context, prices: dict, nat_gb: float) -> tuple[list[Line], list[str]]:
    """The family's cost facet (nat_gb: the NAT's, not the tier's)."""
    if not ctx.cfg.app.enabled:
        return [], []
    out: list = []
    notes: list[str] = []
    hours = prices["hours_per_month"]
    fargate, alb = prices.get("fargate"), prices.get("alb")
    service = ctx.observed["app"].service
    if service is not None:
        if fargate is None:
            notes.append(f"no Fargate prices in the {prices['region']} table: the service's tasks are left out")
        else:
            app = ctx.cfg.app
            count = app.desired_count
            vcpu, gb = app.cpu / 1024, app.memory / 1024
            monthly = money(count * hours * (vcpu * fargate["vcpu_hour"] + gb * fargate["gb_hour"]))
            state = "stopped" if service.raw.get("desiredCount") == 0 else "running"
            out.append(Line("Fargate tasks", service.name, service.name, state, monthly, 0.0,
                            f"{count} x ({vcpu:g} vCPU x {fargate['vcpu_hour']}/h + {gb:g} GB x {fargate['gb_hour']}/h) x {hours} h; nothing while parked"))
    lb = ctx.observed["app-alb"].lb
    if lb is not None:
        if alb is None:
            notes.append(f"no load balancer prices in the {prices['region']} table: the ALB is left out")
        else:
            addresses = len(lb.raw.get("AvailabilityZones", [])) or 2
            monthly = money(hours * (alb["hour"] + LCU_ESTIMATE * alb["lcu_hour"] + addresses * prices["public_ipv4_hour"]))
            out.append(Line("load balancer", lb.name, lb.id.split("loadbalancer/")[-1], lb.state or "active", monthly, monthly,
                            f"{alb['hour']}/h + ~{LCU_ESTIMATE:g} LCU x {alb['lcu_hour']}/h + {addresses} public IPv4 x {prices['public_ipv4_hour']}/h, "
                            f"x {hours} h; keeps billing while parked (only destroy ends it)"))
    return out, notes
