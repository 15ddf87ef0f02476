"""`awsprac doctor`: read-only checks for what breaks people, each finding with its exact fix.

Every check is one small function `check_x(scan) -> list[Finding]`. The generic ones are here (the
account, duplicate names, orphans, foreign resources in the VPC: they read AWS kinds, not families); a
family adds the checks of its own kind as its `doctor_checks` facet. Checks share one Scan (engine/
doctor.py) and never write anything. Unlike the steps, a check never stops at the first duplicate: it
lists them all.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from awsprac.engine import lookup, tags
from awsprac.engine.aws import translate
from awsprac.engine.doctor import EC2_KINDS, NAT_INSTANCE, Finding, Scan, label
from awsprac.engine.errors import AwspracError


class Unhealthy(AwspracError):
    """Findings already printed: only the exit code (1) is left to give."""

    def __init__(self):
        super().__init__("")


# --- the checks ---


def check_account(scan: Scan) -> list[Finding]:
    """The credentials must be the env's account (the env file's pin), or awsprac refuses to run."""
    identity = scan.ctx.identity or {}
    if not scan.pinned_account or identity.get("Account") == scan.pinned_account:
        return []
    cfg = scan.cfg
    return [Finding(
        "account", f"credentials {identity.get('Arn', '?')}",
        f"account {identity.get('Account')} is not the account {scan.pinned_account} that {cfg.path} pins env {cfg.env} to",
        f"use the env's profile: `awsprac profile check --env {cfg.env} --profile {cfg.profile_name}` "
        f"(unset AWS_PROFILE / AWS_ACCESS_KEY_ID if they point elsewhere), or correct account_id in {cfg.path}",
    )]


def check_duplicates(scan: Scan) -> list[Finding]:
    """Two live resources with one Name: the steps refuse to guess (AmbiguousResource); list them all."""
    findings = []
    for kind_name, found in scan.named.items():
        by_name: dict[str, list[lookup.Found]] = {}
        for f in found:
            by_name.setdefault(f.name, []).append(f)
        for name, matches in sorted(by_name.items()):
            if len(matches) < 2:
                continue
            # Keep the one this env owns (else the first by id); delete or rename the others.
            matches.sort(key=lambda f: (not scan.ctx.owns(f), f.id))
            keep, extra = matches[0], matches[1:]
            ids = ", ".join(f.id for f in matches)
            later = " (the checks inside the VPC run once one is left)" if kind_name == lookup.VPC.kind else ""
            fixes = "; ".join(scan.delete_command(kind_name, f.name, f.id) for f in extra)
            findings.append(Finding(
                "duplicates", f"{kind_name} {name}",
                f"{len(matches)} live {kind_name}s are named {name!r} ({ids}): every awsprac command stops on them{later}",
                f"keep {keep.id}{' (owned by this env)' if scan.ctx.owns(keep) else ''}; delete or rename the other(s): {fixes}",
            ))
    return findings


def check_orphans_ec2(scan: Scan) -> list[Finding]:
    """EC2 resources with this env's ownership tags that no step describes (an old, half-failed run)."""
    cfg, findings = scan.cfg, []
    for kind in EC2_KINDS:
        wanted = scan.desired.get(kind.kind, set())
        owned = scan.owned_instances if kind is NAT_INSTANCE else _owned(scan, kind)
        for f in owned:
            in_env_vpc = not kind.per_vpc or not scan.vpc_id or f.raw.get("VpcId") in (None, scan.vpc_id)
            if f.name in wanted and in_env_vpc:
                continue  # described by a step (when it has a twin, check_duplicates says so)
            where = "" if in_env_vpc else f" in another VPC ({f.raw.get('VpcId')})"
            findings.append(Finding(
                "orphans", label(f),
                f"tagged as env {cfg.env}'s{where} but no step of awsprac describes it: left by an old run or a rename",
                scan.delete_command(f.kind, f.name, f.id) + " (if nothing uses it)",
            ))
    return findings


