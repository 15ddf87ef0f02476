"""Find resources by Name tag (plus VPC where names are per VPC), described as metadata.

One generic lookup serves every EC2 kind (cloud-custodian's idea): one batched describe
per kind, dead states excluded, and more than one live match for a name is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from awsprac.engine import tags as tagging
from awsprac.engine.errors import AmbiguousResource


@dataclass(frozen=True)
class Kind:
    kind: str  # how the plan and errors name it
    describe: str  # EC2 client method
    key: str  # list in the response
    id_field: str
    state_field: str | None = None
    dead_states: tuple[str, ...] = ()
    resource_type: str = ""  # TagSpecifications ResourceType
    per_vpc: bool = False  # names are unique only inside one VPC
    reservations: bool = False  # describe_instances nests instances in reservations


VPC = Kind("vpc", "describe_vpcs", "Vpcs", "VpcId", "State", resource_type="vpc")
SUBNET = Kind("subnet", "describe_subnets", "Subnets", "SubnetId", "State", resource_type="subnet", per_vpc=True)
INTERNET_GATEWAY = Kind("internet gateway", "describe_internet_gateways", "InternetGateways", "InternetGatewayId", resource_type="internet-gateway")
SECURITY_GROUP = Kind("security group", "describe_security_groups", "SecurityGroups", "GroupId", resource_type="security-group", per_vpc=True)
ROUTE_TABLE = Kind("route table", "describe_route_tables", "RouteTables", "RouteTableId", resource_type="route-table", per_vpc=True)
INSTANCE = Kind(
    "instance", "describe_instances", "Instances", "InstanceId", "State.Name",
    dead_states=("shutting-down", "terminated"), resource_type="instance", reservations=True,
)
NAT_GATEWAY = Kind(
    "NAT gateway", "describe_nat_gateways", "NatGateways", "NatGatewayId", "State",
    dead_states=("deleting", "deleted", "failed"), resource_type="natgateway", per_vpc=True,
)
ELASTIC_IP = Kind("elastic IP", "describe_addresses", "Addresses", "AllocationId", resource_type="elastic-ip")


@dataclass(frozen=True)
class Found:
    """One live resource as AWS describes it."""

    kind: str
    name: str
    id: str
    state: str
    tags: dict[str, str]
    raw: dict[str, Any] = field(repr=False, compare=False)

    def owned_by(self, project: str, env: str) -> bool:
        return tagging.is_owned(self.tags, project, env)


def describe(ec2, kind: Kind, filters: list[dict], keep_dead: bool = False) -> list[dict]:
    """All items of a kind matching the filters, every page, dead ones dropped (unless `keep_dead`)."""
    method = getattr(ec2, kind.describe)
    if ec2.can_paginate(kind.describe):
        pages = ec2.get_paginator(kind.describe).paginate(Filters=filters)
    else:
        pages = [method(Filters=filters)]
    items: list[dict] = []
    for page in pages:
        if kind.reservations:
            items.extend(i for r in page.get("Reservations", []) for i in r.get("Instances", []))
        else:
            items.extend(page.get(kind.key, []))
    return [i for i in items if keep_dead or _state(kind, i) not in kind.dead_states]


def find_by_names(ec2, kind: Kind, names: list[str], vpc_id: str | None = None) -> dict[str, Found]:
    """One describe for all the names; {name: Found} for those that exist. Raises on duplicates."""
    if not names:
        return {}
    filters = [{"Name": "tag:Name", "Values": sorted(set(names))}]
    if kind.per_vpc:
        if not vpc_id:
            return {}
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    by_name: dict[str, list[Found]] = {}
    for item in describe(ec2, kind, filters):
        found = to_found(kind, item)
        by_name.setdefault(found.name, []).append(found)
    return {name: single(kind, name, matches) for name, matches in by_name.items()}


def find_owned(ec2, kind: Kind, project: str, env: str, vpc_id: str | None = None) -> list[Found]:
    """Everything of a kind that carries this env's ownership tags (destroy, orphans)."""
    filters = [
        {"Name": f"tag:{tagging.PROJECT_KEY}", "Values": [project]},
        {"Name": f"tag:{tagging.ENV_KEY}", "Values": [env]},
    ]
    if vpc_id and kind.per_vpc:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    return [to_found(kind, item) for item in describe(ec2, kind, filters)]


def is_dead(kind: Kind, item: dict) -> bool:
    return _state(kind, item) in kind.dead_states


def single(kind: Kind, name: str, matches: list[Found]) -> Found:
    if len(matches) > 1:
        raise AmbiguousResource(kind.kind, name, [m.id for m in matches])
    return matches[0]


def to_found(kind: Kind, item: dict) -> Found:
    tags = tagging.as_dict(item.get("Tags"))
    return Found(kind.kind, tags.get("Name", ""), item[kind.id_field], _state(kind, item) or "", tags, item)


def _state(kind: Kind, item: dict) -> str | None:
    if not kind.state_field:
        return None
    value: Any = item
    for part in kind.state_field.split("."):
        value = (value or {}).get(part)
    return value
