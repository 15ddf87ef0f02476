"""Step `app-alb`: load balancer `{project}-alb-{env}` (internet-facing, the public subnets, the ALB's group),
target group `{project}-backend-{env}` (HTTP, target type ip, health check, deregistration delay) and the
listener forwarding to it (HTTPS 443 with `app.certificate_arn`, else HTTP 80).

AWS's order: load balancer and target group (at once), then the listener, then (step app) the service.
The load balancer is not waited for here: it provisions while the service rolls out, and step app
waits for both at once. The listener has no name: the plan calls it `<load balancer>:<port>`, and it
belongs with its load balancer (no tags read of its own).
"""

from __future__ import annotations

from dataclasses import dataclass

from awsprac.engine import tags, waiting
from awsprac.engine.aws import error_code, is_not_found, translate
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.dag import concurrently
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import add_missing_tags, applying, delete_change, gone_is_fine, update
from awsprac.steps.app.common import listener_port, names

NAME = "app-alb"
REQUIRES = ("vpc", "subnets", "app-network")
OBSERVES_AFTER = ("app-network",)  # found by name; whose they are follows from the ALB's group (see _inferred)
CHANGES_AFTER = {"listener": ("load balancer", "target group")}

LB, TG, LISTENER = "load balancer", "target group", "listener"
LB_DELETE_WAIT = 600.0
TG_IN_USE_WAIT = 120.0  # a target group stays "in use" for moments after its listener is gone
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


@dataclass(frozen=True)
class LbSpec:
    name: str
    subnets: tuple[str, ...]  # names of the public subnets
    security_group: str
    kind: str = LB


@dataclass(frozen=True)
class TgSpec:
    name: str
    port: int
    health_check_path: str
    deregistration_delay: int
    kind: str = TG


@dataclass(frozen=True)
class ListenerSpec:
    name: str  # "<load balancer>:<port>"
    port: int
    certificate_arn: str
    kind: str = LISTENER

    @property
    def protocol(self) -> str:
        return "HTTPS" if self.certificate_arn else "HTTP"


@dataclass(frozen=True)
class Observed:
    lb: Found | None = None
    tg: Found | None = None
    listeners: tuple[Found, ...] = ()
    tg_attributes: tuple[tuple[str, str], ...] = ()
    wanted: bool = True  # app.enabled

    @property
    def ready(self) -> bool:
        return not self.wanted or (self.lb is not None and self.tg is not None and bool(self.listeners))

    def resources(self) -> list[Found]:
        return [f for f in (self.lb, self.tg, *self.listeners) if f is not None]

    @property
    def dns_name(self) -> str:
        return self.lb.raw.get("DNSName", "") if self.lb else ""

    def url(self) -> str:
        https = any(f.raw.get("Protocol") == "HTTPS" for f in self.listeners)
        return f"{'https' if https else 'http'}://{self.dns_name}" if self.dns_name else ""

    def outputs(self) -> dict:
        out: dict = {}
        if self.lb:
            out.update({"alb_arn": self.lb.id, "alb_dns_name": self.dns_name, "app_url": self.url()})
        if self.tg:
            out["target_group_arn"] = self.tg.id
        return out


def desired(cfg: EnvConfig) -> list:
    if not cfg.app.enabled:
        return []
    from awsprac.steps import subnets

    n, app = names(cfg), cfg.app
    public = tuple(s.name for s in subnets.desired(cfg) if s.tier == "public")
    port = listener_port(cfg)
    return [
        LbSpec(n.alb, public, n.alb),
        TgSpec(n.backend, app.container_port, app.health_check_path, app.deregistration_delay),
        ListenerSpec(f"{n.alb}:{port}", port, app.certificate_arn),
    ]


def client(ctx: Context):
    return ctx.aws.client("elbv2")


def _none_if_missing(call, key: str, **kwargs) -> dict | None:
    try:
        items = call(**kwargs)[key]
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    return items[0] if items else None