def _owned(scan: Scan, kind: lookup.Kind) -> list[lookup.Found]:
    with translate("looking up", f"{kind.kind}s owned by env {scan.cfg.env}"):
        return lookup.find_owned(scan.ec2, kind, scan.cfg.project, scan.cfg.env)


def check_orphans_other(scan: Scan) -> list[Finding]:
    """Secrets, IAM roles and DB instances with this env's tags that no step describes.

    RDS snapshots (the final snapshot destroy leaves) and the baked NAT AMI carry the env's tags on
    purpose: they are kept, not orphans, and are not looked at.
    """
    cfg, findings = scan.cfg, []
    for kind, name, arn in _owned_secrets(scan) + _owned_roles(scan) + _owned_databases(scan):
        if name in scan.desired.get(kind, set()):
            continue
        findings.append(Finding(
            "orphans", f"{kind} {name}",
            f"tagged as env {cfg.env}'s but no step of awsprac describes it: left by an old run or a rename",
            scan.delete_command(kind, name, arn) + " (if nothing uses it)",
        ))
    return findings


def _owned_secrets(scan: Scan) -> list[tuple[str, str, str]]:
    sm, out = scan.ctx.aws.client("secretsmanager"), []
    with translate("listing", f"secrets of env {scan.cfg.env}"):
        pages = sm.get_paginator("list_secrets").paginate(Filters=[{"Key": "tag-key", "Values": [tags.ENV_KEY]}])
        for page in pages:
            for s in page.get("SecretList", []):
                if tags.is_owned(tags.as_dict(s.get("Tags")), scan.cfg.project, scan.cfg.env):
                    out.append(("secret", s["Name"], s["ARN"]))
    return out


def _owned_roles(scan: Scan) -> list[tuple[str, str, str]]:
    """From the account's one batched IAM read the steps make (roles with their tags), not one tags
    read per role; awsprac names every role it makes after the project."""
    from awsprac.engine import batched

    out = []
    for name in batched.iam_roles(scan.ctx):
        if not name.startswith(scan.cfg.project):
            continue
        role = batched.iam_role(scan.ctx, name)  # its tags read by name if the listing left them out
        if tags.is_owned(tags.as_dict(role.get("Tags")), scan.cfg.project, scan.cfg.env):
            out.append(("IAM role", name, role["Arn"]))
    return out


def _owned_databases(scan: Scan) -> list[tuple[str, str, str]]:
    rds, out = scan.ctx.aws.client("rds"), []
    with translate("listing", f"DB instances of env {scan.cfg.env}"):
        for page in rds.get_paginator("describe_db_instances").paginate():
            for db in page.get("DBInstances", []):
                if tags.is_owned(tags.as_dict(db.get("TagList")), scan.cfg.project, scan.cfg.env):
                    out.append(("DB instance", db["DBInstanceIdentifier"], db["DBInstanceArn"]))
    return out


# Interface types a person (or an instance launch) makes; every other type (nat_gateway, vpc_endpoint,
# lambda, network_load_balancer, ...) is made by AWS for a resource.
USER_INTERFACE_TYPES = ("interface", "efa", "efa-only")


def aws_managed(eni: dict) -> bool:
    """An interface AWS made and manages for a resource: by its requester and type, never by tags or
    description (RDS, ALB and ECS interfaces are type `interface`, requester-managed)."""
    return bool(eni.get("RequesterManaged")) or eni.get("InterfaceType", "interface") not in USER_INTERFACE_TYPES


