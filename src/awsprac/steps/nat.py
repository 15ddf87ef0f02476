"""Step `nat`: the private subnets' way out (SPEC section 3), in one of three modes.

- `instance` (default, about a tenth of a NAT gateway's cost): security group `{project}-nat-{env}`,
  the NAT instance `{project}-nat-1a-{env}` (Amazon Linux 2023, user data from nat_userdata.py),
  optionally an Elastic IP `{project}-nat-instance-1a-{env}`.
- `gateway`: Elastic IP `{project}-nat-1a-{env}` and NAT gateway `{project}-nat-1a-{env}`.
- `none`: nothing.

Whatever another mode left (and this env owns) is deleted after the new mode's resources are up,
so a mode switch says so in the plan. The NAT instance is never replaced by awsprac: another type
or subnet are drift to report, a newer AMI is shown by `status` (replacing it cuts the private
subnets' egress).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from awsprac import batched, lookup, tags, tokens, waiting
from awsprac.aws import error_code, is_not_found, translate
from awsprac.config import EnvConfig
from awsprac.context import Context
from awsprac.dag import concurrently
from awsprac.errors import AwspracError, UsageError
from awsprac.nat_userdata import render as render_user_data
from awsprac.plan import Action, Change, FieldDiff
from awsprac.reconcile import applying, delete_when_free, eventually, gone_is_fine, network_interfaces, retag, update
from awsprac.steps import nat_iam
from awsprac.steps.subnets import subnet_name

NAME = "nat"
# The internet gateway attached first: a public NAT gateway made before it fails on AWS, and an
# Elastic IP cannot be associated; on destroy AWS will not detach it while public addresses are mapped.
REQUIRES = ("subnets", "igw", "nat-iam")
OBSERVES_AFTER = ("vpc",)  # observe() needs only the VPC's id: a look does not wait for IAM

SG = lookup.SECURITY_GROUP.kind
INSTANCE = lookup.INSTANCE.kind
ADDRESS = lookup.ELASTIC_IP.kind
GATEWAY = lookup.NAT_GATEWAY.kind
AMI = "AMI"

SG_DESCRIPTION = "Managed by Terraform"  # what keeps a later `terraform import` from replacing the group
ANYWHERE = "0.0.0.0/0"
AL2023_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
DEAD_INSTANCE = ("shutting-down", "terminated")
DEAD_GATEWAY = ("deleting", "deleted", "failed")

# A NAT instance's name is per VPC: a rebuilt VPC gets its own.
NAT_INSTANCE = dataclasses.replace(lookup.INSTANCE, per_vpc=True)

IAM_PROPAGATION_BUDGET = 300.0  # Terraform retries 2 minutes; IAM has been seen slower
INSTANCE_BUDGET = 600.0
GATEWAY_BUDGET = 900.0
RELEASE_BUDGET = 300.0


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
class Image:
    """The AMI a new NAT instance would launch from, or why there is none."""

    id: str | None
    source: str
    problem: str = ""


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
            lambda: _instances(ec2, n.instance, vpc_id),
            lambda: _addresses_and_gateway(ctx, vpc_id),
        )
        sg = groups.get(n.sg)
        rules = _rules(ctx, sg) if sg is not None else ()
        image = None
        if cfg.nat.mode == "instance" and instance is None:
            # What a new instance would launch from: the look before the VPC existed already asked.
            image = earlier.image if earlier is not None and earlier.image is not None else resolve_image(ctx)
    # Seen here too (not only by step nat-iam): removed after the instance, and checked again after apply.
    iam = nat_iam.observe(ctx) if cfg.nat.mode != "instance" else None
    return Observed(cfg.nat.mode, vpc_id, sg, rules, instance, addresses, gateway, image, iam, dead)


def _instances(ec2, name: str, vpc_id: str) -> tuple[lookup.Found | None, tuple[str, ...]]:
    """The live NAT instance, and the ids of the dead ones of its name in this VPC (a new launch's
    client token must differ from theirs): one read."""
    items = lookup.describe(ec2, NAT_INSTANCE, [{"Name": "tag:Name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}], keep_dead=True)
    live = [lookup.to_found(NAT_INSTANCE, i) for i in items if not lookup.is_dead(NAT_INSTANCE, i)]
    dead = tuple(sorted(i["InstanceId"] for i in items if lookup.is_dead(NAT_INSTANCE, i)))
    return (lookup.single(NAT_INSTANCE, name, live) if live else None), dead


def _addresses_and_gateway(ctx: Context, vpc_id: str) -> tuple[dict[str, lookup.Found], lookup.Found | None]:
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


def _rules(ctx: Context, sg: lookup.Found) -> tuple[dict, ...]:
    """The group's rules, as its description lists them; read one by one (with their ids, which a
    prune needs) only when there are rules the env file does not list."""
    rules = rules_of(sg.raw)
    spec = next((s for s in desired(ctx.cfg) if s.kind == SG), None)
    if spec is None or not rule_gaps(spec, rules)[2]:
        return rules
    pages = ctx.aws.ec2.get_paginator("describe_security_group_rules").paginate(Filters=[{"Name": "group-id", "Values": [sg.id]}])
    return tuple(r for page in pages for r in page["SecurityGroupRules"])


def rules_of(group: dict) -> tuple[dict, ...]:
    """A group's IpPermissions as rules (the shape DescribeSecurityGroupRules answers), one per peer."""
    rules = []
    for egress, key in ((False, "IpPermissions"), (True, "IpPermissionsEgress")):
        for permission in group.get(key, []):
            base = {"IpProtocol": permission.get("IpProtocol"), "FromPort": permission.get("FromPort"), "ToPort": permission.get("ToPort"), "IsEgress": egress}
            rules += [{**base, "CidrIpv4": r["CidrIp"]} for r in permission.get("IpRanges", [])]
            rules += [{**base, "CidrIpv6": r["CidrIpv6"]} for r in permission.get("Ipv6Ranges", [])]
            rules += [{**base, "PrefixListId": r["PrefixListId"]} for r in permission.get("PrefixListIds", [])]
            rules += [{**base, "ReferencedGroupInfo": {"GroupId": r.get("GroupId")}} for r in permission.get("UserIdGroupPairs", [])]
    return tuple(rules)