def observe(ctx: Context) -> Observed:
    want = desired(ctx.cfg)
    if not want:
        return Observed(wanted=False)
    elb, (lb_spec, tg_spec, _) = client(ctx), want
    with translate("looking up", f"load balancer {lb_spec.name} and target group {tg_spec.name}"):
        lb, tg = concurrently(
            lambda: _none_if_missing(elb.describe_load_balancers, "LoadBalancers", Names=[lb_spec.name]),
            lambda: _none_if_missing(elb.describe_target_groups, "TargetGroups", Names=[tg_spec.name]),
        )
        arns = [x[k] for x, k in ((lb, "LoadBalancerArn"), (tg, "TargetGroupArn")) if x]
        if not arns:
            return Observed()
        listeners, attributes = concurrently(
            lambda: elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] if lb else [],
            lambda: elb.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"] if tg else [],
        )
        described = _inferred(ctx, lb, tg, listeners) or read_tags(ctx, arns)
    lb_found = Found(LB, lb_spec.name, lb["LoadBalancerArn"], (lb.get("State") or {}).get("Code", ""), described.get(lb["LoadBalancerArn"], {}), lb) if lb else None
    tg_found = Found(TG, tg_spec.name, tg["TargetGroupArn"], "", described.get(tg["TargetGroupArn"], {}), tg) if tg else None
    # A listener belongs with its load balancer: its tags are the load balancer's.
    found_listeners = tuple(Found(LISTENER, f"{lb_spec.name}:{x['Port']}", x["ListenerArn"], x.get("Protocol", ""), lb_found.tags, x) for x in listeners)
    return Observed(lb_found, tg_found, found_listeners, tuple((a["Key"], a["Value"]) for a in attributes))


def read_tags(ctx: Context, arns: list[str]) -> dict[str, dict[str, str]]:
    return {d["ResourceArn"]: tags.as_dict(d.get("Tags")) for d in client(ctx).describe_tags(ResourceArns=arns)["TagDescriptions"]}


# The load balancer in this env's ALB group, and the target group its listener forwards to, are this
# env's: each was made (or adopted) before the group was its and the listener forwarded there. Their
# tags are then not read (one read less per look); a destroy reads them before deleting anything.
INFERRED = "awsprac:inferred"


def _inferred(ctx: Context, lb: dict | None, tg: dict | None, listeners: list[dict]) -> dict | None:
    n = names(ctx.cfg)
    group = ctx.observed["app-network"].get(n.alb) if "app-network" in ctx.observed else None
    if lb is None or tg is None or group is None or not ctx.owns(group) or lb.get("SecurityGroups") != [group.id]:
        return None
    if not any(_forwards_to(Found(LISTENER, "", x["ListenerArn"], "", {}, x)) == tg["TargetGroupArn"] for x in listeners):
        return None
    lb[INFERRED] = tg[INFERRED] = True
    return {lb["LoadBalancerArn"]: ctx.tags(n.alb), tg["TargetGroupArn"]: ctx.tags(n.backend)}


def subnet_ids(ctx: Context, spec: LbSpec) -> list[str]:
    have = ctx.observed["subnets"].subnets
    return [have[n].id for n in spec.subnets if n in have]


def sg_id(ctx: Context, spec: LbSpec) -> str:
    from awsprac.steps.app import network

    return network.group_id(ctx, spec.security_group)


def diff(ctx: Context, want: list, have: Observed) -> list[Change]:
    if not want:
        return []
    lb_spec, tg_spec, listener_spec = want
    return _lb_changes(ctx, lb_spec, have.lb) + _tg_changes(ctx, tg_spec, have) + _listener_changes(ctx, listener_spec, have)


