"""Step `nat`: the private subnets' way out (docs/reference.md section 3), in one of three modes.

- `instance` (default, about a tenth of a NAT gateway's cost): security group `{project}-nat-{env}`,
  the NAT instance `{project}-nat-1a-{env}` (Amazon Linux 2023, user data from userdata.py),
  optionally an Elastic IP `{project}-nat-instance-1a-{env}`.
- `gateway`: Elastic IP `{project}-nat-1a-{env}` and NAT gateway `{project}-nat-1a-{env}`.
- `none`: nothing.

Whatever another mode left (and this env owns) is deleted by step nat-leftovers (leftovers.py), once
step routes has moved the private route to the new mode's way out; the plan says so. The NAT instance is never replaced by awsprac: another type
or subnet are drift to report, a newer AMI is shown by `status` (replacing it cuts the private
subnets' egress).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from awsprac.engine import batched, lookup, tags
from awsprac.engine.aws import translate
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.dag import concurrently
from awsprac.engine.plan import Action, Change
from awsprac.engine.reconcile import applying
from awsprac.steps.nat import iam as nat_iam
from awsprac.steps.subnets import subnet_name

NAME = "nat"
# The internet gateway attached first: a public NAT gateway made before it fails on AWS, and an
# Elastic IP cannot be associated; on destroy AWS will not detach it while public addresses are mapped.
# The public route table too: the instance's user data installs packages at first boot, once.
REQUIRES = ("subnets", "igw", "public-routes", "nat-iam")
OBSERVES_AFTER = ("vpc",)  # observe() needs only the VPC's id: a look does not wait for IAM

SG = lookup.SECURITY_GROUP.kind
INSTANCE = lookup.INSTANCE.kind
ADDRESS = lookup.ELASTIC_IP.kind
GATEWAY = lookup.NAT_GATEWAY.kind
AMI = "AMI"

SG_DESCRIPTION = "Managed by Terraform"  # what keeps a later `terraform import` from replacing the group
ANYWHERE = "0.0.0.0/0"
DEAD_INSTANCE = ("shutting-down", "terminated")
DEAD_GATEWAY = ("deleting", "deleted", "failed")

# A NAT instance's name is per VPC: a rebuilt VPC gets its own.
NAT_INSTANCE = dataclasses.replace(lookup.INSTANCE, per_vpc=True)

IAM_PROPAGATION_BUDGET = 300.0  # Terraform retries 2 minutes; IAM has been seen slower
INSTANCE_BUDGET = 600.0
GATEWAY_BUDGET = 900.0
RELEASE_BUDGET = 300.0
SNAPSHOT_BUDGET = 300.0  # a deregistered image's snapshot stays "in use" briefly


@dataclass(frozen=True)
class Names:
    sg: str
    instance: str
    instance_address: str
    gateway: str
    gateway_address: str
    subnet: str
    profile: str
    ami: str


def names(cfg: EnvConfig) -> Names:
    az = cfg.network.azs[0]
    zone = az[len(cfg.region) - 1:]
    nat = f"{cfg.project}-nat-{zone}-{cfg.env}"
    return Names(
        sg=cfg.name("{project}-nat-{env}"),
        instance=nat,
        instance_address=f"{cfg.project}-nat-instance-{zone}-{cfg.env}",
        gateway=nat,
        gateway_address=nat,
        subnet=subnet_name("public", az, cfg),
        profile=nat_iam.role_name(cfg),
        ami=cfg.name("{project}-nat-instance"),
    )


@dataclass(frozen=True)
class SecurityGroupSpec:
    name: str
    description: str
    ingress: tuple[tuple[str, str], ...]  # (CIDR, private subnet name): all traffic from each
    kind: str = SG


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    instance_type: str
    subnet: str
    profile: str
    kind: str = INSTANCE


@dataclass(frozen=True)
class AddressSpec:
    name: str
    for_kind: str  # what it serves: INSTANCE or GATEWAY
    kind: str = ADDRESS


@dataclass(frozen=True)
class GatewaySpec:
    name: str
    subnet: str
    address: str
    kind: str = GATEWAY


def desired(cfg: EnvConfig) -> list:
    n, mode = names(cfg), cfg.nat.mode
    if mode == "instance":
        from awsprac.steps.subnets import desired as subnets

        private = tuple((s.cidr, s.name) for s in subnets(cfg) if s.tier == "private")
        want: list = [
            SecurityGroupSpec(n.sg, SG_DESCRIPTION, private),
            InstanceSpec(n.instance, cfg.nat.instance_type, n.subnet, n.profile),
        ]
        if cfg.nat.elastic_ip:
            want.append(AddressSpec(n.instance_address, INSTANCE))
        return want
    if mode == "gateway":
        return [AddressSpec(n.gateway_address, GATEWAY), GatewaySpec(n.gateway, n.subnet, n.gateway_address)]
    return []


@dataclass(frozen=True)
class Observed:
    mode: str
    vpc_id: str | None = None
    sg: lookup.Found | None = None
    rules: tuple[dict, ...] = ()
    instance: lookup.Found | None = None
    addresses: dict[str, lookup.Found] = field(default_factory=dict)  # by Name
    gateway: lookup.Found | None = None
    image: Image | None = None  # what a new instance would launch from (read only when one is to be made)
    iam: nat_iam.Observed | None = None  # in another mode: the instance mode's role and profile, to remove
    dead: tuple[str, ...] = ()  # ids of terminated (or terminating) NAT instances of this name in the VPC

    @property
    def ready(self) -> bool:
        if self.mode == "instance":
            return self.instance is not None
        if self.mode == "gateway":
            return self.gateway is not None and self.gateway.state == "available"
        return True

    @property
    def interface(self) -> str | None:
        """The NAT instance's primary network interface: what the private route points at."""
        return primary_interface(self.instance)

    def resources(self) -> list[lookup.Found]:
        return [f for f in (self.sg, self.instance, *self.addresses.values(), self.gateway) if f is not None]

    def outputs(self) -> dict:
        out: dict = {"nat_mode": self.mode}
        if self.sg:
            out["nat_security_group_id"] = self.sg.id
        if self.instance:
            out["nat_instance_id"] = self.instance.id
            out["nat_network_interface_id"] = self.interface
            if self.instance.raw.get("PublicIpAddress"):
                out["nat_public_ip"] = self.instance.raw["PublicIpAddress"]
        if self.gateway:
            out["nat_gateway_id"] = self.gateway.id
            ips = [a.get("PublicIp") for a in self.gateway.raw.get("NatGatewayAddresses", []) if a.get("PublicIp")]
            if ips:
                out["nat_public_ip"] = ips[0]
        return out if len(out) > 1 else {}