def check_foreign_in_vpc(scan: Scan) -> list[Finding]:
    """Instances and network interfaces in the env's VPC that are not this env's: destroy cannot delete
    the subnets and the VPC while they are there (DependencyViolation)."""
    if not scan.vpc_id:
        return []
    cfg, ec2, findings = scan.cfg, scan.ec2, []
    vpc_filter = [{"Name": "vpc-id", "Values": [scan.vpc_id]}]
    with translate("looking up", f"instances and network interfaces in {cfg.vpc_name}"):
        instances = [lookup.to_found(lookup.INSTANCE, i) for i in lookup.describe(ec2, lookup.INSTANCE, vpc_filter)]
        enis = [e for page in ec2.get_paginator("describe_network_interfaces").paginate(Filters=vpc_filter)
                for e in page["NetworkInterfaces"]]
    ours = {i.id for i in instances if scan.ctx.owns(i)}
    for i in instances:
        if i.id not in ours:
            findings.append(Finding(
                "foreign in VPC", label(i),
                f"runs in {cfg.vpc_name} ({scan.vpc_id}) but is not env {cfg.env}'s: `awsprac destroy` cannot delete the subnets and the VPC while it is there",
                f"move or remove it before destroy: {scan.cli(f'aws ec2 terminate-instances --instance-ids {i.id}')} (if you do not need it)",
            ))
    for eni in enis:
        attached_to = (eni.get("Attachment") or {}).get("InstanceId")
        if attached_to:
            continue  # an instance's interface goes with its instance (reported above when foreign)
        if aws_managed(eni):
            continue  # made by AWS for a resource (NAT gateway, database, load balancer, task), and removed with it
        desc = eni.get("Description") or "no description"
        findings.append(Finding(
            "foreign in VPC", f"network interface {eni['NetworkInterfaceId']}",
            f"in {cfg.vpc_name}, made by someone else ({desc}), not attached to an instance: it blocks deleting its subnet and the VPC",
            scan.cli(f"aws ec2 delete-network-interface --network-interface-id {eni['NetworkInterfaceId']}"),
        ))
    return findings


Check = Callable[[Scan], list[Finding]]

# Run in this order; check_account first: when it fails, the others would read the wrong account.
GENERIC: tuple[Check, ...] = (
    check_account,
    check_duplicates,
    check_orphans_ec2,
    check_orphans_other,
    check_foreign_in_vpc,
)


def all_checks() -> tuple[Check, ...]:
    """The generic checks, then each family's doctor_checks in the registry's order."""
    from awsprac import steps

    return GENERIC + tuple(check for step in steps.all_steps() for check in getattr(step, "doctor_checks", ()))


def examine(ctx, pinned_account: str = "", checks: tuple[Check, ...] | None = None) -> list[Finding]:
    """Every check's findings, in order; after an account finding, nothing else is looked at."""
    checks = all_checks() if checks is None else checks
    scan = Scan(ctx, pinned_account)
    findings: list[Finding] = []
    for check in checks:
        found = check(scan)
        findings.extend(found)
        if check is check_account and found:
            break
    return findings


def run(app, as_json: bool) -> None:
    """`awsprac doctor`: print the findings; exit 1 when there is any."""
    pinned = app.cfg.account_id
    if not app.settings.sandbox:  # (the sandbox runs as the pinned account)
        # The account pin is one of the checks here: let the app connect without refusing, then report it.
        app.cfg = dataclasses.replace(app.cfg, account_id="")
    ctx = app.context(all_clients=True)
    ctx.cfg = dataclasses.replace(ctx.cfg, account_id=pinned)
    findings = examine(ctx, pinned)
    if as_json:
        app.report.json({"env": app.cfg.env, "healthy": not findings, "checks": [c.__name__.removeprefix("check_") for c in all_checks()],
                         "findings": [dataclasses.asdict(f) for f in findings]})
    else:
        show(app.report, findings, f"Doctor for {app.title}")
    if findings:
        raise Unhealthy()


def show(report, findings: list[Finding], title: str) -> None:
    if not findings:
        report.line(f"{title}: healthy, {len(all_checks())} checks found nothing wrong.")
        return
    report.line(f"{title}: {len(findings)} problem(s)")
    for f in findings:
        report.line(f"\n✗ [{f.check}] {f.resource}\n  {f.problem}\n  fix: {f.fix}")
