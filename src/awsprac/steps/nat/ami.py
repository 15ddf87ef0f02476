"""`awsprac nat bake-ami`: the AMI `{project}-nat-instance`, baked from the env's configured NAT instance.

On demand, not part of `up`: prd launches its NAT from it (`ami = "{project}-nat-instance"` and
`ami_owner` in envs/prd.toml). AMI names are unique per account and region, and CreateImage with a
taken name fails on AWS (and makes a second image on moto): an existing one is reused, never
duplicated. Image and snapshots are tagged in the create call; shared with another account on request.
"""

from __future__ import annotations

from awsprac.engine import lookup, tags, waiting
from awsprac.engine.aws import error_code, is_not_found, translate
from awsprac.engine.errors import AwspracError, UsageError
from awsprac.steps.nat.launch_image import find_baked_ami

ROOT_SIZE_GIB = 8
ROOT_TYPE = "gp3"
IMAGE_BUDGET = 3600.0  # AWS's own waiter gives 10 minutes; images of busy volumes take longer
BROKEN = ("failed", "error", "invalid")


def bake(app, share_with: str = "", no_reboot: bool = False) -> None:
    from awsprac.engine import runner
    from awsprac.steps import nat

    ctx = app.context()
    cfg, ec2, report = ctx.cfg, ctx.aws.ec2, ctx.report
    runner.observe_all(ctx, [nat])
    have = ctx.observed[nat.NAME]
    n = nat.names(cfg)
    image = find_baked_ami(ec2, n.ami)
    if image is not None and image.state in BROKEN:
        raise UsageError(
            f"AMI {n.ami} ({image.id}) is {image.state}: deregister it (EC2 console, or "
            f"`awsprac destroy --env {cfg.env} --include-ami`), then bake again"
        )
    if image is None:
        instance = have.instance
        if instance is None:
            raise UsageError(
                f"env {cfg.env} has no NAT instance {n.instance} to bake from: "
                f"`awsprac up --env {cfg.env}` builds it (with nat.mode = \"instance\")"
            )
        if instance.state not in ("running", "stopped"):
            raise UsageError(f"NAT instance {n.instance} ({instance.id}) is {instance.state}: bake it once it is running or stopped")
        if not no_reboot and instance.state == "running":
            app.confirm(f"Baking reboots NAT instance {n.instance} ({instance.id}): the private subnets lose "
                          "internet access for a minute or two (--no-reboot avoids it). Continue?")
        image_id = _create(ctx, instance, n.ami, no_reboot)
        report.info(f"baking AMI {n.ami} ({image_id}) from {n.instance} ({instance.id})")
    else:
        image_id = image.id
        report.info(f"AMI {n.ami} ({image_id}) exists already: reused, not baked again")
    described = wait_available(ctx, n.ami, image_id)
    snapshots = [m["Ebs"]["SnapshotId"] for m in described.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")]
    with translate("tagging", f"AMI {n.ami} ({image_id}) and its snapshots"):
        _ensure_tags(ctx, n.ami, image_id, snapshots)
    shared: list[str] = sorted(p["UserId"] for p in ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission").get("LaunchPermissions", []) if p.get("UserId"))
    if share_with:
        with translate("sharing", f"AMI {n.ami} ({image_id}) with account {share_with}"):
            _share(ctx, image_id, snapshots, share_with)
        shared = sorted(set(shared) | {share_with})
    report.key_values({
        "ami_id": image_id, "name": n.ami, "state": described.get("State", ""),
        "snapshots": ", ".join(snapshots) or "-", "shared_with": ", ".join(shared) or "-",
    }, f"NAT AMI of {app.title}")
    owner = described.get("OwnerId", "")
    report.info(f"to launch other envs' NAT from it, in their env file under [nat]: ami = \"{{project}}-nat-instance\", ami_owner = \"{owner}\"")


def _create(ctx, instance: lookup.Found, name: str, no_reboot: bool) -> str:
    ec2, cfg = ctx.aws.ec2, ctx.cfg
    root = instance.raw.get("RootDeviceName") or "/dev/xvda"
    with translate("creating", f"AMI {name} from instance {instance.id}"):
        try:
            return ec2.create_image(
                InstanceId=instance.id, Name=name, NoReboot=no_reboot,
                Description=f"NAT instance of {cfg.project} (IP forwarding + masquerade), baked by awsprac from env {cfg.env}",
                BlockDeviceMappings=[{"DeviceName": root, "Ebs": {"VolumeSize": ROOT_SIZE_GIB, "VolumeType": ROOT_TYPE, "DeleteOnTermination": True}}],
                TagSpecifications=[*tags.specification("image", ctx.tags(name)), *tags.specification("snapshot", ctx.tags(name))],
            )["ImageId"]
        except Exception as exc:
            if error_code(exc) != "InvalidAMIName.Duplicate":  # made meanwhile (another run, a crash before the answer)
                raise
            from awsprac.steps.nat import find_baked_ami

            existing = find_baked_ami(ec2, name)
            if existing is None:
                raise
            return existing.id


def wait_available(ctx, name: str, image_id: str) -> dict:
    ec2 = ctx.aws.ec2
    latest: dict = {}

    def check() -> tuple[bool, str]:
        nonlocal latest
        try:
            images = ec2.describe_images(ImageIds=[image_id])["Images"]
        except Exception as exc:
            if is_not_found(exc):  # just created, not yet visible
                return False, "not visible yet"
            raise
        if not images:
            return False, "not visible yet"
        latest = images[0]
        state = latest.get("State", "")
        if state in BROKEN:
            reason = (latest.get("StateReason") or {}).get("Message", "")
            raise AwspracError(f"AMI {name} ({image_id}) is {state}{': ' + reason if reason else ''}; deregister it, then bake again")
        return state == "available", state

    with translate("waiting for", f"AMI {name} ({image_id})"):
        waiting.wait_for(ctx.report, f"AMI {name} ({image_id}) becoming available", check, IMAGE_BUDGET, interval=15)
    return latest


def _ensure_tags(ctx, name: str, image_id: str, snapshots: list[str]) -> None:
    """A reused image (made by hand, or by a version that did not tag) gets the tags the create call gives."""
    ec2, want = ctx.aws.ec2, ctx.tags(name)
    image_tags = tags.as_dict(ec2.describe_images(ImageIds=[image_id])["Images"][0].get("Tags"))
    untagged = [image_id] if tags.missing(image_tags, want) else []
    if snapshots:
        for snapshot in ec2.describe_snapshots(SnapshotIds=snapshots)["Snapshots"]:
            if tags.missing(tags.as_dict(snapshot.get("Tags")), want):
                untagged.append(snapshot["SnapshotId"])
    if untagged:
        ec2.create_tags(Resources=untagged, Tags=tags.as_list(want))


def _share(ctx, image_id: str, snapshots: list[str], account: str) -> None:
    ec2, report = ctx.aws.ec2, ctx.report
    permissions = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission").get("LaunchPermissions", [])
    if {"UserId": account} not in [{"UserId": p.get("UserId")} for p in permissions]:
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": account}]})
    for snapshot in snapshots:
        allowed = ec2.describe_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission").get("CreateVolumePermissions", [])
        if account not in [p.get("UserId") for p in allowed]:
            ec2.modify_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission", OperationType="add", UserIds=[account])
    encrypted = [s["SnapshotId"] for s in ec2.describe_snapshots(SnapshotIds=snapshots)["Snapshots"] if s.get("Encrypted")] if snapshots else []
    if encrypted:
        report.warn(
            f"snapshot(s) {', '.join(encrypted)} are encrypted: account {account} can launch from the AMI only if "
            "the KMS key is shared with it too (the default aws/ebs key cannot be shared)"
        )