def primary_interface(instance: lookup.Found | None) -> str | None:
    if instance is None:
        return None
    for eni in instance.raw.get("NetworkInterfaces", []):
        if eni.get("Attachment", {}).get("DeviceIndex", 0) == 0:
            return eni["NetworkInterfaceId"]
    return None


# --- observe ---


def observe(ctx: Context) -> Observed:
    cfg, ec2 = ctx.cfg, ctx.aws.ec2
    n = names(cfg)
    vpc_id = ctx.observed["vpc"].id
    earlier = ctx.observed.get(NAME)
    with translate("looking up", f"the NAT of {cfg.vpc_name}"):
        if not vpc_id:
            return Observed(cfg.nat.mode, image=resolve_image(ctx) if cfg.nat.mode == "instance" else None)
        # Independent reads, all at once: this step's observation is on the critical path of every run.
        groups, (instance, dead), (addresses, gateway) = concurrently(
            lambda: batched.security_groups(ctx, vpc_id, [n.sg]),
            lambda: find_instances(ec2, n.instance, vpc_id),
            lambda: addresses_and_gateway(ctx, vpc_id),
        )
        sg = groups.get(n.sg)
        rules = read_rules(ctx, sg) if sg is not None else ()
        image = None
        if cfg.nat.mode == "instance" and instance is None:
            # What a new instance would launch from: the look before the VPC existed already asked.
            image = earlier.image if earlier is not None and earlier.image is not None else resolve_image(ctx)
    # Seen here too (not only by step nat-iam): removed after the instance, and checked again after apply.
    iam = nat_iam.observe(ctx) if cfg.nat.mode != "instance" else None
    return Observed(cfg.nat.mode, vpc_id, sg, rules, instance, addresses, gateway, image, iam, dead)


def status_states(ctx: Context, have: Observed) -> dict:
    """For `awsprac status` only (reads `up` does without): the instance's state, whether its NAT setup
    finished at boot (from its console output), and whether a new NAT instance would launch today from
    another image than the one it runs."""
    instance = have.instance
    if instance is None or have.mode != "instance":
        return {}
    with translate("looking up", "the image a new NAT instance would launch from"):
        image = resolve_image(ctx)
    state = instance.state
    if state == "running":
        state += f"; {setup_state(ctx, instance)}"
    if image.id and instance.raw.get("ImageId") != image.id:
        state += f"; runs {instance.raw.get('ImageId')}, a new one would launch from {image.id} ({image.source})"
    elif image.problem:
        state += f"; {image.problem}"
    return {(INSTANCE, instance.name): state}


# --- diff ---


def diff(ctx: Context, want: list, have: Observed) -> list[Change]:
    changes: list[Change] = []
    for spec in want:
        if spec.kind == SG:
            changes += diff_security_group(ctx, spec, have)
        elif spec.kind == INSTANCE:
            changes += diff_instance(ctx, spec, have)
        elif spec.kind == ADDRESS:
            changes += diff_address(ctx, spec, have)
        else:
            changes += diff_gateway(ctx, spec, have)
    return changes


