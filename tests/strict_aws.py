"""The strict layer: moto made as strict as AWS where awsprac's order of operations matters.

`faithful_moto()` (awsprac.sandbox) fills in what moto lacks on calls awsprac makes; this layer goes
further, for the tests only: it refuses what real AWS refuses, with AWS's own error codes and
messages, and it records what AWS would not refuse but a user would suffer (an egress gap, a NAT
instance booted without a way to the internet). Moto forgives all of these (MOTO.md "Not faithful").

    install()       patch moto in this process (idempotent); rules apply while STRICT.enabled
    STRICT          the switch and the recorder: .gaps, .offline, .refused; reset()
    read(path)      what a moto server process recorded (its STRICT_AWS_RECORD file), as a Records

The end-to-end server runs with it on (tests/strict_server.py); unit tests take the `strict_aws`
fixture of conftest.py. Each rule below says what it models and where AWS documents it.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field

ANYWHERE = "0.0.0.0/0"
LIVE_INSTANCE = ("pending", "running", "stopping", "stopped")
DEAD_NAT_GATEWAY = ("deleting", "deleted", "failed")
# How many DeleteSnapshot calls AWS still refuses after the image was deregistered: "a short while",
# counted in calls so no test depends on time.
SNAPSHOT_IN_USE_CALLS = 2


@dataclass
class Records:
    gaps: list[dict] = field(default_factory=list)  # egress gaps: {"table", "route", "why", "after"}
    offline: list[dict] = field(default_factory=list)  # instances launched without an internet route
    refused: list[dict] = field(default_factory=list)  # every call this layer refused: {"action", "code"}


class _Strict:
    def __init__(self) -> None:
        self.enabled = False
        self.lock = threading.RLock()
        self.records = Records()
        self.path = os.environ.get("STRICT_AWS_RECORD")
        self.in_use: dict[str, tuple[str, int]] = {}  # snapshot -> (image, refusals left)
        self.history: dict[str, str] = {}  # route table -> the kind of NAT its default route last led to

        # The NAT mode the env file says (the test knows it, the emulation cannot): "none" means the private
        # subnets are meant to have no default route. A server reads it from STRICT_AWS_CONTROL.
        self.nat_mode = "instance"
        self.control = os.environ.get("STRICT_AWS_CONTROL")
        self.seen_mode: str | None = None

    def reset(self) -> None:
        with self.lock:
            self.records = Records()
            self.in_use.clear()
            self.history.clear()
            self.nat_mode = "instance"

    def configured_mode(self) -> str:
        if self.control and os.path.exists(self.control):
            return open(self.control).read().strip() or "instance"
        return self.nat_mode

    def record(self, kind: str, entry: dict) -> None:
        with self.lock:
            getattr(self.records, kind).append(entry)
            if self.path:
                with open(self.path, "a") as out:
                    out.write(json.dumps({"kind": kind, **entry}) + "\n")

    @property
    def gaps(self) -> list[dict]:
        return self.records.gaps

    @property
    def offline(self) -> list[dict]:
        return self.records.offline

    @property
    def refused(self) -> list[dict]:
        return self.records.refused


STRICT = _Strict()


def read(path) -> Records:
    """What a server process with STRICT_AWS_RECORD=path recorded."""
    records = Records()
    if os.path.exists(path):
        for line in open(path).read().splitlines():
            entry = json.loads(line)
            getattr(records, entry.pop("kind")).append(entry)
    return records


def install() -> None:
    from moto.core.responses import BaseResponse
    from moto.ec2.models.route_tables import Route

    if getattr(BaseResponse.call_action, "_strict", False):
        return
    original = BaseResponse.call_action

    def call_action(self):
        if not STRICT.enabled:
            return original(self)
        from moto.core.exceptions import ServiceException
        from moto.core.responses import ActionResult

        action = self._get_action()
        key = (getattr(self, "service_name", None), action)
        try:
            before = BEFORE.get(key)
            context = before(self) if before else None
        except ServiceException as refusal:
            STRICT.record("refused", {"action": action, "code": refusal.code, "message": refusal.message})
            status, headers, body = self.serialized(ActionResult(refusal))
            headers["status"] = status
            status, headers, body = self._transform_response(self.response_headers, (body, headers))
            return status, *self._enrich_response(headers, body)
        result = original(self)
        if int(result[0]) < 300:
            after = AFTER.get(key)
            if after:
                after(self, context)
            if key[0] == "ec2" and not action.startswith(("Describe", "Get")):
                _watch_egress(_ec2(self), action)
        return result

    call_action._strict = True  # type: ignore[attr-defined]
    BaseResponse.call_action = call_action

    original_state = Route.state

    def state(route) -> str:
        # A route whose target is gone (terminated or stopped instance, its deleted interface, a deleted
        # NAT gateway) shows State "blackhole": AWS VPC User Guide, "Route tables" > "Route table
        # concepts" ("blackhole: the route's target isn't available").
        if not STRICT.enabled:
            return original_state.fget(route)
        return "blackhole" if _dead_target(route) else "active"

    Route.state = property(state)


# --- helpers over moto's backends ---


def _ec2(response):
    from moto.ec2.models import ec2_backends

    return ec2_backends[response.current_account][response.region]


def _rds(response):
    from moto.rds.models import rds_backends

    return rds_backends[response.current_account][response.region]


def _elbv2(response):
    from moto.elbv2.models import elbv2_backends

    return elbv2_backends[response.current_account][response.region]


def _ecs(response):
    from moto.ecs.models import ecs_backends

    return ecs_backends[response.current_account][response.region]


def _instances(ec2) -> list:
    return [i for i in ec2.all_instances() if i.state in LIVE_INSTANCE]


def _name(resource) -> str:
    return next((t["value"] for t in resource.get_tags() if t["key"] == "Name"), "")


def _live_dbs(response) -> list:
    return [db for db in _rds(response).databases.values() if getattr(db, "status", "") != "deleting"]


def _db_subnets(db) -> list[str]:
    """The subnets a DB instance has its network interface in: its AZ's subnet of its subnet group."""
    group = getattr(db, "db_subnet_group", None)
    subnets = list(getattr(group, "_subnets", []) or [])
    zone = getattr(db, "availability_zone", None)
    here = [s for s in subnets if getattr(s, "availability_zone", None) == zone]
    return [s.id for s in (here or subnets)]


