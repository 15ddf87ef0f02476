"""`awsprac export terraform`: hand what awsprac built over to Terraform (1.5+ `import` blocks).

The env is observed read-only with the steps' own observe() (the same reads as `awsprac outputs`),
and turned into a plain Python structure: files -> resources, each with its Terraform type, a stable
readable name, its attributes and the import id of what exists. The HCL writer renders that structure
and nothing else, so tests (and `--json`) can inspect exactly what is written.

Choices that keep `terraform plan` free of replacements:
- Attributes that force a new resource (CIDRs, AZs, AMI, subnet, names, SG descriptions, the DB's
  engine, subnet group, encryption, the ECR encryption) are written as AWS reports them.
- Security group rules are separate `aws_vpc_security_group_{ingress,egress}_rule` resources imported
  by their `sgr-` ids (the provider's current practice); the groups have no inline rules, so Terraform
  neither duplicates nor fights over them. Route tables have no inline routes: the default routes are
  `aws_route` resources, imported as `<rtb>_0.0.0.0/0`.
- `aws_internet_gateway` with `vpc_id` covers the attachment (no separate attachment resource).
- The main route table association cannot be imported (the provider has no importer): its resource
  block is written with a comment; Terraform's create re-asserts what already holds.
- Nothing secret is written: the DB's password stays in Secrets Manager (`password` is ignored by
  Terraform), and the secret's value (`aws_secretsmanager_secret_version`) is not managed, since
  importing it would copy the password into Terraform's state.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from awsprac.errors import UsageError

DEFAULT_ROUTE = "0.0.0.0/0"
MANAGED_BY = "Managed by Terraform"
AWS_PROVIDER = ">= 5.0"
TERRAFORM = ">= 1.5.0"


# --- the structure ---


@dataclass(frozen=True)
class Expr:
    """An HCL expression written as is: a reference (aws_vpc.main.id) or a function call."""

    text: str


@dataclass(frozen=True)
class Block:
    """A nested block (target { ... }), as opposed to a map attribute (tags = { ... })."""

    attrs: dict


@dataclass
class Resource:
    type: str
    name: str
    attrs: dict
    import_id: str | None  # None: the resource type cannot be imported
    comment: str = ""

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"

    def ref(self, attribute: str = "id") -> Expr:
        return Expr(f"{self.address}.{attribute}")


@dataclass
class TfFile:
    name: str
    comment: str
    resources: list[Resource] = field(default_factory=list)
    raw: str = ""  # providers.tf: written as text

    def add(self, resource: Resource) -> Resource:
        self.resources.append(resource)
        return resource


@dataclass
class Export:
    env: str
    files: list[TfFile]
    skipped: list[str] = field(default_factory=list)  # what awsprac would build but does not exist yet
    warnings: list[str] = field(default_factory=list)

    @property
    def resources(self) -> list[Resource]:
        return [r for f in self.files for r in f.resources]

    def to_json(self) -> dict:
        return {
            "env": self.env,
            "files": {
                f.name: [
                    {"address": r.address, "type": r.type, "name": r.name, "import_id": r.import_id, "attributes": _jsonable(r.attrs)}
                    for r in f.resources
                ]
                for f in self.files
            },
            "not_built": self.skipped,
            "warnings": self.warnings,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Expr):
        return {"expr": value.text}
    if isinstance(value, Json):
        return {"jsonencode": value.value}
    if isinstance(value, Block):
        return {"block": _jsonable(value.attrs)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# --- building it from what was observed ---


def address_name(text: str) -> str:
    """A Terraform name from anything: lower-case letters, digits and '_', starting with a letter."""
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return name if name and name[0].isalpha() else f"r_{name}"


@dataclass(frozen=True)
class Json:
    """A JSON document written as jsonencode({...}): the provider compares policies as JSON, not as text."""

    value: Any


def jsonencode(value: Any) -> Json:
    return Json(value)


def build(ctx) -> Export:
    """Observe the env (read-only) and describe every resource awsprac built as Terraform."""
    from awsprac import runner

    steps = runner.resolve(None)
    runner.observe_all(ctx, steps)
    obs, cfg = ctx.observed, ctx.cfg
    if obs["vpc"].vpc is None:
        raise UsageError(f"env {cfg.env} has nothing built yet (no VPC {cfg.vpc_name}): run `awsprac up --env {cfg.env}` first")
    out = Export(cfg.env, [])
    b = _Builder(ctx, out)
    b.providers()
    b.network()
    b.nat()
    b.routes()
    b.secrets()
    b.database()
    b.ecr()
    b.scheduler()
    out.files = [f for f in out.files if f.resources or f.raw]
    return out


class _Builder:
    def __init__(self, ctx, out: Export):
        self.ctx, self.cfg, self.obs, self.out = ctx, ctx.cfg, ctx.observed, out
        self.vpc: Resource | None = None
        self.subnets: dict[str, Resource] = {}  # by subnet Name
        self.igw: Resource | None = None
        self.nat_instance: Resource | None = None
        self.nat_gateway: Resource | None = None
        self.nat_role: Resource | None = None

    def role_description(self, role) -> str | None:
        """The account-wide IAM read the steps make (GetAccountAuthorizationDetails) carries no role
        descriptions: asked for by name."""
        if "Description" in role.raw:
            return role.raw["Description"]
        from awsprac.aws import translate

        with translate("looking up", f"IAM role {role.name}"):
            return self.ctx.aws.client("iam").get_role(RoleName=role.name)["Role"].get("Description")

    def file(self, name: str, comment: str) -> TfFile:
        f = TfFile(name, comment)
        self.out.files.append(f)
        return f

    def missing(self, what: str) -> None:
        self.out.skipped.append(what)

    def tags(self, name: str) -> dict:
        # The ownership tags come from the provider's default_tags.
        return {"Name": name}

    def providers(self) -> None:
        from awsprac import tags

        f = self.file("providers.tf", "Provider and versions. The ownership tags awsprac reads are default_tags, so every resource keeps them.")
        f.raw = "\n".join([
            "terraform {",
            f"  required_version = {_string(TERRAFORM)}",
            "  required_providers {",
            "    aws = {",
            f"      source  = {_string('hashicorp/aws')}",
            f"      version = {_string(AWS_PROVIDER)}",
            "    }",
            "  }",
            "}",
            "",
            'provider "aws" {',
            f"  region  = {_string(self.cfg.region)}",
            f"  profile = {_string(self.cfg.profile_name)}",
            "",
            "  default_tags {",
            "    tags = " + _hcl(tags.ownership(self.cfg.project, self.cfg.env), 2),
            "  }",
            "}",
            "",
        ])

    # network.tf

    def network(self) -> None:
        from awsprac.steps import subnets as subnets_step

        f = self.file("network.tf", "VPC, subnets, internet gateway (docs/reference.md section 2).")
        vpc_obs = self.obs["vpc"]
        raw = vpc_obs.vpc.raw
        support, hostnames = vpc_obs.dns
        self.vpc = f.add(Resource("aws_vpc", "main", {
            "cidr_block": raw["CidrBlock"],
            "instance_tenancy": raw.get("InstanceTenancy", "default"),
            "enable_dns_support": support,
            "enable_dns_hostnames": hostnames,
            "tags": self.tags(vpc_obs.vpc.name),
        }, vpc_obs.vpc.id))
        have = self.obs["subnets"].subnets
        for spec in subnets_step.desired(self.cfg):
            found = have.get(spec.name)
            if found is None:
                self.missing(f"subnet {spec.name}")
                continue
            zone = spec.az[len(self.cfg.region) - 1:]  # "1a", as in the subnet's name
            self.subnets[spec.name] = f.add(Resource("aws_subnet", address_name(f"{spec.tier}_{zone}"), {
                "vpc_id": self.vpc.ref(),
                "cidr_block": found.raw["CidrBlock"],
                "availability_zone": found.raw["AvailabilityZone"],
                "tags": self.tags(found.name),
            }, found.id))
        igw = self.obs["igw"].igw
        if igw is None:
            self.missing(f"internet gateway {self.cfg.igw_name}")
            return
        # vpc_id here is the attachment: no aws_internet_gateway_attachment as well.
        self.igw = f.add(Resource("aws_internet_gateway", "main", {"vpc_id": self.vpc.ref(), "tags": self.tags(igw.name)}, igw.id))

    def subnet_ref(self, name: str) -> Any:
        r = self.subnets.get(name)
        return r.ref() if r else None

    # nat.tf

    def nat(self) -> None:
        from awsprac.steps import nat as nat_step

        mode = self.cfg.nat.mode
        if mode == "none":
            return
        f = self.file("nat.tf", f"The NAT, mode {mode} (docs/reference.md section 3).")
        have = self.obs["nat"]
        n = nat_step.names(self.cfg)
        if mode == "instance":
            sg = self.security_group(f, "nat", have.sg, n.sg, "NAT")
            iam = self.obs["nat-iam"]
            if iam.role is None:
                self.missing(f"IAM role {n.profile}")
            else:
                self.nat_role = f.add(Resource("aws_iam_role", "nat", {
                    "name": iam.role.name,
                    "description": self.role_description(iam.role),
                    "assume_role_policy": jsonencode(_policy(iam.role.raw.get("AssumeRolePolicyDocument"))),
                    "tags": self.tags(iam.role.name),
                }, iam.role.name))
                for arn in sorted(iam.policies):
                    f.add(Resource("aws_iam_role_policy_attachment", f"nat_{address_name(arn.rsplit('/', 1)[-1])}", {
                        "role": self.nat_role.ref("name"), "policy_arn": arn,
                    }, f"{iam.role.name}/{arn}"))
            profile = None
            if iam.profile is None:
                self.missing(f"instance profile {n.profile}")
            else:
                profile = f.add(Resource("aws_iam_instance_profile", "nat", {
                    "name": iam.profile.name,
                    "role": self.nat_role.ref("name") if self.nat_role else (iam.profile.raw.get("Roles") or [{}])[0].get("RoleName"),
                    "tags": self.tags(iam.profile.name),
                }, iam.profile.name))
            instance = have.instance
            if instance is None:
                self.missing(f"NAT instance {n.instance}")
            else:
                raw = instance.raw
                if instance.state != "running":
                    # AWS shows no public IP on a stopped instance, and associate_public_ip_address forces a new one.
                    self.out.warnings.append(
                        f"NAT instance {instance.name} is {instance.state}: start it and export again, or Terraform would "
                        "read no public IP and plan to replace it"
                    )
                groups = [sg.ref() if sg is not None and g["GroupId"] == sg.import_id else g["GroupId"] for g in nat_step._groups(raw)]
                self.nat_instance = f.add(Resource("aws_instance", "nat", {
                    "ami": raw["ImageId"],
                    "instance_type": raw["InstanceType"],
                    "subnet_id": self.subnet_ref(n.subnet) or raw["SubnetId"],
                    "associate_public_ip_address": bool(raw.get("PublicIpAddress")),
                    "vpc_security_group_ids": groups,
                    "iam_instance_profile": profile.ref("name") if profile else None,
                    "source_dest_check": raw.get("SourceDestCheck", True),
                    "metadata_options": Block({"http_endpoint": "enabled", "http_tokens": (raw.get("MetadataOptions") or {}).get("HttpTokens", "required")}),
                    "tags": self.tags(instance.name),
                    # The AMI moves on (latest Amazon Linux 2023) and user data only ran at first boot:
                    # neither may replace a running NAT.
                    "lifecycle": Block({"ignore_changes": [Expr("ami"), Expr("user_data"), Expr("user_data_base64")]}),
                }, instance.id))
            address = have.addresses.get(n.instance_address)
            if self.cfg.nat.elastic_ip and address is not None:
                f.add(Resource("aws_eip", "nat_instance", {
                    "domain": "vpc",
                    "instance": self.nat_instance.ref() if self.nat_instance else address.raw.get("InstanceId"),
                    "tags": self.tags(address.name),
                }, address.id))
            return
        address = have.addresses.get(n.gateway_address)
        eip = None
        if address is None:
            self.missing(f"elastic IP {n.gateway_address}")
        else:
            eip = f.add(Resource("aws_eip", "nat", {"domain": "vpc", "tags": self.tags(address.name)}, address.id))
        gateway = have.gateway
        if gateway is None:
            self.missing(f"NAT gateway {n.gateway}")
            return
        first = (gateway.raw.get("NatGatewayAddresses") or [{}])[0]
        self.nat_gateway = f.add(Resource("aws_nat_gateway", "nat", {
            "allocation_id": eip.ref() if eip and first.get("AllocationId") == address.id else first.get("AllocationId"),
            "subnet_id": self.subnet_ref(n.subnet) or gateway.raw["SubnetId"],
            "connectivity_type": gateway.raw.get("ConnectivityType", "public"),
            "tags": self.tags(gateway.name),
        }, gateway.id))

    def security_group(self, f: TfFile, label: str, found, name: str, what: str) -> Resource | None:
        """The group and each of its rules, imported by their sgr- ids."""
        if found is None:
            self.missing(f"security group {name}")
            return None
        sg = f.add(Resource("aws_security_group", label, {
            "name": found.raw.get("GroupName", name),
            "description": found.raw.get("Description", MANAGED_BY),
            "vpc_id": self.vpc.ref(),
            "tags": self.tags(found.name or name),
        }, found.id))
        ec2 = self.ctx.aws.ec2
        pages = ec2.get_paginator("describe_security_group_rules").paginate(Filters=[{"Name": "group-id", "Values": [found.id]}])
        rules = sorted((r for page in pages for r in page["SecurityGroupRules"]), key=lambda r: (r.get("IsEgress", False), r.get("CidrIpv4") or "", r["SecurityGroupRuleId"]))
        subnet_by_cidr = {r.attrs["cidr_block"]: r for r in self.subnets.values()}
        used: set[str] = set()
        for rule in rules:
            egress = rule.get("IsEgress", False)
            attrs: dict = {"security_group_id": sg.ref(), "ip_protocol": rule.get("IpProtocol", "-1")}
            if rule.get("IpProtocol") not in ("-1", None):
                attrs["from_port"], attrs["to_port"] = rule.get("FromPort"), rule.get("ToPort")
            peer = rule.get("CidrIpv4")
            if peer:
                attrs["cidr_ipv4"] = peer
            elif rule.get("CidrIpv6"):
                attrs["cidr_ipv6"] = rule["CidrIpv6"]
            elif rule.get("PrefixListId"):
                attrs["prefix_list_id"] = rule["PrefixListId"]
            elif (rule.get("ReferencedGroupInfo") or {}).get("GroupId"):
                attrs["referenced_security_group_id"] = rule["ReferencedGroupInfo"]["GroupId"]
            if rule.get("Description"):
                attrs["description"] = rule["Description"]
            if peer == DEFAULT_ROUTE:
                readable = "all_out" if egress else "from_anywhere"
            elif peer in subnet_by_cidr:
                readable = f"from_{subnet_by_cidr[peer].name}" if not egress else f"to_{subnet_by_cidr[peer].name}"
            else:
                readable = rule["SecurityGroupRuleId"].replace("-", "_")
            rule_name = f"{label}_{readable}"
            if rule_name in used:
                rule_name = f"{rule_name}_{rule['SecurityGroupRuleId'].replace('-', '_')}"
            used.add(rule_name)
            kind = "aws_vpc_security_group_egress_rule" if egress else "aws_vpc_security_group_ingress_rule"
            f.add(Resource(kind, rule_name, attrs, rule["SecurityGroupRuleId"]))
        return sg

    # routes.tf

    def routes(self) -> None:
        from awsprac.steps import routes as routes_step

        f = self.file("routes.tf", "Route tables, default routes, subnet associations; the private table is the VPC's main (docs/reference.md section 4).")
        have = self.obs["routes"]
        subnets = self.obs["subnets"].subnets
        for spec in routes_step.desired(self.cfg):
            table = have.tables.get(spec.name)
            if table is None:
                self.missing(f"route table {spec.name}")
                continue
            rt = f.add(Resource("aws_route_table", spec.tier, {"vpc_id": self.vpc.ref(), "tags": self.tags(table.name)}, table.id))
            route = routes_step.default_route(table)
            if route is not None:
                attrs: dict = {"route_table_id": rt.ref(), "destination_cidr_block": DEFAULT_ROUTE}
                attrs.update(self.route_target(route))
                f.add(Resource("aws_route", f"{spec.tier}_default", attrs, f"{table.id}_{DEFAULT_ROUTE}"))
            for subnet_name in spec.subnets:
                subnet = subnets.get(subnet_name)
                current = have.association(subnet.id) if subnet else None
                if subnet is None or current is None or current[0] != table.id:
                    continue
                r = self.subnets[subnet_name]
                f.add(Resource("aws_route_table_association", r.name, {"subnet_id": r.ref(), "route_table_id": rt.ref()}, f"{subnet.id}/{table.id}"))
            main = have.main
            if spec.main and main is not None and main[0] == table.id:
                f.add(Resource("aws_main_route_table_association", "main", {"vpc_id": self.vpc.ref(), "route_table_id": rt.ref()}, None, comment=(
                    "The provider cannot import a main route table association: `terraform plan` shows it to add, and\n"
                    "applying it only re-asserts what already holds (ReplaceRouteTableAssociation to this same table).\n"
                    "Terraform then records this table as the \"original\" main one: before `terraform destroy`, make\n"
                    "another table main, or remove this resource from the state (`terraform state rm`)."
                )))

    def route_target(self, route: dict) -> dict:
        if route.get("NatGatewayId"):
            gid = route["NatGatewayId"]
            return {"nat_gateway_id": self.nat_gateway.ref() if self.nat_gateway and self.nat_gateway.import_id == gid else gid}
        if route.get("NetworkInterfaceId"):
            eni = route["NetworkInterfaceId"]
            nat = self.obs["nat"]
            if self.nat_instance is not None and nat.interface == eni:
                return {"network_interface_id": self.nat_instance.ref("primary_network_interface_id")}
            return {"network_interface_id": eni}
        if route.get("GatewayId"):
            gid = route["GatewayId"]
            return {"gateway_id": self.igw.ref() if self.igw and self.igw.import_id == gid else gid}
        if route.get("InstanceId"):
            return {"network_interface_id": self.nat_instance.ref("primary_network_interface_id") if self.nat_instance else route["InstanceId"]}
        return {}

    # secrets.tf

    def secrets(self) -> None:
        f = self.file("secrets.tf", (
            "The DB credentials' secret (docs/reference.md section 6): the secret only, never its value. An\n"
            "aws_secretsmanager_secret_version would need the password in these files and would copy it into\n"
            "Terraform's state; awsprac keeps writing the value (`awsprac db reset-password` replaces it)."
        ))
        state = self.obs["secrets"].secret
        if state is None:
            self.missing(f"secret {self.cfg.name('rds-main-{env}')}")
            return
        raw = state.found.raw
        attrs: dict = {"name": state.found.name, "description": raw.get("Description")}
        if raw.get("KmsKeyId") and raw["KmsKeyId"] not in ("alias/aws/secretsmanager",):
            attrs["kms_key_id"] = raw["KmsKeyId"]
        attrs["recovery_window_in_days"] = self.cfg.secrets.recovery_window_days
        attrs["tags"] = self.tags(state.found.name)
        f.add(Resource("aws_secretsmanager_secret", "db", attrs, state.arn))

    # database.tf

    def database(self) -> None:
        from awsprac.steps import rds as rds_step

        f = self.file("database.tf", "The database: security group, subnet and parameter groups, PostgreSQL (docs/reference.md section 5).")
        have = self.obs["rds"]
        sg_spec, sng_spec, pg_spec, db_spec = rds_step.desired(self.cfg)
        sg = self.security_group(f, "db", have.sg, sg_spec.name, "DB")
        # A look knows the groups the instance uses from its description; their own carry all they hold.
        have = dataclasses.replace(have, subnet_group=rds_step.read_on_its_own(self.ctx, have.subnet_group),
                                   parameter_group=rds_step.read_on_its_own(self.ctx, have.parameter_group))
        subnet_group = None
        if have.subnet_group is None:
            self.missing(f"DB subnet group {sng_spec.name}")
        else:
            raw = have.subnet_group.raw
            by_id = {r.import_id: r for r in self.subnets.values()}
            ids = sorted(s["SubnetIdentifier"] for s in raw.get("Subnets", []))
            subnet_group = f.add(Resource("aws_db_subnet_group", "main", {
                "name": have.subnet_group.name,
                "description": raw.get("DBSubnetGroupDescription", MANAGED_BY),
                "subnet_ids": sorted((by_id[i].ref() if i in by_id else i for i in ids), key=lambda v: v.text if isinstance(v, Expr) else v),
                "tags": self.tags(have.subnet_group.name),
            }, have.subnet_group.name))
        parameter_group = None
        if have.parameter_group is None:
            self.missing(f"DB parameter group {pg_spec.name}")
        else:
            raw = have.parameter_group.raw
            parameter_group = f.add(Resource("aws_db_parameter_group", "main", {
                "name": have.parameter_group.name,
                "family": raw.get("DBParameterGroupFamily"),
                "description": raw.get("Description", MANAGED_BY),
                "tags": self.tags(have.parameter_group.name),
            }, have.parameter_group.name))
        if have.db is None:
            self.missing(f"DB instance {db_spec.name}")
            return
        db, c = have.db.raw, self.cfg.database
        subnet_group_name = (db.get("DBSubnetGroup") or {}).get("DBSubnetGroupName")
        pg_names = [g.get("DBParameterGroupName") for g in db.get("DBParameterGroups", [])]
        sg_ids = [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", [])]
        attrs: dict = {
            "identifier": db["DBInstanceIdentifier"],
            "engine": db.get("Engine", c.engine),
            # The major only: the provider accepts the minor AWS upgrades to (auto minor version upgrade).
            "engine_version": (db.get("EngineVersion") or c.engine_major).split(".")[0],
            "instance_class": db.get("DBInstanceClass", c.instance_class),
            "storage_type": db.get("StorageType", c.storage_type),
            # Storage never shrinks (and grows by itself with autoscaling): never below what exists.
            "allocated_storage": max(db.get("AllocatedStorage", 0), c.allocated_storage),
            "max_allocated_storage": c.max_allocated_storage or None,
            "username": db.get("MasterUsername", c.master_username),
            "db_name": db.get("DBName", c.db_name),
            "port": (db.get("Endpoint") or {}).get("Port", c.port),
            "multi_az": db.get("MultiAZ", c.multi_az),
            "availability_zone": None if c.multi_az else db.get("AvailabilityZone", c.availability_zone),
            "db_subnet_group_name": subnet_group.ref("name") if subnet_group and subnet_group_name == subnet_group.import_id else subnet_group_name,
            "parameter_group_name": parameter_group.ref("name") if parameter_group and pg_names == [parameter_group.import_id] else (pg_names[0] if pg_names else None),
            "vpc_security_group_ids": [sg.ref() if sg and i == sg.import_id else i for i in sg_ids],
            "publicly_accessible": db.get("PubliclyAccessible", c.publicly_accessible),
            "storage_encrypted": db.get("StorageEncrypted", c.storage_encrypted),
            "backup_retention_period": c.backup_retention_days,
            "backup_window": c.backup_window,
            "copy_tags_to_snapshot": c.copy_tags_to_snapshot,
            "performance_insights_enabled": c.performance_insights,
            "performance_insights_retention_period": c.performance_insights_retention_days if c.performance_insights else None,
            "monitoring_interval": 0,
            "iam_database_authentication_enabled": False,
            "auto_minor_version_upgrade": c.auto_minor_version_upgrade,
            "deletion_protection": c.deletion_protection,
            "apply_immediately": c.apply_immediately,
            "skip_final_snapshot": False,
            "final_snapshot_identifier": f"{db['DBInstanceIdentifier']}-final",
            "tags": self.tags(have.db.name),
            # The master password lives in secret rds-main-<env> (awsprac wrote it there first). It is
            # never written here; Terraform leaves the instance's password as it is.
            "lifecycle": Block({"ignore_changes": [Expr("password")]}),
        }
        f.add(Resource("aws_db_instance", "main", attrs, db["DBInstanceIdentifier"]))

    # ecr.tf

    def ecr(self) -> None:
        from awsprac.steps import ecr as ecr_step

        f = self.file("ecr.tf", "The container registry and its lifecycle policy (docs/reference.md section 7).")
        have = self.obs["ecr"]
        if have.repo is None:
            self.missing(f"ECR repository {ecr_step.repository_name(self.cfg)}")
            return
        raw = have.repo.raw
        encryption = raw.get("encryptionConfiguration") or {"encryptionType": ecr_step.DEFAULT_ENCRYPTION}
        enc: dict = {"encryption_type": encryption["encryptionType"]}
        if encryption.get("kmsKey"):
            enc["kms_key"] = encryption["kmsKey"]
        repo = f.add(Resource("aws_ecr_repository", "main", {
            "name": have.repo.name,
            "image_tag_mutability": raw.get("imageTagMutability"),
            "encryption_configuration": Block(enc),
            "tags": self.tags(have.repo.name),
        }, have.repo.name))
        if have.policy is None:
            self.missing(f"lifecycle policy of {have.repo.name}")
            return
        policy = jsonencode(have.policy) if isinstance(have.policy, dict) else str(have.policy)
        f.add(Resource("aws_ecr_lifecycle_policy", "main", {"repository": repo.ref("name"), "policy": policy}, have.repo.name))

    # scheduler.tf

    def scheduler(self) -> None:
        from awsprac.steps import scheduler as scheduler_step

        f = self.file("scheduler.tf", "EventBridge Scheduler keeps a stopped DB stopped: weekly start, stop 30 minutes later (docs/reference.md section 8).")
        have = self.obs["scheduler"]
        role_spec, group_spec, *schedule_specs = scheduler_step.desired(self.cfg)
        role = None
        if have.role is None:
            self.missing(f"IAM role {role_spec.name}")
        else:
            raw = have.role.raw
            role = f.add(Resource("aws_iam_role", "scheduler", {
                "name": have.role.name,
                "description": self.role_description(have.role),
                "assume_role_policy": jsonencode(_policy(raw.get("AssumeRolePolicyDocument"))),
                "tags": self.tags(have.role.name),
            }, have.role.name))
            for policy_name, document in sorted(have.inline.items()):
                f.add(Resource("aws_iam_role_policy", f"scheduler_{address_name(policy_name)}", {
                    "name": policy_name, "role": role.ref(), "policy": jsonencode(_policy(document)),
                }, f"{have.role.name}:{policy_name}"))
            for arn in sorted(have.attached):
                f.add(Resource("aws_iam_role_policy_attachment", f"scheduler_{address_name(arn.rsplit('/', 1)[-1])}", {
                    "role": role.ref("name"), "policy_arn": arn,
                }, f"{have.role.name}/{arn}"))
        if have.group is None:
            self.missing(f"schedule group {group_spec.name}")
            return
        group = f.add(Resource("aws_scheduler_schedule_group", "main", {"name": have.group.name, "tags": self.tags(have.group.name)}, have.group.name))
        for spec in schedule_specs:
            found = have.schedules.get(spec.name)
            if found is None:
                self.missing(f"schedule {spec.name}")
                continue
            raw = found.raw
            target = raw.get("Target") or {}
            target_attrs: dict = {
                "arn": target.get("Arn"),
                "role_arn": role.ref("arn") if role and target.get("RoleArn") == have.role.raw["Arn"] else target.get("RoleArn"),
                # As AWS holds it, byte for byte: the provider compares this text as is.
                "input": target.get("Input"),
            }
            retry = target.get("RetryPolicy")
            if retry:
                target_attrs["retry_policy"] = Block({
                    "maximum_event_age_in_seconds": retry.get("MaximumEventAgeInSeconds"),
                    "maximum_retry_attempts": retry.get("MaximumRetryAttempts"),
                })
            window = raw.get("FlexibleTimeWindow") or {"Mode": "OFF"}
            window_attrs: dict = {"mode": window.get("Mode")}
            if window.get("MaximumWindowInMinutes"):
                window_attrs["maximum_window_in_minutes"] = window["MaximumWindowInMinutes"]
            short = "db_start" if spec.action.startswith("start") else "db_stop"
            f.add(Resource("aws_scheduler_schedule", short, {
                "name": found.name,
                "group_name": group.ref("name"),
                "description": raw.get("Description"),
                "schedule_expression": raw.get("ScheduleExpression"),
                "schedule_expression_timezone": raw.get("ScheduleExpressionTimezone"),
                "state": raw.get("State"),
                "flexible_time_window": Block(window_attrs),
                "target": Block(target_attrs),
            }, f"{have.group.name}/{found.name}"))


def _policy(document: Any) -> Any:
    if isinstance(document, str):
        import urllib.parse

        return json.loads(urllib.parse.unquote(document))
    return document or {}


# --- writing HCL ---

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _string(text: str) -> str:
    # JSON's escapes are HCL's; "${" and "%{" start templates in HCL and are doubled to stay literal.
    return json.dumps(text, ensure_ascii=False).replace("${", "$${").replace("%{", "%%{")


def _key(key: str) -> str:
    return key if IDENTIFIER.match(key) else _string(key)


def _hcl(value: Any, indent: int, json_object: bool = False) -> str:
    """An attribute's value. Map keys are quoted inside jsonencode (they are JSON keys, verbatim)."""
    pad = "  " * (indent + 1)
    if isinstance(value, Expr):
        return value.text
    if isinstance(value, Json):
        return f"jsonencode({_hcl(value.value, indent, json_object=True)})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        items = [_hcl(v, indent + 1, json_object) for v in value]
        if all("\n" not in i for i in items) and sum(len(i) for i in items) < 80:
            return "[" + ", ".join(items) + "]"
        return "[\n" + "".join(f"{pad}{i},\n" for i in items) + "  " * indent + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        keys = [(_string(k) if json_object else _key(k)) for k in value]
        lines = _assignments(pad, [(k, _hcl(v, indent + 1, json_object)) for k, v in zip(keys, value.values())])
        return "{\n" + "\n".join(lines) + "\n" + "  " * indent + "}"
    raise TypeError(f"cannot write {type(value).__name__} as HCL")


