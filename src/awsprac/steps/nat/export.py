"""The NAT family's Terraform: its security group and rules, IAM role and instance profile, and the
instance (mode instance), or the Elastic IP and NAT gateway (mode gateway)."""

from __future__ import annotations

from awsprac.engine.context import Context
from awsprac.engine.terraform import Block, Expr, Exporter, Resource
from awsprac.steps.nat.instance import security_groups_of


def export_terraform(ctx: Context, out: Exporter) -> None:
    from awsprac.steps import nat

    cfg = ctx.cfg
    mode = cfg.nat.mode
    if mode == "none":
        return
    f = out.file("nat.tf", f"The NAT, mode {mode} (docs/reference.md section 3).")
    have = ctx.observed[nat.NAME]
    n = nat.names(cfg)
    if mode == "gateway":
        _gateway(out, f, have, n)
        return
    sg = out.security_group(f, "nat", have.sg, n.sg)
    iam = ctx.observed["nat-iam"]
    role = None
    if iam.role is None:
        out.missing(f"IAM role {n.profile}")
    else:
        role = out.iam_role(f, "nat", iam.role, {}, iam.policies)
    profile = None
    if iam.profile is None:
        out.missing(f"instance profile {n.profile}")
    else:
        profile = f.add(Resource("aws_iam_instance_profile", "nat", {
            "name": iam.profile.name,
            "role": role.ref("name") if role else (iam.profile.raw.get("Roles") or [{}])[0].get("RoleName"),
            "tags": out.tags(iam.profile.name),
        }, iam.profile.name))
    instance = have.instance
    resource = None
    if instance is None:
        out.missing(f"NAT instance {n.instance}")
    else:
        raw = instance.raw
        if instance.state != "running":
            # AWS shows no public IP on a stopped instance, and associate_public_ip_address forces a new one.
            out.warn(
                f"NAT instance {instance.name} is {instance.state}: start it and export again, or Terraform would "
                "read no public IP and plan to replace it"
            )
        groups = [sg.ref() if sg is not None and g["GroupId"] == sg.import_id else g["GroupId"] for g in security_groups_of(raw)]
        subnet = out.named("aws_subnet", n.subnet)
        resource = f.add(Resource("aws_instance", "nat", {
            "ami": raw["ImageId"],
            "instance_type": raw["InstanceType"],
            "subnet_id": subnet.ref() if subnet else raw["SubnetId"],
            "associate_public_ip_address": bool(raw.get("PublicIpAddress")),
            "vpc_security_group_ids": groups,
            "iam_instance_profile": profile.ref("name") if profile else None,
            "source_dest_check": raw.get("SourceDestCheck", True),
            "metadata_options": Block({"http_endpoint": "enabled", "http_tokens": (raw.get("MetadataOptions") or {}).get("HttpTokens", "required")}),
            "tags": out.tags(instance.name),
            # The AMI moves on (latest Amazon Linux 2023) and user data only ran at first boot:
            # neither may replace a running NAT.
            "lifecycle": Block({"ignore_changes": [Expr("ami"), Expr("user_data"), Expr("user_data_base64")]}),
        }, instance.id))
    address = have.addresses.get(n.instance_address)
    if ctx.cfg.nat.elastic_ip and address is not None:
        f.add(Resource("aws_eip", "nat_instance", {
            "domain": "vpc",
            "instance": resource.ref() if resource else address.raw.get("InstanceId"),
            "tags": out.tags(address.name),
        }, address.id))


def _gateway(out: Exporter, f, have, n) -> None:
    address = have.addresses.get(n.gateway_address)
    eip = None
    if address is None:
        out.missing(f"elastic IP {n.gateway_address}")
    else:
        eip = f.add(Resource("aws_eip", "nat", {"domain": "vpc", "tags": out.tags(address.name)}, address.id))
    gateway = have.gateway
    if gateway is None:
        out.missing(f"NAT gateway {n.gateway}")
        return
    first = (gateway.raw.get("NatGatewayAddresses") or [{}])[0]
    subnet = out.named("aws_subnet", n.subnet)
    f.add(Resource("aws_nat_gateway", "nat", {
        "allocation_id": eip.ref() if eip and first.get("AllocationId") == address.id else first.get("AllocationId"),
        "subnet_id": subnet.ref() if subnet else gateway.raw["SubnetId"],
        "connectivity_type": gateway.raw.get("ConnectivityType", "public"),
        "tags": out.tags(gateway.name),
    }, gateway.id))