def find_security_group(ec2, name: str, vpc_id: str) -> lookup.Found | None:
    """By Name tag; else by group name (the console asks for both; a hand-made one may lack the tag)."""
    found = lookup.find_by_names(ec2, lookup.SECURITY_GROUP, [name], vpc_id).get(name)
    if found is not None:
        return found
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    if not groups:
        return None
    return dataclasses.replace(lookup.to_found(lookup.SECURITY_GROUP, groups[0]), name=name)


def find_baked_ami(ec2, name: str, owner: str = "self") -> lookup.Found | None:
    images = [i for i in ec2.describe_images(Owners=[owner], Filters=[{"Name": "name", "Values": [name]}])["Images"] if i.get("State") not in ("deregistered",)]
    if not images:
        return None
    # AMI names are unique per account and region: at most one.
    image = images[0]
    found = lookup.Found(AMI, name, image["ImageId"], image.get("State", ""), tags.as_dict(image.get("Tags")), image)
    return found


def resolve_image(ctx: Context) -> Image:
    """nat.ami: an AMI id, a baked AMI's name (of nat.ami_owner, else this account), or empty for the
    latest Amazon Linux 2023 of the instance type's architecture (t2.micro -> x86_64)."""
    cfg, ec2 = ctx.cfg, ctx.aws.ec2
    ami = cfg.nat.ami
    if ami.startswith("ami-"):
        return Image(ami, f"{ami} (nat.ami)")
    if ami:
        name = ami.replace("{project}", cfg.project).replace("{env}", cfg.env)
        owner = cfg.nat.ami_owner or "self"
        images = ec2.describe_images(Owners=[owner], Filters=[{"Name": "name", "Values": [name]}, {"Name": "state", "Values": ["available"]}])["Images"]
        whose = f"account {cfg.nat.ami_owner}" if cfg.nat.ami_owner else "this account"
        if not images:
            return Image(None, f"AMI {name} of {whose}", (
                f"{cfg.path}: nat.ami: no available AMI named {name!r} in {whose} (region {cfg.region}); bake it in the "
                f"env that has the NAT (`awsprac nat bake-ami --env stg --share-with <this account>`), or set nat.ami = \"\""
            ))
        newest = max(images, key=lambda i: i.get("CreationDate", ""))
        return Image(newest["ImageId"], f"AMI {name} of {whose}")
    arch = architecture(cfg.nat.instance_type)
    parameter = AL2023_PARAMETER.format(arch=arch)
    value = ctx.aws.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
    return Image(value, f"latest Amazon Linux 2023 ({parameter})")


