"""Which AMI a new NAT instance launches from: the baked one named in the env file, else the latest
Amazon Linux 2023 for the instance type's architecture (shown by `status` when newer)."""

from __future__ import annotations

from dataclasses import dataclass
import re

from awsprac.engine import lookup, tags, waiting
from awsprac.engine.aws import error_code, is_not_found
from awsprac.engine.context import Context
from awsprac.engine.reconcile import gone_is_fine
from awsprac.steps.nat import AMI, SNAPSHOT_BUDGET


AL2023_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"


@dataclass(frozen=True)
class Image:
    """The AMI a new NAT instance would launch from, or why there is none."""

    id: str | None
    source: str
    problem: str = ""


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
    # The snapshots go with the image: a DeleteSnapshot right after DeregisterImage is refused
    # (InvalidSnapshot.InUse) for a while.
    gone_is_fine(ec2.deregister_image, ImageId=image_id, DeleteAssociatedSnapshots=True)
    for snapshot in snapshots:
        # Normally already gone; one still there (an endpoint that ignores the flag) is deleted, waiting out "in use".
        waiting.retry_on(lambda e: error_code(e) == "InvalidSnapshot.InUse", lambda snapshot=snapshot: _delete_snapshot(ec2, snapshot),
                         SNAPSHOT_BUDGET, ctx.report, f"deleting snapshot {snapshot} of AMI {image_id}")


def _delete_snapshot(ec2, snapshot: str) -> None:
    try:
        ec2.delete_snapshot(SnapshotId=snapshot)
    except Exception as exc:
        if error_code(exc) != "InvalidSnapshot.NotFound":
            raise
