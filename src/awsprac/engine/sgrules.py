"""Security group rules as data: what a step wants, compared with what AWS describes, and carried out.

A wanted rule is TCP on one port from a CIDR block or from another security group (by id). AWS
groups permissions by protocol and port, each with many peers: a rule is present when any
permission of that protocol and port lists its peer.
"""

from __future__ import annotations

from dataclasses import dataclass

from awsprac.engine.aws import error_code

ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True)
class Rule:
    port: int | None  # None: every port (protocol -1)
    cidr: str = ""
    group_id: str = ""  # "" while the source group is still to be made
    source: str = ""  # how the plan names the peer (a group's name)
    protocol: str = "tcp"

    def text(self) -> str:
        peer = self.cidr or (f"{self.group_id} ({self.source})" if self.group_id else f"(new) {self.source}")
        protocol = "all" if self.protocol == "-1" else f"{self.protocol} {self.port}"
        return f"{protocol} from {peer}"

    def permission(self) -> dict:
        peer = {"IpRanges": [{"CidrIp": self.cidr}]} if self.cidr else {"UserIdGroupPairs": [{"GroupId": self.group_id}]}
        ports = {"FromPort": self.port, "ToPort": self.port} if self.port is not None else {}
        return {"IpProtocol": self.protocol, **ports, **peer}


def present(rule: Rule, permissions: list[dict]) -> bool:
    for p in permissions:
        if p.get("IpProtocol") != rule.protocol or p.get("FromPort") != rule.port or p.get("ToPort") != rule.port:
            continue
        if rule.cidr and any(r.get("CidrIp") == rule.cidr for r in p.get("IpRanges", [])):
            return True
        if rule.group_id and any(g.get("GroupId") == rule.group_id for g in p.get("UserIdGroupPairs", [])):
            return True
    return False


def missing(wanted: list[Rule], permissions: list[dict]) -> list[Rule]:
    return [r for r in wanted if not present(r, permissions)]


def unwanted(wanted: list[Rule], permissions: list[dict]) -> list[Rule]:
    """Inbound peers (CIDR blocks and groups) on TCP ports that no wanted rule lists: each as a Rule."""
    extra = []
    for p in permissions:
        port = p.get("FromPort")
        for r in p.get("IpRanges", []):
            rule = Rule(port, cidr=r.get("CidrIp", ""), protocol=p.get("IpProtocol", ""))
            if not any(w.cidr == rule.cidr and w.port == port and w.protocol == rule.protocol for w in wanted):
                extra.append(rule)
        for g in p.get("UserIdGroupPairs", []):
            rule = Rule(port, group_id=g.get("GroupId", ""), source=g.get("GroupId", ""), protocol=p.get("IpProtocol", ""))
            if not any(w.group_id == rule.group_id and w.port == port and w.protocol == rule.protocol for w in wanted):
                extra.append(rule)
    return extra


def authorize(ec2, group_id: str, rules: list[Rule]) -> None:
    """Inbound rules added; one that is there already (another run added it) is fine."""
    for rule in rules:
        try:
            ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[rule.permission()])
        except Exception as exc:
            if error_code(exc) != "InvalidPermission.Duplicate":
                raise


def revoke(ec2, group_id: str, rules: list[Rule]) -> None:
    for rule in rules:
        try:
            ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=[rule.permission()])
        except Exception as exc:
            if error_code(exc) not in ("InvalidPermission.NotFound", "InvalidGroup.NotFound"):
                raise


def revoke_references(ec2, vpc_id: str, group_id: str) -> list[str]:
    """Inbound rules of the VPC's other groups that name `group_id` as their source, revoked (AWS refuses
    to delete a group another group's rule refers to). Returns the groups changed."""
    referring = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "ip-permission.group-id", "Values": [group_id]}])["SecurityGroups"]
    changed = []
    for sg in referring:
        if sg["GroupId"] == group_id:
            continue
        rules = [Rule(p["FromPort"], group_id=group_id, protocol=p["IpProtocol"]) for p in sg.get("IpPermissions", [])
                 if any(g.get("GroupId") == group_id for g in p.get("UserIdGroupPairs", []))]
        if rules:
            revoke(ec2, sg["GroupId"], rules)
            changed.append(sg["GroupId"])
    return changed