def leftover_changes(ctx: Context, want: list, have: Observed) -> list[Change]:
    """What another mode (or a turned-off elastic_ip) left: this env's goes, anyone else's is shown, not touched.
    Step nat-leftovers removes them, once the private route no longer points at them."""
    wanted = {(s.kind, s.name) for s in want}
    mode = f"nat.mode is {ctx.cfg.nat.mode}"
    changes = []
    for found, costs in _in_teardown_order(have):
        if (found.kind, found.name) in wanted:
            continue
        why = "nat.elastic_ip is false" if ctx.cfg.nat.mode == "instance" and found.kind == ADDRESS else mode
        if ctx.owns(found):
            changes.append(Change(NAME, Action.DELETE, found.kind, found.name, found.id, note=f"{why}: no longer needed"))
        elif costs:
            changes.append(Change(NAME, Action.REPORT, found.kind, found.name, found.id,
                                  note=f"{why}, but this one is not tagged {tags.ENV_KEY}={ctx.cfg.env}: left alone (it may still cost money)"))
    if have.iam is not None:
        # The instance mode's role and profile, after the instance that uses them (a hand-made one stays).
        changes += [Change(NAME, c.action, c.kind, c.name, c.id, note=f"{mode}: no longer needed")
                    for c in nat_iam.teardown(ctx, have.iam) if c.action is Action.DELETE]
    return changes


def _in_teardown_order(have: Observed) -> list[tuple[lookup.Found, bool]]:
    """(resource, costs money): the instance before its address and group, the gateway before its address."""
    out = []
    if have.instance:
        out.append((have.instance, True))
    if have.gateway:
        out.append((have.gateway, True))
    out += [(a, True) for a in have.addresses.values()]
    if have.sg:
        out.append((have.sg, False))
    return out


# --- apply ---


def apply(ctx: Context, change: Change) -> None:
    with applying(change):
        if change.kind == SG:
            apply_security_group(ctx, change)
        elif change.kind == INSTANCE:
            apply_instance(ctx, change)
        elif change.kind == ADDRESS:
            apply_address(ctx, change)
        elif change.kind == GATEWAY:
            apply_gateway(ctx, change)
        elif change.kind == AMI:
            deregister_ami(ctx, change.id)
        elif change.kind in (nat_iam.ROLE, nat_iam.PROFILE):
            nat_iam.apply(ctx, change)


# --- teardown ---


def teardown(ctx: Context, have: Observed) -> list[Change]:
    changes = []
    for found, _ in _in_teardown_order(have):
        if ctx.owns(found):
            changes.append(Change(NAME, Action.DELETE, found.kind, found.name, found.id))
        else:
            note = f"left alone: not tagged {tags.ENV_KEY}={ctx.cfg.env}, so not this env's to delete"
            changes.append(Change(NAME, Action.REPORT, found.kind, found.name, found.id, note=note))
    # Read here, not in observe(): only a destroy asks about the baked AMI.
    with translate("looking up", f"AMI {names(ctx.cfg).ami}"):
        baked = find_baked_ami(ctx.aws.ec2, names(ctx.cfg).ami)
    if baked is not None:
        if not ctx.options.include_ami:
            changes.append(Change(NAME, Action.REPORT, AMI, baked.name, baked.id,
                                  note="kept: other envs launch from it; `awsprac destroy --include-ami` deletes it and its snapshots"))
        elif ctx.owns(baked):
            changes.append(Change(NAME, Action.DELETE, AMI, baked.name, baked.id))
        else:
            changes.append(Change(NAME, Action.REPORT, AMI, baked.name, baked.id,
                                  note=f"left alone: not tagged {tags.ENV_KEY}={ctx.cfg.env}, so not this env's to delete"))
    return changes


# --- the family's parts, imported last: they use the names above ---

from awsprac.steps.nat.security_group import (  # noqa: E402
    apply_security_group, diff_security_group, find_security_group, read_rules,
)
from awsprac.steps.nat.instance import apply_instance, diff_instance, find_instances, setup_state, subnet_name_of  # noqa: E402
from awsprac.steps.nat.gateway import (  # noqa: E402
    addresses_and_gateway, apply_address, apply_gateway, diff_address, diff_gateway,
)
from awsprac.steps.nat.launch_image import Image, deregister_ami, find_baked_ami, resolve_image  # noqa: E402

# --- its other facets (see awsprac.steps) ---

from awsprac.steps.nat.export import export_terraform  # noqa: E402
from awsprac.steps.nat.doctor import doctor_checks, doctor_names  # noqa: E402
from awsprac.steps.nat.cost import cost_comparison, cost_comparison_text, cost_lines  # noqa: E402
from awsprac.steps.nat.park import PARK_LABEL, PARKED_STATES, park_target  # noqa: E402