def _lb_changes(ctx: Context, spec: LbSpec, lb: Found | None) -> list[Change]:
    subnets, group = subnet_ids(ctx, spec), sg_id(ctx, spec) or f"(new) {spec.security_group}"
    if lb is None:
        return [Change(NAME, Action.CREATE, LB, spec.name, spec=spec, fields=(
            FieldDiff("scheme", None, "internet-facing"), FieldDiff("subnets", None, ", ".join(spec.subnets)),
            FieldDiff("security group", None, spec.security_group)), note="provisions for a few minutes, while the service rolls out")]
    changes: list[Change] = []
    if lb.raw.get("Scheme") != "internet-facing" or lb.raw.get("Type") != "application":
        changes.append(Change(NAME, Action.REPORT, LB, spec.name, lb.id, (FieldDiff("scheme", f"{lb.raw.get('Type')} {lb.raw.get('Scheme')}", "application internet-facing"),),
                              note="cannot change: delete the load balancer by hand, then `awsprac up`"))
    fields = []
    have_subnets = sorted(z["SubnetId"] for z in lb.raw.get("AvailabilityZones", []))
    if have_subnets != sorted(subnets) or len(subnets) < len(spec.subnets):
        fields.append(FieldDiff("subnets", ", ".join(have_subnets) or None, ", ".join(subnets)))
    if lb.raw.get("SecurityGroups", []) != [group]:
        fields.append(FieldDiff("security groups", ", ".join(lb.raw.get("SecurityGroups", [])) or None, group))
    return changes + update(ctx, NAME, lb, fields, spec)


def _tg_changes(ctx: Context, spec: TgSpec, have: Observed) -> list[Change]:
    tg = have.tg
    if tg is None:
        return [Change(NAME, Action.CREATE, TG, spec.name, spec=spec, fields=(
            FieldDiff("protocol", None, f"HTTP {spec.port}"), FieldDiff("target type", None, "ip"),
            FieldDiff("health check", None, f"GET {spec.health_check_path} expecting 200"),
            FieldDiff("deregistration delay", None, f"{spec.deregistration_delay}s")))]
    changes: list[Change] = []
    fixed = {"protocol": (f"{tg.raw.get('Protocol')} {tg.raw.get('Port')}", f"HTTP {spec.port}"),
             "target type": (tg.raw.get("TargetType"), "ip"), "VPC": (tg.raw.get("VpcId"), ctx.observed["vpc"].id)}
    for label, (current, wanted) in fixed.items():
        if current != wanted:
            changes.append(Change(NAME, Action.REPORT, TG, spec.name, tg.id, (FieldDiff(label, current, wanted),),
                                  note="cannot change: delete the target group by hand (and its listener), then `awsprac up`"))
    fields = []
    if tg.raw.get("HealthCheckPath") != spec.health_check_path:
        fields.append(FieldDiff("health check path", tg.raw.get("HealthCheckPath"), spec.health_check_path))
    if (tg.raw.get("Matcher") or {}).get("HttpCode") != "200":
        fields.append(FieldDiff("health check codes", (tg.raw.get("Matcher") or {}).get("HttpCode"), "200"))
    delay = dict(have.tg_attributes).get("deregistration_delay.timeout_seconds")
    if delay != str(spec.deregistration_delay):
        fields.append(FieldDiff("deregistration delay", f"{delay}s", f"{spec.deregistration_delay}s"))
    return changes + update(ctx, NAME, tg, fields, spec)


def _listener_changes(ctx: Context, spec: ListenerSpec, have: Observed) -> list[Change]:
    changes: list[Change] = []
    mine = [f for f in have.listeners if f.raw.get("Port") == spec.port]
    tg = have.tg.id if have.tg else f"(new) {names(ctx.cfg).backend}"
    if not mine:
        changes.append(Change(NAME, Action.CREATE, LISTENER, spec.name, spec=spec, fields=(
            FieldDiff("protocol", None, f"{spec.protocol} {spec.port}"), FieldDiff("forwards to", None, tg)),
            note="" if spec.certificate_arn else "HTTP only: HTTPS needs app.certificate_arn (an ACM certificate)"))
    else:
        listener = mine[0]
        fields = []
        if listener.raw.get("Protocol") != spec.protocol:
            fields.append(FieldDiff("protocol", listener.raw.get("Protocol"), spec.protocol))
        certificates = [c["CertificateArn"] for c in listener.raw.get("Certificates", []) or []]
        if spec.certificate_arn and certificates != [spec.certificate_arn]:
            fields.append(FieldDiff("certificate", ", ".join(certificates) or None, spec.certificate_arn))
        if _forwards_to(listener) != tg:
            fields.append(FieldDiff("forwards to", _forwards_to(listener), tg))
        if fields:
            action = Action.UPDATE if have.lb and ctx.owns(have.lb) else Action.ADOPT
            changes.append(Change(NAME, action, LISTENER, spec.name, listener.id, tuple(fields), spec=spec))
    # The other listener port, from before a certificate was added or removed: awsprac's own, it goes.
    for other in have.listeners:
        if other.raw.get("Port") in (80, 443) and other.raw.get("Port") != spec.port and have.lb and ctx.owns(have.lb):
            changes.append(Change(NAME, Action.DELETE, LISTENER, other.name, other.id, note=f"replaced by {spec.protocol} {spec.port}"))
    return changes


