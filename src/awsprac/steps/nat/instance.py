"""The NAT instance: found (with the dead ones of its name), diffed (another type or subnet is drift to
report, never a replacement), launched with a client token, waited on, given its instance profile."""

from __future__ import annotations

from awsprac.engine import lookup, tags, tokens, waiting
from awsprac.engine.aws import error_code, is_not_found
from awsprac.engine.context import Context
from awsprac.engine.errors import AwspracError, UsageError
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import eventually, gone_is_fine, retag, update
from awsprac.steps.nat.security_group import find_security_group
from awsprac.steps.nat.userdata import render as render_user_data
from awsprac.steps.nat import DEAD_INSTANCE, IAM_PROPAGATION_BUDGET, INSTANCE, INSTANCE_BUDGET, InstanceSpec, NAME, NAT_INSTANCE, Observed, SG, names, primary_interface


def find_instances(ec2, name: str, vpc_id: str) -> tuple[lookup.Found | None, tuple[str, ...]]:
    """The live NAT instance, and the ids of the dead ones of its name in this VPC (a new launch's
    client token must differ from theirs): one read."""
    items = lookup.describe(ec2, NAT_INSTANCE, [{"Name": "tag:Name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}], keep_dead=True)
    live = [lookup.to_found(NAT_INSTANCE, i) for i in items if not lookup.is_dead(NAT_INSTANCE, i)]
    dead = tuple(sorted(i["InstanceId"] for i in items if lookup.is_dead(NAT_INSTANCE, i)))
    return (lookup.single(NAT_INSTANCE, name, live) if live else None), dead


def diff_instance(ctx: Context, spec: InstanceSpec, have: Observed) -> list[Change]:
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
    groups = security_groups_of(raw)
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
        ("subnet", subnet_name_of(ctx, raw.get("SubnetId")), spec.subnet),
    ) if current != wanted]
    if fixed:
        reports.append((tuple(fixed), "the type changes only while stopped, the subnet never: change it by hand, or terminate the instance and `awsprac up`"))
    changes += [Change(NAME, Action.REPORT, INSTANCE, spec.name, instance.id, f, note=note) for f, note in reports]
    return changes


def _profile_name(raw: dict) -> str | None:
    arn = (raw.get("IamInstanceProfile") or {}).get("Arn")
    return arn.rsplit("/", 1)[-1] if arn else None


def security_groups_of(raw: dict) -> list[dict]:
    # With the groups set on the network interface, read them there (Instance.SecurityGroups may be empty).
    for eni in raw.get("NetworkInterfaces", []):
        if eni.get("Attachment", {}).get("DeviceIndex", 0) == 0:
            return eni.get("Groups", [])
    return raw.get("SecurityGroups", [])


def subnet_name_of(ctx: Context, subnet_id: str | None) -> str | None:
    for name, found in ctx.observed["subnets"].subnets.items():
        if found.id == subnet_id:
            return name
    return subnet_id


def apply_instance(ctx: Context, change: Change) -> None:
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
    groups = [g["GroupId"] for g in security_groups_of(raw)]
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


def setup_state(ctx: Context, instance: lookup.Found) -> str:
    """For `status` only: whether the user data's NAT setup finished at boot, from the instance's console
    output (GetConsoleOutput, the CLI user's read; the script writes its result there). Unknown when the
    console holds no result (the sandbox, a reboot since) or cannot be read: status still shows the rest."""
    from awsprac.steps.nat.userdata import setup_result

    env = ctx.cfg.env
    try:  # AWS sends it base64-encoded; botocore decodes it (its after-call handler for GetConsoleOutput)
        output = ctx.aws.ec2.get_console_output(InstanceId=instance.id).get("Output") or ""
    except Exception as exc:
        code = error_code(exc)
        if not code:
            raise
        return f"NAT setup unknown (console output not readable: {code})"
    result = setup_result(output)
    if result is None:
        return "NAT setup unknown (no result on its console)"
    if result == "finished":
        return "NAT setup finished"
    if result == "not finished":
        return f"NAT setup not finished (started at boot, no result on its console yet): `awsprac nat verify --env {env}`"
    return (f"NAT setup {result}: it is not forwarding; its log is /var/log/cloud-init-output.log on the instance "
            f"(`aws ssm start-session --target {instance.id}`); `awsprac nat verify --env {env}` says what is missing")
