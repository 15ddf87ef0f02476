"""What `awsprac doctor`'s checks share: a Finding (with its exact fix), and the Scan (the env's
clients, config and a few cached reads) that the generic checks in commands/doctor.py and a family's
own `doctor_checks` read. Checks never write anything.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

from awsprac.engine import lookup
from awsprac.engine.aws import translate


@dataclass(frozen=True)
class Finding:
    check: str  # which check found it
    resource: str  # "kind name (id)"
    problem: str
    fix: str  # a command to run, or the console action to take


# The EC2 kinds steps look up by Name; per-VPC kinds are looked at inside the env's VPC only.
NAT_INSTANCE = dataclasses.replace(lookup.INSTANCE, per_vpc=True)
EC2_KINDS = (lookup.VPC, lookup.SUBNET, lookup.INTERNET_GATEWAY, lookup.SECURITY_GROUP, lookup.ROUTE_TABLE,
             NAT_INSTANCE, lookup.NAT_GATEWAY, lookup.ELASTIC_IP)

DELETE_COMMANDS = {
    "vpc": "aws ec2 delete-vpc --vpc-id {id}",
    "subnet": "aws ec2 delete-subnet --subnet-id {id}",
    "internet gateway": "aws ec2 delete-internet-gateway --internet-gateway-id {id} (detach it first: aws ec2 detach-internet-gateway --internet-gateway-id {id} --vpc-id VPC_ID)",
    "security group": "aws ec2 delete-security-group --group-id {id}",
    "route table": "aws ec2 delete-route-table --route-table-id {id}",
    "instance": "aws ec2 terminate-instances --instance-ids {id}",
    "NAT gateway": "aws ec2 delete-nat-gateway --nat-gateway-id {id}",
    "elastic IP": "aws ec2 release-address --allocation-id {id}",
    "network interface": "aws ec2 delete-network-interface --network-interface-id {id}",
    "secret": "aws secretsmanager delete-secret --secret-id {name} --recovery-window-in-days 7",
    "IAM role": "aws iam delete-role --role-name {name} (detach its policies and remove it from instance profiles first)",
    "DB instance": "aws rds delete-db-instance --db-instance-identifier {name} --final-db-snapshot-identifier {name}-final",
}


@dataclass
class Scan:
    """The env as the checks see it: reads made once, shared by every check."""

    ctx: object  # awsprac.engine.context.Context
    pinned_account: str = ""

    @property
    def cfg(self):
        return self.ctx.cfg

    @property
    def ec2(self):
        return self.ctx.aws.ec2

    def cli(self, command: str) -> str:
        """An AWS CLI command aimed at the env's region and profile, so it can be pasted as it is."""
        suffix = f" --region {self.cfg.region}"
        if self.ctx.aws.profile:
            suffix += f" --profile {self.ctx.aws.profile}"
        head, sep, note = command.partition(" (")
        return head + suffix + (f" ({note}" if sep else "")

    def delete_command(self, kind: str, name: str, id: str) -> str:
        template = DELETE_COMMANDS.get(kind)
        if template is None:
            return f"delete {kind} {name or id} in the AWS console"
        return self.cli(template.format(id=id, name=name))

    @cached_property
    def desired(self) -> dict[str, set[str]]:
        """Every name some step describes, by kind, with the names a family may own in another setting\n        (its doctor_names facet: all NAT modes, so a mode switch leaves nothing orphaned)."""
        from awsprac import steps

        names: dict[str, set[str]] = {}
        for step in steps.all_steps():
            for spec in step.desired(self.cfg):
                names.setdefault(spec.kind, set()).add(spec.name)
            for kind, more in getattr(step, "doctor_names", lambda cfg: {})(self.cfg).items():
                names.setdefault(kind, set()).update(more)
        return names

    @cached_property
    def vpcs(self) -> list[lookup.Found]:
        """Live VPCs carrying the env's VPC name (more than one is a duplicate finding)."""
        with translate("looking up", f"vpc {self.cfg.vpc_name}"):
            items = lookup.describe(self.ec2, lookup.VPC, [{"Name": "tag:Name", "Values": [self.cfg.vpc_name]}])
        return [lookup.to_found(lookup.VPC, i) for i in items]

    @property
    def vpc_id(self) -> str | None:
        """The env's VPC, when there is exactly one."""
        return self.vpcs[0].id if len(self.vpcs) == 1 else None

    @cached_property
    def named(self) -> dict[str, list[lookup.Found]]:
        """Per EC2 kind, every live resource carrying one of the names steps look up (in the env's VPC)."""
        out: dict[str, list[lookup.Found]] = {}
        for kind in EC2_KINDS:
            wanted = sorted(self.desired.get(kind.kind, ()))
            if not wanted:
                continue
            if kind is lookup.VPC:
                out[kind.kind] = self.vpcs
                continue
            filters = [{"Name": "tag:Name", "Values": wanted}]
            if kind.per_vpc:
                if not self.vpc_id:
                    continue
                filters.append({"Name": "vpc-id", "Values": [self.vpc_id]})
            with translate("looking up", f"{kind.kind}s of env {self.cfg.env}"):
                out[kind.kind] = [lookup.to_found(kind, i) for i in lookup.describe(self.ec2, kind, filters)]
        return out

    def one(self, kind: lookup.Kind, name: str) -> lookup.Found | None:
        matches = [f for f in self.named.get(kind.kind, []) if f.name == name]
        return matches[0] if len(matches) == 1 else None

    @cached_property
    def owned_instances(self) -> list[lookup.Found]:
        with translate("looking up", f"instances of env {self.cfg.env}"):
            return lookup.find_owned(self.ec2, lookup.INSTANCE, self.cfg.project, self.cfg.env)


def label(found: lookup.Found) -> str:
    return f"{found.kind} {found.name} ({found.id})" if found.name else f"{found.kind} {found.id}"