def _assignments(pad: str, pairs: list[tuple[str, str]]) -> list[str]:
    """`key = value` lines as `terraform fmt` aligns them: the `=` of consecutive one-line values in one
    column; a value over several lines is written `key = {` (one space) and ends the run of aligned lines."""
    lines: list[str] = []
    run: list[tuple[str, str]] = []

    def flush() -> None:
        width = max((len(k) for k, _ in run), default=0)
        lines.extend(f"{pad}{k.ljust(width)} = {v}" for k, v in run)
        run.clear()

    for key, text in pairs:
        if "\n" in text:
            flush()
            lines.append(f"{pad}{key} = {text}")
        else:
            run.append((key, text))
    flush()
    return lines


def _body(attrs: dict, indent: int) -> list[str]:
    pad = "  " * indent
    plain = [(k, v) for k, v in attrs.items() if v is not None and not isinstance(v, Block)]
    blocks = [(k, v) for k, v in attrs.items() if isinstance(v, Block)]
    lines = _assignments(pad, [(k, _hcl(v, indent)) for k, v in plain])
    for name, block in blocks:
        lines.append("")
        lines.append(f"{pad}{name} {{")
        lines.extend(_body(block.attrs, indent + 1))
        lines.append(f"{pad}}}")
    return lines


def render(f: TfFile) -> str:
    out = [f"# {line}" if line else "#" for line in f"{f.comment}\n\nWritten by `awsprac export terraform`.".splitlines()]
    out.append("")
    if f.raw:
        out.append(f.raw)
    for r in f.resources:
        if r.comment:
            out.extend(f"# {line}" for line in r.comment.splitlines())
        if r.import_id is not None:
            out += ["import {", f"  to = {r.address}", f"  id = {_string(r.import_id)}", "}", ""]
        out.append(f"resource {_string(r.type)} {_string(r.name)} {{")
        out.extend(_body(r.attrs, 1))
        out += ["}", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def default_folder(env: str) -> Path:
    return Path("terraform") / env


def write(export: Export, folder: Path, force: bool) -> list[Path]:
    """Write the files; a folder that holds anything is only written into with force."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise UsageError(f"{folder} is not empty: pass --force to overwrite the files awsprac writes there, or choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for f in export.files:
        path = folder / f.name
        path.write_text(render(f), encoding="utf-8")
        written.append(path)
    return written


def export_command(app, out: Path | None, force: bool, as_json: bool) -> None:
    """`awsprac export terraform`: observe, build, write (or print the structure as JSON)."""
    ctx = app.context(all_clients=True)
    folder = out or default_folder(app.cfg.env)
    if not as_json and folder.is_dir() and any(folder.iterdir()) and not force:
        raise UsageError(f"{folder} is not empty: pass --force to overwrite the files awsprac writes there, or choose another --out")
    export = build(ctx)
    for what in export.skipped:
        app.report.warn(f"not built, so not exported: {what} (`awsprac up --env {app.cfg.env}` builds it)")
    for text in export.warnings:
        app.report.warn(text)
    if as_json:
        app.report.json(export.to_json())
        return
    written = write(export, folder, force)
    imports = sum(1 for r in export.resources if r.import_id is not None)
    app.report.info(
        f"wrote {len(written)} file(s) to {folder}: {len(export.resources)} resource(s), {imports} to import. "
        f"Next: cd {folder} && terraform init && terraform plan"
    )
    for path in written:
        app.report.line(str(path))