def architecture(instance_type: str) -> str:
    """Graviton (arm64) types carry a `g` after the generation (t4g, m7gd, c6gn, im4gn) or are a1."""
    match = re.match(r"([a-z]+)(\d+)([a-z-]*)\.", instance_type)
    if match and (match.group(1) == "a" or "g" in match.group(3)):
        return "arm64"
    return "x86_64"


def status_states(ctx: Context, have: Observed) -> dict:
    """For `awsprac status` only (a read `up` does without): the instance's state, and whether a new
    NAT instance would launch today from another image than the one it runs."""
    instance = have.instance
    if instance is None or have.mode != "instance":
        return {}
    with translate("looking up", "the image a new NAT instance would launch from"):
        image = resolve_image(ctx)
    state = instance.state
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
            changes += _diff_security_group(ctx, spec, have)
        elif spec.kind == INSTANCE:
            changes += _diff_instance(ctx, spec, have)
        elif spec.kind == ADDRESS:
            changes += _diff_address(ctx, spec, have)
        else:
            changes += _diff_gateway(ctx, spec, have)
    return changes + _leftovers(ctx, want, have)


def _diff_security_group(ctx: Context, spec: SecurityGroupSpec, have: Observed) -> list[Change]:
    sg = have.sg
    if sg is None:
        fields = (
            FieldDiff("description", None, spec.description),
            *(FieldDiff("inbound", None, f"all traffic from {cidr} ({name})") for cidr, name in spec.ingress),
            FieldDiff("outbound", None, f"all traffic to {ANYWHERE}"),
        )
        return [Change(NAME, Action.CREATE, SG, spec.name, fields=fields, spec=spec)]
    missing, egress_missing, extra = rule_gaps(spec, have.rules)
    fields = [FieldDiff("inbound", None, f"all traffic from {cidr} ({name})") for cidr, name in missing]
    if egress_missing:
        fields.append(FieldDiff("outbound", None, f"all traffic to {ANYWHERE}"))
    if ctx.options.prune:
        fields += [FieldDiff("outbound" if r.get("IsEgress") else "inbound", rule_text(r), None) for r in extra]
    changes = update(ctx, NAME, sg, fields, spec)
    if extra and not ctx.options.prune:
        changes.append(Change(
            NAME, Action.REPORT, SG, spec.name, sg.id,
            tuple(FieldDiff("outbound" if r.get("IsEgress") else "inbound", rule_text(r), None) for r in extra),
            note="rules the env file does not list, left in place (someone may have added them on purpose); `awsprac up --prune` removes them",
        ))
    if sg.raw.get("Description") != spec.description:
        changes.append(Change(
            NAME, Action.REPORT, SG, spec.name, sg.id, (FieldDiff("description", sg.raw.get("Description"), spec.description),),
            note="a security group's description cannot change: delete the group (nothing may use it), then `awsprac up`",
        ))
    return changes


def rule_gaps(spec: SecurityGroupSpec, rules: tuple[dict, ...]) -> tuple[list[tuple[str, str]], bool, list[dict]]:
    """(missing inbound (cidr, subnet), outbound all-traffic missing, rules the spec does not list)."""
    wanted_in = {cidr for cidr, _ in spec.ingress}
    present_in, egress_ok, extra = set(), False, []
    for r in rules:
        everything = r.get("IpProtocol") == "-1"
        if r.get("IsEgress"):
            if everything and r.get("CidrIpv4") == ANYWHERE:
                egress_ok = True
                continue
        elif everything and r.get("CidrIpv4") in wanted_in:
            present_in.add(r["CidrIpv4"])
            continue
        extra.append(r)
    return [(c, n) for c, n in spec.ingress if c not in present_in], not egress_ok, extra