def _dependency(message: str):
    from moto.ec2.exceptions import DependencyViolationError

    return DependencyViolationError(message)


def _dead_target(route) -> bool:
    ec2 = route.route_table.ec2_backend
    if route.nat_gateway is not None:
        return route.nat_gateway.id not in ec2.nat_gateways or route.nat_gateway.state in DEAD_NAT_GATEWAY
    if route.instance is not None:
        return route.instance.state != "running"
    if route.interface is not None:
        eni = route.interface
        return eni.id not in ec2.enis or eni.instance is None or eni.instance.state != "running"
    return False


def _nat_target(route) -> str | None:
    return "nat-gateway" if route.nat_gateway else "instance" if (route.instance or route.interface) else None


def _default_route(table):
    return next((r for r in table.routes if r.destination_cidr_block == ANYWHERE), None)


# --- DependencyViolation: what still has a network interface in a subnet, group or VPC ---
# AWS: "You must delete or detach all resources in a subnet before you can delete it" and "you can't
# delete a security group that is associated with an instance or network interface" (VPC User Guide,
# "Delete a subnet", "Delete a security group"); "Delete your VPC" lists the instances, NAT gateways,
# DB instances and internet gateways to remove first; AttachInternetGateway/DetachInternetGateway (EC2
# API Reference): "the VPC must not contain any running EC2 instances with Elastic IP addresses or public
# IPv4 addresses" (AWS answers: "Network vpc-... has some mapped public address(es)"). A DB instance
# kept by deletion protection keeps its interfaces (RDS User Guide, "Deleting a DB instance").


def _users_of_subnet(response, subnet_id: str) -> list[str]:
    ec2 = _ec2(response)
    users = [i.id for i in _instances(ec2) if i.subnet_id == subnet_id]
    users += [g.id for g in ec2.nat_gateways.values() if g.subnet_id == subnet_id and g.state not in DEAD_NAT_GATEWAY]
    users += [db.db_instance_identifier for db in _live_dbs(response) if subnet_id in _db_subnets(db)]
    return users


