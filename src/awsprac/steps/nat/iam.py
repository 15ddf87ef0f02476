"""Step `nat-iam`: the NAT instance's IAM role and instance profile `{project}-nat-{env}` (docs/reference.md section 3).

A step of its own with no prerequisite, so the runner starts it at once: IAM takes seconds to
minutes to become visible to EC2, and that time overlaps building the network. In a mode other
than `instance` the role and profile are not wanted, and what this env owns of them is removed.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass

from awsprac.engine import batched, lookup, tags
from awsprac.engine.aws import error_code, is_not_found, translate
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.iamrole import delete_role
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import add_missing_tags, applying, eventually, gone_is_fine, tag_fields

NAME = "nat-iam"
REQUIRES: tuple[str, ...] = ()

ROLE = "IAM role"
PROFILE = "instance profile"
EC2_SERVICE = "ec2.amazonaws.com"
SSM_POLICY = "AmazonSSMManagedInstanceCore"  # Session Manager instead of SSH: no port 22, no key pair
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": EC2_SERVICE}, "Action": "sts:AssumeRole"}],
}


@dataclass(frozen=True)
class RoleSpec:
    name: str
    policies: tuple[str, ...]  # AWS managed policy names
    kind: str = ROLE


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    role: str
    kind: str = PROFILE


@dataclass(frozen=True)
class Observed:
    wanted: bool  # nat.mode is instance
    role: lookup.Found | None = None
    policies: tuple[str, ...] = ()  # ARNs of the managed policies attached to the role
    profile: lookup.Found | None = None

    @property
    def ready(self) -> bool:
        return not self.wanted or (self.profile is not None and self.role is not None and self.role.name in profile_roles(self.profile))

    def resources(self) -> list[lookup.Found]:
        return [f for f in (self.role, self.profile) if f is not None]

    def outputs(self) -> dict:
        return {"nat_instance_profile_arn": self.profile.id} if self.profile else {}


def role_name(cfg: EnvConfig) -> str:
    return cfg.name("{project}-nat-{env}")


def desired(cfg: EnvConfig) -> list:
    if cfg.nat.mode != "instance":
        return []
    name = role_name(cfg)
    return [RoleSpec(name, (SSM_POLICY,)), ProfileSpec(name, name)]


def policy_arn(ctx: Context, policy: str) -> str:
    partition = ctx.aws.session.get_partition_for_region(ctx.cfg.region)
    return f"arn:{partition}:iam::aws:policy/{policy}"


def observe(ctx: Context) -> Observed:
    iam, name = ctx.aws.client("iam"), role_name(ctx.cfg)
    wanted = ctx.cfg.nat.mode == "instance"
    # The role as the account's one batched IAM read describes it (shared with step scheduler):
    # trust policy, tags, attached policies and the instance profiles that hold it.
    role = batched.iam_role(ctx, name)
    policies = tuple(p["PolicyArn"] for p in role.get("AttachedManagedPolicies", [])) if role else ()
    profile = next((p for p in (role or {}).get("InstanceProfileList", []) if p["InstanceProfileName"] == name), None)
    if profile is None or "Tags" not in profile:
        # Asked for by name: a profile that does not hold the role (a run stopped between creating it and
        # adding the role), or whose tags that read left out.
        with translate("looking up", f"instance profile {name}"):
            profile = _get(iam.get_instance_profile, "InstanceProfile", InstanceProfileName=name)
    return Observed(
        wanted,
        _found(ROLE, role, "RoleName") if role else None,
        policies,
        _found(PROFILE, profile, "InstanceProfileName") if profile else None,
    )


def _get(call, key: str, **kwargs) -> dict | None:
    try:
        return call(**kwargs)[key]
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def _found(kind: str, item: dict, name_field: str) -> lookup.Found:
    return lookup.Found(kind, item[name_field], item["Arn"], "", tags.as_dict(item.get("Tags")), item)


def profile_roles(profile: lookup.Found) -> list[str]:
    return [r["RoleName"] for r in profile.raw.get("Roles", [])]


def trusts_ec2(role: lookup.Found) -> bool:
    document = role.raw.get("AssumeRolePolicyDocument") or {}
    if isinstance(document, str):  # some SDK paths leave it URL-encoded JSON
        document = json.loads(urllib.parse.unquote(document))
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        services = (statement.get("Principal") or {}).get("Service", []) if isinstance(statement.get("Principal"), dict) else []
        if statement.get("Effect") == "Allow" and "sts:AssumeRole" in _listed(actions) and EC2_SERVICE in _listed(services):
            return True
    return False


def _listed(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def diff(ctx: Context, want: list, have: Observed) -> list[Change]:
    if not want:
        # Another NAT mode: the step nat removes this env's role and profile, once the instance using them is gone.
        return []
    role_spec, profile_spec = want
    changes = []
    if have.role is None:
        fields = (FieldDiff("trusted entity", None, EC2_SERVICE), FieldDiff("managed policies", None, ", ".join(role_spec.policies)))
        changes.append(Change(NAME, Action.CREATE, ROLE, role_spec.name, fields=fields, spec=role_spec))
    else:
        fields = tag_fields(ctx, have.role)
        if not trusts_ec2(have.role):
            fields.append(FieldDiff("trusted entity", "(not EC2)", EC2_SERVICE))
        missing = [p for p in role_spec.policies if policy_arn(ctx, p) not in have.policies]
        if missing:
            current = [a.rsplit("/", 1)[-1] for a in have.policies]
            fields.append(FieldDiff("managed policies", ", ".join(current) or None, ", ".join(current + missing)))
        changes += _update(ctx, have.role, fields, role_spec)
    if have.profile is None:
        changes.append(Change(NAME, Action.CREATE, PROFILE, profile_spec.name, fields=(FieldDiff("role", None, profile_spec.role),), spec=profile_spec))
    else:
        fields = tag_fields(ctx, have.profile)
        roles = profile_roles(have.profile)
        if roles != [profile_spec.role]:
            fields.append(FieldDiff("role", ", ".join(roles) or None, profile_spec.role))
        changes += _update(ctx, have.profile, fields, profile_spec)
    return changes


def _update(ctx: Context, found: lookup.Found, fields: list[FieldDiff], spec) -> list[Change]:
    if not fields:
        return []
    action = Action.UPDATE if ctx.owns(found) else Action.ADOPT
    return [Change(NAME, action, found.kind, found.name, found.id, tuple(fields), spec=spec)]


def apply(ctx: Context, change: Change) -> None:
    iam = ctx.aws.client("iam")
    with applying(change):
        if change.action is Action.DELETE:
            (_delete_profile if change.kind == PROFILE else delete_role)(iam, change.name)
        elif change.kind == ROLE:
            _ensure_role(ctx, iam, change)
        else:
            _ensure_profile(ctx, iam, change)


def _ensure_role(ctx: Context, iam, change: Change) -> None:
    name, have = change.name, ctx.observed[NAME]
    role = have.role if change.action is not Action.CREATE else None
    if role is None:
        try:
            iam.create_role(
                RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                Description=f"NAT instance of {ctx.cfg.project} {ctx.cfg.env}: Session Manager, no SSH (awsprac)",
                Tags=tags.as_list(ctx.tags(name)),
            )
        except Exception as exc:
            if error_code(exc) != "EntityAlreadyExists":  # made by a run that crashed before it saw the answer
                raise
            _retag(ctx, iam, ROLE, name, tags.as_dict(iam.get_role(RoleName=name)["Role"].get("Tags")))
        attached: tuple[str, ...] = ()
    else:
        _retag(ctx, iam, ROLE, name, role.tags)
        if not trusts_ec2(role):
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(TRUST_POLICY))
        attached = have.policies
    for policy in change.spec.policies:
        arn = policy_arn(ctx, policy)
        if arn not in attached:
            eventually(ctx, f"IAM role {name}", iam.attach_role_policy, RoleName=name, PolicyArn=arn)


def _ensure_profile(ctx: Context, iam, change: Change) -> None:
    name, role = change.name, change.spec.role
    have = ctx.observed[NAME]
    roles: list[str] = []
    if change.action is Action.CREATE:
        try:
            iam.create_instance_profile(InstanceProfileName=name, Tags=tags.as_list(ctx.tags(name)))
        except Exception as exc:
            if error_code(exc) != "EntityAlreadyExists":
                raise
            existing = _found(PROFILE, iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"], "InstanceProfileName")
            _retag(ctx, iam, PROFILE, name, existing.tags)
            roles = profile_roles(existing)
    else:
        _retag(ctx, iam, PROFILE, name, have.profile.tags)
        roles = profile_roles(have.profile)
    for other in roles:
        if other != role:  # a profile holds one role: AWS refuses a second with LimitExceeded
            gone_is_fine(iam.remove_role_from_instance_profile, InstanceProfileName=name, RoleName=other)
    if role not in roles:
        eventually(ctx, f"instance profile {name}", iam.add_role_to_instance_profile, InstanceProfileName=name, RoleName=role)


def _retag(ctx: Context, iam, kind: str, name: str, have: dict) -> None:
    if kind == ROLE:
        add_missing_tags(ctx, have, name, lambda tag_list: iam.tag_role(RoleName=name, Tags=tag_list))
    else:
        add_missing_tags(ctx, have, name, lambda tag_list: iam.tag_instance_profile(InstanceProfileName=name, Tags=tag_list))


def _delete_profile(iam, name: str) -> None:
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except Exception as exc:
        if is_not_found(exc):
            return
        raise
    for role in profile.get("Roles", []):
        gone_is_fine(iam.remove_role_from_instance_profile, InstanceProfileName=name, RoleName=role["RoleName"])
    gone_is_fine(iam.delete_instance_profile, InstanceProfileName=name)


def teardown(ctx: Context, have: Observed) -> list[Change]:
    """Profile before role: the role cannot go while a profile holds it."""
    changes = []
    for found in (have.profile, have.role):
        if found is None:
            continue
        if ctx.owns(found):
            changes.append(Change(NAME, Action.DELETE, found.kind, found.name, found.id))
        else:
            note = f"left alone: not tagged {tags.ENV_KEY}={ctx.cfg.env}, so not this env's to delete"
            changes.append(Change(NAME, Action.REPORT, found.kind, found.name, found.id, note=note))
    return changes