def rule_text(rule: dict) -> str:
    protocol = rule.get("IpProtocol")
    if protocol == "-1":
        what = "all traffic"
    else:
        low, high = rule.get("FromPort"), rule.get("ToPort")
        ports = "" if low in (None, -1) else (f" {low}" if low == high else f" {low}-{high}")
        what = f"{protocol}{ports}"
    peer = rule.get("CidrIpv4") or rule.get("CidrIpv6") or rule.get("PrefixListId") or (rule.get("ReferencedGroupInfo") or {}).get("GroupId") or "?"
    return f"{what} {'to' if rule.get('IsEgress') else 'from'} {peer} ({rule.get('SecurityGroupRuleId')})"


def _diff_instance(ctx: Context, spec: InstanceSpec, have: Observed) -> list[Change]:
    instance, image = have.instance, have.image
    if instance is None:
        if image is None or image.id is None:
            raise UsageError(image.problem if image else "no AMI for the NAT instance")
        fields = (
            FieldDiff("ami", None, f"{image.id}, {image.source}"),
            FieldDiff("type", None, spec.instance_type),
            FieldDiff("subnet", None, spec.subnet),
            FieldDiff("public IP", None, "auto-assigned"),
            FieldDiff("security group", None, names(ctx.cfg).sg),
            FieldDiff("instance profile", None, spec.profile),
            FieldDiff("key pair", None, "none (Session Manager)"),
            FieldDiff("metadata", None, "IMDSv2 required"),
            FieldDiff("source/dest check", None, False),
            FieldDiff("user data", None, f"NAT for {ctx.cfg.network.vpc_cidr}: forwarding + masquerade, persisted"),
        )
        return [Change(NAME, Action.CREATE, INSTANCE, spec.name, fields=fields, spec=spec)]
    raw = instance.raw
    fields = []
    if instance.state == "pending":
        fields.append(FieldDiff("state", "pending", "running"))
    if raw.get("SourceDestCheck", True):
        fields.append(FieldDiff("source/dest check", True, False))
    http_tokens = (raw.get("MetadataOptions") or {}).get("HttpTokens") or "optional"
    if http_tokens != "required":
        fields.append(FieldDiff("metadata tokens (IMDSv2)", http_tokens, "required"))
    profile = _profile_name(raw)
    if profile != spec.profile:
        fields.append(FieldDiff("instance profile", profile, spec.profile))
    groups = _groups(raw)
    if have.sg is not None and have.sg.id not in [g["GroupId"] for g in groups]:
        current = [g.get("GroupName") or g["GroupId"] for g in groups]
        fields.append(FieldDiff("security groups", ", ".join(current) or None, ", ".join(current + [names(ctx.cfg).sg])))
    changes = update(ctx, NAME, instance, fields, spec)
    reports = []  # stopped is not drift: the env is parked (`awsprac stop`), and plan/status say so
    if image is not None and image.id and raw.get("ImageId") != image.id:
        reports.append(((FieldDiff("ami", raw.get("ImageId"), image.id),),
                        f"the NAT would launch today from {image.source}, not from the image it runs; it is kept (replacing it "
                        "cuts the private subnets' egress): to move, terminate the instance, then `awsprac up` builds a new one and moves the route"))
    elif image is not None and image.problem:
        reports.append(((), image.problem))
    fixed = [FieldDiff(label, current, wanted) for label, current, wanted in (
        ("type", raw.get("InstanceType"), spec.instance_type),
        ("subnet", _subnet_name(ctx, raw.get("SubnetId")), spec.subnet),
    ) if current != wanted]
    if fixed:
        reports.append((tuple(fixed), "the type changes only while stopped, the subnet never: change it by hand, or terminate the instance and `awsprac up`"))
    changes += [Change(NAME, Action.REPORT, INSTANCE, spec.name, instance.id, f, note=note) for f, note in reports]
    return changes


def _profile_name(raw: dict) -> str | None:
    arn = (raw.get("IamInstanceProfile") or {}).get("Arn")
    return arn.rsplit("/", 1)[-1] if arn else None