def _users_of_group(response, group_id: str) -> list[str]:
    """What has an interface in the group, or a rule naming it ("resource sg-... has a dependent object"
    either way: EC2 API Reference, DeleteSecurityGroup; a load balancer's and a Fargate task's
    interfaces hold their groups, VPC User Guide "Delete a security group")."""
    ec2 = _ec2(response)
    users = [i.id for i in _instances(ec2) if group_id in {g.id for eni in i.nics.values() for g in eni.group_set} | {g.id for g in i.security_groups}]
    users += [db.db_instance_identifier for db in _live_dbs(response) if group_id in (db.vpc_security_group_ids or [])]
    users += [lb.name for lb in _elbv2(response).load_balancers.values() if group_id in (lb.security_groups or [])]
    users += [s.name for s in _ecs(response).services.values() if s.status != "INACTIVE"
              and group_id in ((s.network_configuration or {}).get("awsvpcConfiguration") or {}).get("securityGroups", [])]
    users += [g.id for groups in ec2.groups.values() for g in groups.values()
              if g.id != group_id and any((r.source_group or {}).get("GroupId") == group_id for r in g.ingress_rules + g.egress_rules)]
    return users


def _users_of_vpc(response, vpc_id: str) -> list[str]:
    ec2 = _ec2(response)
    users = [i.id for i in _instances(ec2) if i.vpc_id == vpc_id]
    users += [g.id for g in ec2.nat_gateways.values() if g.vpc_id == vpc_id and g.state not in DEAD_NAT_GATEWAY]
    users += [db.db_instance_identifier for db in _live_dbs(response) if getattr(db.db_subnet_group, "vpc_id", None) == vpc_id]
    users += [i.id for i in ec2.internet_gateways.values() if i.vpc and i.vpc.id == vpc_id]
    users += [s.id for zone in ec2.subnets.values() for s in zone.values() if s.vpc_id == vpc_id and not s.default_for_az]
    return users


def _public_addresses_in(response, vpc_id: str) -> list[str]:
    ec2 = _ec2(response)
    mapped = [i.id for i in _instances(ec2) if i.vpc_id == vpc_id and i.state == "running" and i.public_ip]
    mapped += [g.id for g in ec2.nat_gateways.values() if g.vpc_id == vpc_id and g.state not in DEAD_NAT_GATEWAY and g.connectivity_type == "public"]
    return mapped