def _forwards_to(listener: Found) -> str | None:
    actions = listener.raw.get("DefaultActions", [])
    return actions[0].get("TargetGroupArn") if len(actions) == 1 and actions[0].get("Type") == "forward" else None


# --- carrying it out ---


def apply(ctx: Context, change: Change) -> None:
    with applying(change):
        if change.action is Action.DELETE:
            _delete(ctx, change)
        elif change.kind == LB:
            _apply_lb(ctx, change)
        elif change.kind == TG:
            _apply_tg(ctx, change)
        else:
            _apply_listener(ctx, change)


def _retag(ctx: Context, found: Found) -> None:
    add_missing_tags(ctx, found.tags, found.name, lambda tag_list: client(ctx).add_tags(ResourceArns=[found.id], Tags=tag_list))


def _apply_lb(ctx: Context, change: Change) -> None:
    elb, spec = client(ctx), change.spec
    if change.action is Action.CREATE:
        # CreateLoadBalancer is idempotent by name (same settings: the same load balancer back).
        lb = elb.create_load_balancer(
            Name=spec.name, Subnets=subnet_ids(ctx, spec), SecurityGroups=[sg_id(ctx, spec)], Scheme="internet-facing",
            Type="application", IpAddressType="ipv4", Tags=tags.as_list(ctx.tags(spec.name)),
        )["LoadBalancers"][0]
        ctx.made[(LB, spec.name)] = lb["LoadBalancerArn"]
        return
    lb = ctx.observed[NAME].lb
    _retag(ctx, lb)
    fields = {f.field for f in change.fields}
    if "subnets" in fields:
        elb.set_subnets(LoadBalancerArn=lb.id, Subnets=subnet_ids(ctx, spec))
    if "security groups" in fields:
        elb.set_security_groups(LoadBalancerArn=lb.id, SecurityGroups=[sg_id(ctx, spec)])


def _apply_tg(ctx: Context, change: Change) -> None:
    elb, spec = client(ctx), change.spec
    if change.action is Action.CREATE:
        arn = elb.create_target_group(
            Name=spec.name, Protocol="HTTP", Port=spec.port, VpcId=ctx.observed["vpc"].id, TargetType="ip",
            HealthCheckProtocol="HTTP", HealthCheckPath=spec.health_check_path, Matcher={"HttpCode": "200"},
            Tags=tags.as_list(ctx.tags(spec.name)),
        )["TargetGroups"][0]["TargetGroupArn"]
        ctx.made[(TG, spec.name)] = arn
        _set_delay(elb, arn, spec)
        return
    tg = ctx.observed[NAME].tg
    _retag(ctx, tg)
    fields = {f.field for f in change.fields}
    if fields & {"health check path", "health check codes"}:
        elb.modify_target_group(TargetGroupArn=tg.id, HealthCheckPath=spec.health_check_path, Matcher={"HttpCode": "200"})
    if "deregistration delay" in fields:
        _set_delay(elb, tg.id, spec)


def _set_delay(elb, arn: str, spec: TgSpec) -> None:
    elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(spec.deregistration_delay)}])