def _groups(raw: dict) -> list[dict]:
    # With the groups set on the network interface, read them there (Instance.SecurityGroups may be empty).
    for eni in raw.get("NetworkInterfaces", []):
        if eni.get("Attachment", {}).get("DeviceIndex", 0) == 0:
            return eni.get("Groups", [])
    return raw.get("SecurityGroups", [])


def _subnet_name(ctx: Context, subnet_id: str | None) -> str | None:
    for name, found in ctx.observed["subnets"].subnets.items():
        if found.id == subnet_id:
            return name
    return subnet_id


def _diff_address(ctx: Context, spec: AddressSpec, have: Observed) -> list[Change]:
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


def _diff_gateway(ctx: Context, spec: GatewaySpec, have: Observed) -> list[Change]:
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
        ("subnet", _subnet_name(ctx, gateway.raw.get("SubnetId")), spec.subnet),
        ("connectivity", gateway.raw.get("ConnectivityType", "public"), "public"),
    ) if current != wanted]
    if address is not None and address.id not in allocations:
        fixed.append(FieldDiff("elastic IP", ", ".join(a for a in allocations if a) or None, f"{spec.address} ({address.id})"))
    if fixed:
        changes.append(Change(NAME, Action.REPORT, GATEWAY, spec.name, gateway.id, tuple(fixed),
                              note="a NAT gateway's subnet and address cannot change: delete it, then `awsprac up` makes a new one"))
    return changes


def _leftovers(ctx: Context, want: list, have: Observed) -> list[Change]:
    """What another mode (or a turned-off elastic_ip) left: this env's goes, anyone else's is shown, not touched."""
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
            _apply_security_group(ctx, change)
        elif change.kind == INSTANCE:
            _apply_instance(ctx, change)
        elif change.kind == ADDRESS:
            _apply_address(ctx, change)
        elif change.kind == GATEWAY:
            _apply_gateway(ctx, change)
        elif change.kind == AMI:
            deregister_ami(ctx, change.id)
        elif change.kind in (nat_iam.ROLE, nat_iam.PROFILE):
            nat_iam.apply(ctx, change)


def _apply_security_group(ctx: Context, change: Change) -> None:
    ec2, have, spec = ctx.aws.ec2, ctx.observed[NAME], change.spec
    if change.action is Action.DELETE:
        delete_when_free(ctx, change, ec2.delete_security_group, lambda: network_interfaces(ec2, group_id=change.id), GroupId=change.id)
        return
    if change.action is Action.CREATE:
        vpc_id = ctx.observed["vpc"].id
        try:
            group_id = eventually(
                ctx, f"vpc {vpc_id}", ec2.create_security_group, GroupName=spec.name, Description=spec.description, VpcId=vpc_id,
                TagSpecifications=tags.specification("security-group", ctx.tags(spec.name)),
            )["GroupId"]
        except Exception as exc:
            if error_code(exc) != "InvalidGroup.Duplicate":  # made by a run that crashed before it saw the answer
                raise
            existing = find_security_group(ec2, spec.name, vpc_id)
            if existing is None:
                raise
            retag(ctx, existing)
            group_id = existing.id
        ctx.made[(SG, spec.name)] = group_id  # the instance's launch, next, needs it: no second look
        rules: tuple[dict, ...] = ()
    else:
        retag(ctx, have.sg)
        group_id, rules = have.sg.id, have.rules
    missing, egress_missing, extra = rule_gaps(spec, rules)
    if change.action is Action.CREATE:
        egress_missing = False  # AWS gives every new group the all-traffic outbound rule
    if missing:
        _authorize(ctx, group_id, [{"CidrIp": cidr, "Description": f"all traffic from {name}"} for cidr, name in missing], ingress=True)
    if egress_missing:
        _authorize(ctx, group_id, [{"CidrIp": ANYWHERE}], ingress=False)
    if ctx.options.prune and extra:
        ingress = [r["SecurityGroupRuleId"] for r in extra if not r.get("IsEgress")]
        egress = [r["SecurityGroupRuleId"] for r in extra if r.get("IsEgress")]
        if ingress:
            gone_is_fine(ec2.revoke_security_group_ingress, GroupId=group_id, SecurityGroupRuleIds=ingress)
        if egress:
            gone_is_fine(ec2.revoke_security_group_egress, GroupId=group_id, SecurityGroupRuleIds=egress)