def _before_delete_subnet(response) -> None:
    subnet_id = response._get_param("SubnetId")
    if _users_of_subnet(response, subnet_id):
        raise _dependency(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")


def _before_delete_security_group(response) -> None:
    group_id = response._get_param("GroupId")
    if group_id and _users_of_group(response, group_id):
        raise _dependency(f"resource {group_id} has a dependent object")


def _before_delete_vpc(response) -> None:
    vpc_id = response._get_param("VpcId")
    if _users_of_vpc(response, vpc_id):
        raise _dependency(f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")


def _before_detach_internet_gateway(response) -> None:
    vpc_id = response._get_param("VpcId")
    if _public_addresses_in(response, vpc_id):
        raise _dependency(f"Network {vpc_id} has some mapped public address(es). Please unmap those public address(es) before detaching the gateway.")


def _before_delete_internet_gateway(response) -> None:
    igw_id = response._get_param("InternetGatewayId")
    igw = _ec2(response).internet_gateways.get(igw_id)
    if igw is not None and igw.vpc is not None:
        raise _dependency(f"The internetGateway '{igw_id}' has dependencies and cannot be deleted.")


# --- egress: the private subnets' default route, watched after every EC2 write ---
# A route whose NAT target is gone is a blackhole: the private subnets' traffic is dropped (VPC User
# Guide, "Route tables": route state blackhole; "NAT instances" / "NAT gateways": to switch, point the
# route at the new target, then remove the old one). A gap is any moment a table whose default route
# leads through a NAT has it in state blackhole, or has none at all while a NAT mode is configured
# (after it had one: a table still being built is not a gap). Removing it for nat.mode none is not a gap.


def _watch_egress(ec2, action: str) -> None:
    with STRICT.lock:
        mode = STRICT.configured_mode()
        if mode != STRICT.seen_mode:  # the env file changed: what the tables had before no longer counts
            STRICT.history.clear()
            STRICT.seen_mode = mode
        for table in list(ec2.route_tables.values()):
            if not table.associations:
                continue
            route = _default_route(table)
            kind = _nat_target(route) if route is not None else None
            name = _name(table) or table.id
            if kind and _dead_target(route):
                STRICT.record("gaps", {"table": name, "route": kind, "why": "blackhole", "after": action})
            if kind:
                STRICT.history[table.id] = kind
            elif route is None and STRICT.history.get(table.id) and mode != "none":
                STRICT.record("gaps", {"table": name, "route": STRICT.history[table.id], "why": "no default route", "after": action})


# --- launched offline: an instance whose subnet had no internet route at RunInstances ---
# User data runs once, at first boot (EC2 User Guide, "Run commands when you launch an EC2 instance
# with user data input": "scripts ... run only during the first boot cycle"); a public subnet is one
# whose route table has a route to an internet gateway (VPC User Guide, "Subnets for your VPC").


def _before_run_instances(response) -> set[str]:
    return {i.id for i in _ec2(response).all_instances()}


def _after_run_instances(response, before: set[str]) -> None:
    ec2 = _ec2(response)
    for instance in ec2.all_instances():
        if instance.id in before:
            continue
        if not _online(ec2, instance.subnet_id, instance.vpc_id):
            STRICT.record("offline", {"instance": instance.id, "name": _name(instance), "subnet": instance.subnet_id})


def _online(ec2, subnet_id: str, vpc_id: str) -> bool:
    tables = [t for t in ec2.route_tables.values() if t.vpc_id == vpc_id]
    table = next((t for t in tables if subnet_id in t._associations.values()), None)
    table = table or next((t for t in tables if t.main_association_id), None)
    route = _default_route(table) if table else None
    gateway = getattr(route, "gateway", None)
    if gateway is None or not gateway.id.startswith("igw-"):
        return False
    return gateway.vpc is not None and gateway.vpc.id == vpc_id


# --- RDS windows ---
# "The backup window and maintenance window must not overlap"; without PreferredMaintenanceWindow AWS
# assigns "a 30-minute window selected at random from an 8-hour block of time for each AWS Region"
# (RDS User Guide, "Maintaining a DB instance" > "The Amazon RDS maintenance window"; CreateDBInstance
# PreferredMaintenanceWindow). Modelled as an unlucky fair pick: the half hour starting 30 minutes after
# the backup window, so a later, longer backup window collides with it.

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def overlap(backup: str, maintenance: str) -> bool:
    """A daily backup window 'hh:mm-hh:mm' against a weekly 'ddd:hh:mm-ddd:hh:mm' (UTC, either may wrap)."""
    week = 7 * 24 * 60
    b0, b1 = (_minutes(x) for x in backup.split("-"))
    b1 += 24 * 60 if b1 <= b0 else 0
    start, end = maintenance.lower().split("-")
    m0 = DAYS.index(start[:3]) * 1440 + _minutes(start[4:])
    m1 = DAYS.index(end[:3]) * 1440 + _minutes(end[4:])
    m1 += week if m1 <= m0 else 0
    for day in range(-1, 8):
        s, e = day * 1440 + b0, day * 1440 + b1
        for shift in (-week, 0, week):
            if s < m1 + shift and m0 + shift < e:
                return True
    return False


def _windows_refused(backup: str | None, maintenance: str | None) -> None:
    from moto.rds.exceptions import InvalidParameterValue

    if backup and maintenance and overlap(backup, maintenance):
        raise InvalidParameterValue("The backup window and maintenance window must not overlap.")


def _before_create_db_instance(response):
    backup, maintenance = response._get_param("PreferredBackupWindow"), response._get_param("PreferredMaintenanceWindow")
    _windows_refused(backup, maintenance)
    return (response._get_param("DBInstanceIdentifier"), backup, maintenance)


def _after_create_db_instance(response, context) -> None:
    name, backup, maintenance = context
    db = _rds(response).databases.get(name)
    if db is not None and not maintenance and backup:
        start = (_minutes(backup.split("-")[1]) + 30) % 1440  # half an hour after (moto calls touching windows overlapping)
        end = (start + 30) % 1440
        db.preferred_maintenance_window = f"wed:{start // 60:02d}:{start % 60:02d}-{'wed' if end > start else 'thu'}:{end // 60:02d}:{end % 60:02d}"


def _before_modify_db_instance(response) -> None:
    db = _rds(response).databases.get(response._get_param("DBInstanceIdentifier"))
    if db is None:
        return
    backup = response._get_param("PreferredBackupWindow") or db.preferred_backup_window
    maintenance = response._get_param("PreferredMaintenanceWindow") or db.preferred_maintenance_window
    _windows_refused(backup, maintenance)


# --- RDS deletion protection ---
# "You can't delete a DB instance when deletion protection is turned on" (RDS User Guide, "Deletion
# protection"); AWS answers InvalidParameterCombination. moto does too; kept here so the rule holds
# whatever moto version runs.


def _before_delete_db_instance(response) -> None:
    from moto.rds.exceptions import InvalidParameterCombination

    db = _rds(response).databases.get(response._get_param("DBInstanceIdentifier"))
    if db is not None and db.deletion_protection:
        raise InvalidParameterCombination("Cannot delete protected DB Instance, please disable deletion protection and try again.")


# --- AMI snapshots ---
# DeregisterImage leaves the image's snapshots, and for a while DeleteSnapshot on them answers
# InvalidSnapshot.InUse ("The snapshot ... is currently in use by ami-..."); DeleteAssociatedSnapshots
# deletes them with the image (EC2 API Reference, DeregisterImage; EC2 User Guide, "Deregister an AMI").


def _before_deregister_image(response):
    ec2 = _ec2(response)
    image = ec2.amis.get(response._get_param("ImageId"))
    snapshots = [m["Ebs"]["SnapshotId"] for m in (image.block_device_mappings if image else []) if m.get("Ebs", {}).get("SnapshotId")]
    together = str(response._get_param("DeleteAssociatedSnapshots", "false")).lower() == "true"
    return image.id if image else None, snapshots, together


def _after_deregister_image(response, context) -> None:
    image, snapshots, together = context
    ec2 = _ec2(response)
    with STRICT.lock:
        for snapshot in snapshots:
            if together:
                ec2.snapshots.pop(snapshot, None)
            else:
                STRICT.in_use[snapshot] = (image, SNAPSHOT_IN_USE_CALLS)


def _before_delete_snapshot(response) -> None:
    from moto.ec2.exceptions import InvalidSnapshotInUse

    snapshot = response._get_param("SnapshotId")
    with STRICT.lock:
        image, left = STRICT.in_use.get(snapshot, (None, 0))
        if left > 0:
            STRICT.in_use[snapshot] = (image, left - 1)
            raise InvalidSnapshotInUse(snapshot, image)


BEFORE = {
    ("ec2", "DeleteSubnet"): _before_delete_subnet,
    ("ec2", "DeleteSecurityGroup"): _before_delete_security_group,
    ("ec2", "DeleteVpc"): _before_delete_vpc,
    ("ec2", "DetachInternetGateway"): _before_detach_internet_gateway,
    ("ec2", "DeleteInternetGateway"): _before_delete_internet_gateway,
    ("ec2", "RunInstances"): _before_run_instances,
    ("ec2", "DeregisterImage"): _before_deregister_image,
    ("ec2", "DeleteSnapshot"): _before_delete_snapshot,
    ("rds", "CreateDBInstance"): _before_create_db_instance,
    ("rds", "ModifyDBInstance"): _before_modify_db_instance,
    ("rds", "DeleteDBInstance"): _before_delete_db_instance,
}
AFTER = {
    ("ec2", "RunInstances"): _after_run_instances,
    ("ec2", "DeregisterImage"): _after_deregister_image,
    ("rds", "CreateDBInstance"): _after_create_db_instance,
}