def arn_of(ctx: Context, kind: str, name: str) -> str:
    """The load balancer's or target group's ARN: made in this run, or observed."""
    if (kind, name) in ctx.made:
        return ctx.made[(kind, name)]
    found = getattr(ctx.observed[NAME], "lb" if kind == LB else "tg")
    return found.id if found else ""


def _apply_listener(ctx: Context, change: Change) -> None:
    elb, spec = client(ctx), change.spec
    n = names(ctx.cfg)
    settings = {
        "Protocol": spec.protocol, "Port": spec.port,
        "DefaultActions": [{"Type": "forward", "TargetGroupArn": arn_of(ctx, TG, n.backend)}],
        **({"Certificates": [{"CertificateArn": spec.certificate_arn}], "SslPolicy": SSL_POLICY} if spec.certificate_arn else {}),
    }
    if change.action is Action.CREATE:
        elb.create_listener(LoadBalancerArn=arn_of(ctx, LB, n.alb), Tags=tags.as_list(ctx.tags(spec.name)), **settings)
        return
    lb = ctx.observed[NAME].lb
    _retag(ctx, lb)
    elb.modify_listener(ListenerArn=change.id, **settings)


def _delete(ctx: Context, change: Change) -> None:
    elb = client(ctx)
    if change.kind == LISTENER:
        gone_is_fine(elb.delete_listener, ListenerArn=change.id)
    elif change.kind == TG:
        waiting.retry_on(lambda e: error_code(e) == "ResourceInUse", lambda: gone_is_fine(elb.delete_target_group, TargetGroupArn=change.id),
                         TG_IN_USE_WAIT, ctx.report, f"deleting target group {change.name}")
    else:
        gone_is_fine(elb.delete_load_balancer, LoadBalancerArn=change.id)

        def gone() -> tuple[bool, str]:
            lb = _none_if_missing(elb.describe_load_balancers, "LoadBalancers", LoadBalancerArns=[change.id])
            return lb is None, (lb.get("State") or {}).get("Code", "deleting") if lb else "deleted"

        # Its network interfaces hold the security groups until it is gone.
        waiting.wait_for(ctx.report, f"load balancer {change.name} being deleted", gone, timeout=LB_DELETE_WAIT, interval=10)


def wait_active(ctx: Context, arn: str, name: str, timeout: float = 900.0) -> None:
    """Until the load balancer is `active` (provisioning takes a few minutes); `failed` is an error."""
    elb = client(ctx)

    def check() -> tuple[bool, str]:
        lb = _none_if_missing(elb.describe_load_balancers, "LoadBalancers", LoadBalancerArns=[arn])
        state = ((lb or {}).get("State") or {}).get("Code", "missing")
        if state in ("failed", "missing"):
            from awsprac.engine.errors import AwspracError

            raise AwspracError(f"load balancer {name} is {state}: {((lb or {}).get('State') or {}).get('Reason', 'see the console')}")
        return state == "active", state

    with translate("waiting for", f"load balancer {name}"):
        waiting.wait_for(ctx.report, f"load balancer {name} provisioning", check, timeout=timeout, interval=10)


def teardown(ctx: Context, have: Observed) -> list[Change]:
    """Listener, then target group and load balancer (at once; the load balancer waited until gone)."""
    lb, tg = have.lb, have.tg
    if any(f is not None and f.raw.get(INFERRED) for f in (lb, tg)):  # whose they are decides the delete: read
        read = read_tags(ctx, [f.id for f in (lb, tg) if f is not None])
        lb, tg = (Found(f.kind, f.name, f.id, f.state, read.get(f.id, {}), f.raw) if f is not None else None for f in (lb, tg))
    changes: list[Change] = []
    for listener in have.listeners:
        changes += delete_change(NAME, Found(LISTENER, listener.name, listener.id, listener.state, lb.tags if lb else {}, listener.raw), ctx)
    return changes + delete_change(NAME, tg, ctx) + delete_change(NAME, lb, ctx)