def _authorize(ctx: Context, group_id: str, ranges: list[dict], ingress: bool) -> None:
    call = ctx.aws.ec2.authorize_security_group_ingress if ingress else ctx.aws.ec2.authorize_security_group_egress
    try:
        eventually(ctx, f"security group {group_id}", call, GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": ranges}])
    except Exception as exc:
        if error_code(exc) != "InvalidPermission.Duplicate":
            raise
        # One of them is there already (AWS then adds none of the call's): one range at a time.
        for one in ranges:
            try:
                call(GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [one]}])
            except Exception as again:
                if error_code(again) != "InvalidPermission.Duplicate":
                    raise


def _apply_instance(ctx: Context, change: Change) -> None:
    ec2 = ctx.aws.ec2
    if change.action is Action.DELETE:
        gone_is_fine(ec2.terminate_instances, InstanceIds=[change.id])
        wait_instance(ctx, change.name, change.id, ("terminated",))
        return
    if change.action is Action.CREATE:
        instance_id = launch(ctx, change.spec)
        wait_instance(ctx, change.name, instance_id, ("running",))
        # Cannot be set at launch: a NAT forwards packets that are neither from nor to itself.
        eventually(ctx, f"instance {instance_id}", ec2.modify_instance_attribute, InstanceId=instance_id, SourceDestCheck={"Value": False})
        return
    instance = ctx.observed[NAME].instance
    raw, spec = instance.raw, change.spec
    retag(ctx, instance)
    if instance.state == "pending":
        wait_instance(ctx, change.name, instance.id, ("running",))
    if raw.get("SourceDestCheck", True):
        ec2.modify_instance_attribute(InstanceId=instance.id, SourceDestCheck={"Value": False})
    if (raw.get("MetadataOptions") or {}).get("HttpTokens") != "required":
        ec2.modify_instance_metadata_options(InstanceId=instance.id, HttpTokens="required", HttpEndpoint="enabled")
    if _profile_name(raw) != spec.profile:
        _set_profile(ctx, instance.id, spec.profile)
    sg = ctx.observed[NAME].sg
    groups = [g["GroupId"] for g in _groups(raw)]
    if sg is not None and sg.id not in groups:
        ec2.modify_network_interface_attribute(NetworkInterfaceId=primary_interface(instance), Groups=groups + [sg.id])


def launch(ctx: Context, spec: InstanceSpec) -> str:
    """RunInstances with one deterministic ClientToken: a retry, or a re-run after a crash, gets the same
    instance back from AWS instead of a second NAT. Retried only while IAM has not yet shown EC2 the profile."""
    ec2, cfg, have = ctx.aws.ec2, ctx.cfg, ctx.observed[NAME]
    vpc_id = ctx.observed["vpc"].id
    n = names(cfg)
    subnet_id = ctx.observed["subnets"].subnets[spec.subnet].id
    sg_id = have.sg.id if have.sg else ctx.made.get((SG, n.sg))
    if sg_id is None:
        sg = find_security_group(ec2, n.sg, vpc_id)
        if sg is None:
            raise AwspracError(f"security group {n.sg} is missing: run `awsprac up --env {cfg.env}` again")
        sg_id = sg.id
    # A token stays bound to its instance for at least 24 h after termination: the instances of this
    # name that died in this VPC are part of it, so a replacement gets a new one.
    dead = list(have.dead) if have.vpc_id == vpc_id else _dead_instances(ec2, spec.name, vpc_id)
    params = {
        "ImageId": have.image.id,
        "InstanceType": spec.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        # With a public IP, subnet and groups go inside the interface (not top-level SubnetId/SecurityGroupIds).
        "NetworkInterfaces": [{
            "DeviceIndex": 0, "SubnetId": subnet_id, "Groups": [sg_id],
            "AssociatePublicIpAddress": True, "DeleteOnTermination": True,
        }],
        "IamInstanceProfile": {"Name": spec.profile},
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        "UserData": render_user_data(cfg),
        "TagSpecifications": [
            *tags.specification("instance", ctx.tags(spec.name)),
            *tags.specification("volume", ctx.tags(spec.name)),
            *tags.specification("network-interface", ctx.tags(spec.name)),
        ],
    }
    for _ in range(5):
        params["ClientToken"] = tokens.client_token("nat-instance", vpc_id, spec.name, *dead)
        reply = waiting.retry_on(
            profile_not_ready, lambda: ec2.run_instances(**params), IAM_PROPAGATION_BUDGET, ctx.report,
            f"launching NAT instance {spec.name}",
        )
        instance = reply["Instances"][0]
        if instance["State"]["Name"] not in DEAD_INSTANCE:
            return instance["InstanceId"]
        # AWS answered with the token's earlier instance, terminated since: a new token for a new one.
        dead.append(instance["InstanceId"])
    raise AwspracError(f"launching NAT instance {spec.name}: AWS keeps answering with terminated instances ({', '.join(dead)})")


def _dead_instances(ec2, name: str, vpc_id: str) -> list[str]:
    reply = ec2.describe_instances(Filters=[
        {"Name": "tag:Name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]},
        {"Name": "instance-state-name", "Values": list(DEAD_INSTANCE)},
    ])
    return sorted(i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"])


PROFILE_NOT_READY = ("Invalid IAM Instance Profile name", "has no associated IAM Roles")


def profile_not_ready(exc: Exception) -> bool:
    """AWS's answer while a new instance profile is not yet visible to EC2 (seconds, sometimes minutes)."""
    if error_code(exc) != "InvalidParameterValue":
        return False
    message = (getattr(exc, "response", None) or {}).get("Error", {}).get("Message", "")
    return any(text in message for text in PROFILE_NOT_READY)


def wait_instance(ctx: Context, name: str, instance_id: str, states: tuple[str, ...]) -> None:
    ec2 = ctx.aws.ec2

    def check() -> tuple[bool, str]:
        try:
            reply = ec2.describe_instances(InstanceIds=[instance_id])
        except Exception as exc:
            if is_not_found(exc):  # just launched and not yet visible, or long gone
                return "terminated" in states, "not visible yet" if "running" in states else "gone"
            raise
        found = [i for r in reply["Reservations"] for i in r["Instances"]]
        state = found[0]["State"]["Name"] if found else "terminated"
        if "running" in states and state in DEAD_INSTANCE + ("stopped",):
            reason = (found[0].get("StateReason") or {}).get("Message", "") if found else ""
            raise AwspracError(f"NAT instance {name} ({instance_id}) is {state} instead of running{': ' + reason if reason else ''}")
        return state in states, state

    waiting.wait_for(ctx.report, f"instance {name} ({instance_id}) becoming {'/'.join(states)}", check, INSTANCE_BUDGET, interval=5)


def _set_profile(ctx: Context, instance_id: str, profile: str) -> None:
    ec2 = ctx.aws.ec2
    current = ec2.describe_iam_instance_profile_associations(Filters=[
        {"Name": "instance-id", "Values": [instance_id]}, {"Name": "state", "Values": ["associating", "associated"]},
    ])["IamInstanceProfileAssociations"]
    if current:
        call = lambda: ec2.replace_iam_instance_profile_association(IamInstanceProfile={"Name": profile}, AssociationId=current[0]["AssociationId"])
    else:
        call = lambda: ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": profile}, InstanceId=instance_id)
    waiting.retry_on(profile_not_ready, call, IAM_PROPAGATION_BUDGET, ctx.report, f"giving instance {instance_id} profile {profile}")


def _apply_address(ctx: Context, change: Change) -> None:
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


def _apply_gateway(ctx: Context, change: Change) -> None:
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


def deregister_ami(ctx: Context, image_id: str) -> None:
    """The AMI and the snapshots behind it (they keep billing otherwise)."""
    ec2 = ctx.aws.ec2
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except Exception as exc:
        if is_not_found(exc):
            return
        raise
    snapshots = [m["Ebs"]["SnapshotId"] for i in images for m in i.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")]
    gone_is_fine(ec2.deregister_image, ImageId=image_id)
    for snapshot in snapshots:
        try:
            ec2.delete_snapshot(SnapshotId=snapshot)
        except Exception as exc:
            if error_code(exc) not in ("InvalidSnapshot.NotFound",):
                raise


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
