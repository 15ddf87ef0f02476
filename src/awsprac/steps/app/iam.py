"""Step `app-iam`: the ECS service-linked role, the task execution role `ecs-task-execution-{env}` with
its customer-managed policy `secrets-manager-read-{env}`, and the task role `{project}-backend-{env}`.

Everything is read from the account's one batched IAM read (shared with the other steps). The
service-linked role is the account's, not this env's: it is made when missing, never deleted.
The secrets policy allows reading only this env's DB secrets (the guide allows `*`).
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass

from awsprac.engine import batched, tags
from awsprac.engine.aws import error_code, translate
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import add_missing_tags, applying, delete_change, eventually, gone_is_fine, update
from awsprac.steps.app.common import names
from awsprac.engine.iamrole import delete_role

NAME = "app-iam"
REQUIRES: tuple[str, ...] = ()
# The execution role is given the secrets policy: the policy first (deletes: the role first).
CHANGES_AFTER = {"IAM role": ("IAM policy",), "service-linked role": ()}

ROLE, POLICY, SLR = "IAM role", "IAM policy", "service-linked role"
ECS_SERVICE = "ecs.amazonaws.com"
TASKS_SERVICE = "ecs-tasks.amazonaws.com"
SLR_NAME = "AWSServiceRoleForECS"  # moto names it AWSServiceRoleForecs: compared without case
# AWS managed policies and their paths.
MANAGED = {
    "AmazonECSTaskExecutionRolePolicy": "service-role/",
    "AmazonS3ReadOnlyAccess": "",
    "AmazonSSMManagedInstanceCore": "",  # ECS Exec: ssmmessages:*Channel
    "CloudWatchLogsFullAccess": "",
}
SECRET_ACTIONS = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]


@dataclass(frozen=True)
class RoleSpec:
    name: str
    managed: tuple[str, ...]  # AWS managed policy names
    own_policy: str = ""  # this env's customer-managed policy attached too
    description: str = ""
    kind: str = ROLE


@dataclass(frozen=True)
class PolicySpec:
    name: str
    kind: str = POLICY


@dataclass(frozen=True)
class SlrSpec:
    name: str = SLR_NAME
    kind: str = SLR


@dataclass(frozen=True)
class Observed:
    wanted: bool
    slr: Found | None = None
    roles: tuple[tuple[str, Found], ...] = ()  # (name, role) for the roles that exist
    policy: Found | None = None
    account: str = ""

    @property
    def ready(self) -> bool:
        return not self.wanted or (self.slr is not None and len(self.roles) == 2)

    def role(self, name: str) -> Found | None:
        return dict(self.roles).get(name)

    def resources(self) -> list[Found]:
        return [f for f in (self.slr, *dict(self.roles).values(), self.policy) if f is not None]

    def outputs(self) -> dict:
        return {f"{name.replace('-', '_')}_role_arn": f.raw.get("Arn") for name, f in self.roles} if self.wanted else {}


def desired(cfg: EnvConfig) -> list:
    if not cfg.app.enabled:
        return []
    n = names(cfg)
    return [
        SlrSpec(),
        PolicySpec(n.secrets_policy),
        RoleSpec(n.execution_role, ("AmazonECSTaskExecutionRolePolicy", "AmazonS3ReadOnlyAccess"), n.secrets_policy,
                 f"ECS task execution role of {cfg.env}: pulls the image, reads the DB secret, writes logs (awsprac)"),
        RoleSpec(n.backend, ("AmazonSSMManagedInstanceCore", "CloudWatchLogsFullAccess"), "",
                 f"Task role of {cfg.project}-backend-{cfg.env}: ECS Exec, logs (awsprac)"),
    ]


def policy_document(cfg: EnvConfig, account: str) -> dict:
    prefix = f"arn:aws:secretsmanager:{cfg.region}:{account}:secret:"
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": SECRET_ACTIONS,
        "Resource": [f"{prefix}{cfg.name('rds-main-{env}')}-*", f"{prefix}{cfg.name('rds-master-{env}')}-*"],
    }]}


def trust_document() -> dict:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": TASKS_SERVICE}, "Action": "sts:AssumeRole"}]}


def managed_arn(policy: str) -> str:
    return f"arn:aws:iam::aws:policy/{MANAGED[policy]}{policy}"


def own_arn(account: str, policy: str) -> str:
    return f"arn:aws:iam::{account}:policy/{policy}"


def account_of(ctx: Context) -> str:
    if not ctx.identity:
        with translate("checking", "the caller identity (sts get-caller-identity)"):
            who = ctx.aws.client("sts").get_caller_identity()
        ctx.identity = {"Account": who["Account"], "Arn": who["Arn"]}
    return ctx.identity["Account"]


def observe(ctx: Context) -> Observed:
    if not ctx.cfg.app.enabled:
        return Observed(False)
    want = desired(ctx.cfg)
    account = account_of(ctx)
    everything = batched.iam_roles(ctx)
    slr = next((r for n, r in everything.items() if n.lower() == SLR_NAME.lower()), None)
    roles = []
    for spec in want[2:]:
        role = batched.iam_role(ctx, spec.name)
        if role is not None:
            roles.append((spec.name, Found(ROLE, spec.name, role["Arn"], "", tags.as_dict(role.get("Tags")), role)))
    execution = dict(roles).get(want[2].name)
    policy = _policy(ctx, want[1].name, account, execution)
    return Observed(True, Found(SLR, SLR_NAME, slr["Arn"], "", {}, slr) if slr else None, tuple(roles), policy, account)


# A policy this env's execution role holds is this env's: made, or adopted, before the role was given it.
# Its tags are then not read (one read less for every look); a destroy reads them before deleting it.
INFERRED = "awsprac:from-role"


def _policy(ctx: Context, name: str, account: str, execution: Found | None = None) -> Found | None:
    detail = batched.iam_policies(ctx).get(name)
    if detail is None:
        return None
    attached = [p["PolicyArn"] for p in (execution.raw.get("AttachedManagedPolicies", []) if execution else [])]
    if execution is not None and ctx.owns(execution) and detail["Arn"] in attached:
        return Found(POLICY, name, detail["Arn"], "", ctx.tags(name), {**detail, INFERRED: True})
    return _read_policy(ctx, name, detail)


def _read_policy(ctx: Context, name: str, detail: dict) -> Found:
    iam = ctx.aws.client("iam")
    with translate("looking up", f"IAM policy {name}"):
        # The batched read gives every version's document but not the tags: whose it is, read by ARN.
        policy_tags = iam.list_policy_tags(PolicyArn=detail["Arn"]).get("Tags", [])
    return Found(POLICY, name, detail["Arn"], "", tags.as_dict(policy_tags), detail)


def _document(value) -> dict:
    if isinstance(value, str):  # some SDK paths leave it URL-encoded JSON
        value = json.loads(urllib.parse.unquote(value))
    return value or {}


def default_document(policy: Found) -> dict:
    version = next((v for v in policy.raw.get("PolicyVersionList", []) if v.get("IsDefaultVersion")), {})
    return _document(version.get("Document"))


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value or [])


def _normal(document: dict) -> list:
    """A policy compared by meaning: statements with their lists sorted, whatever order AWS keeps."""
    out = []
    for s in _as_list(document.get("Statement")) if not isinstance(document.get("Statement"), dict) else [document["Statement"]]:
        principal = s.get("Principal") or {}
        out.append((s.get("Effect"), tuple(sorted(_as_list(s.get("Action")))), tuple(sorted(_as_list(s.get("Resource")))),
                    tuple(sorted(_as_list(principal.get("Service") if isinstance(principal, dict) else principal)))))
    return sorted(out)


def diff(ctx: Context, want: list, have: Observed) -> list[Change]:
    if not want:
        return []
    slr_spec, policy_spec, *role_specs = want
    changes: list[Change] = []
    if have.slr is None:
        changes.append(Change(NAME, Action.CREATE, SLR, slr_spec.name, fields=(FieldDiff("service", None, ECS_SERVICE),), spec=slr_spec,
                              note="once per account: ECS cannot create a cluster or service without it"))
    document = policy_document(ctx.cfg, have.account)
    if have.policy is None:
        changes.append(Change(NAME, Action.CREATE, POLICY, policy_spec.name, spec=policy_spec, fields=(
            FieldDiff("allows", None, ", ".join(SECRET_ACTIONS)), FieldDiff("on", None, ", ".join(document["Statement"][0]["Resource"])))))
    else:
        fields = []
        if _normal(default_document(have.policy)) != _normal(document):
            fields.append(FieldDiff("document", json.dumps(default_document(have.policy)), json.dumps(document)))
        changes += update(ctx, NAME, have.policy, fields, policy_spec)
    for spec in role_specs:
        changes += _role_changes(ctx, spec, have.role(spec.name), have.account)
    return changes


def _wanted_arns(spec: RoleSpec, account: str) -> list[str]:
    return [managed_arn(p) for p in spec.managed] + ([own_arn(account, spec.own_policy)] if spec.own_policy else [])


def _role_changes(ctx: Context, spec: RoleSpec, role: Found | None, account: str) -> list[Change]:
    wanted = _wanted_arns(spec, account)
    if role is None:
        return [Change(NAME, Action.CREATE, ROLE, spec.name, spec=spec, fields=(
            FieldDiff("trusted entity", None, TASKS_SERVICE), FieldDiff("policies", None, ", ".join(a.rsplit("/", 1)[-1] for a in wanted))))]
    fields = []
    if _normal(_document(role.raw.get("AssumeRolePolicyDocument"))) != _normal(trust_document()):
        fields.append(FieldDiff("trusted entity", "(not only ECS tasks)", TASKS_SERVICE))
    attached = [p["PolicyArn"] for p in role.raw.get("AttachedManagedPolicies", [])]
    missing = [a for a in wanted if a not in attached]
    if missing:
        short = [a.rsplit("/", 1)[-1] for a in attached]
        fields.append(FieldDiff("policies", ", ".join(short) or None, ", ".join(short + [a.rsplit("/", 1)[-1] for a in missing])))
    return update(ctx, NAME, role, fields, spec)


def apply(ctx: Context, change: Change) -> None:
    iam = ctx.aws.client("iam")
    with applying(change):
        if change.action is Action.DELETE:
            if change.kind == POLICY:
                _delete_policy(iam, change.id)
            else:
                delete_role(iam, change.name)
        elif change.kind == SLR:
            ensure_service_linked_role(ctx)
        elif change.kind == POLICY:
            _ensure_policy(ctx, iam, change)
        else:
            _ensure_role(ctx, iam, change)


def ensure_service_linked_role(ctx: Context) -> None:
    """CreateServiceLinkedRole for ECS; a role that is there already (taken) is what was wanted."""
    try:
        ctx.aws.client("iam").create_service_linked_role(AWSServiceName=ECS_SERVICE)
    except Exception as exc:
        code = error_code(exc)
        message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", ""))
        if not (code == "EntityAlreadyExists" or (code == "InvalidInput" and "taken" in message)):
            raise


def _ensure_policy(ctx: Context, iam, change: Change) -> None:
    have = ctx.observed[NAME]
    document = json.dumps(policy_document(ctx.cfg, have.account))
    if change.action is Action.CREATE:
        try:
            iam.create_policy(PolicyName=change.name, PolicyDocument=document, Tags=tags.as_list(ctx.tags(change.name)),
                              Description=f"Read this env's DB secrets only ({ctx.cfg.env}, awsprac)")
        except Exception as exc:
            if error_code(exc) != "EntityAlreadyExists":  # made by a run that crashed before it saw the answer
                raise
            arn = own_arn(have.account, change.name)
            _tag_policy(ctx, iam, arn, change.name, tags.as_dict(iam.list_policy_tags(PolicyArn=arn).get("Tags")))
            _new_version(iam, arn, document)
        return
    policy = have.policy
    _tag_policy(ctx, iam, policy.id, change.name, policy.tags)
    if any(f.field == "document" for f in change.fields):
        _new_version(iam, policy.id, document)


def _tag_policy(ctx: Context, iam, arn: str, name: str, have: dict) -> None:
    add_missing_tags(ctx, have, name, lambda tag_list: iam.tag_policy(PolicyArn=arn, Tags=tag_list))


def _tag_role(ctx: Context, iam, name: str, have: dict) -> None:
    add_missing_tags(ctx, have, name, lambda tag_list: iam.tag_role(RoleName=name, Tags=tag_list))


def _new_version(iam, arn: str, document: str) -> None:
    """A policy keeps at most 5 versions: the oldest non-default one goes first when it is full."""
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    if any(not v["IsDefaultVersion"] for v in versions) and len(versions) >= 5:
        oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
        iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=document, SetAsDefault=True)


def _ensure_role(ctx: Context, iam, change: Change) -> None:
    spec, have = change.spec, ctx.observed[NAME]
    role = have.role(spec.name) if change.action is not Action.CREATE else None
    attached: list[str] = []
    if role is None:
        try:
            iam.create_role(RoleName=spec.name, AssumeRolePolicyDocument=json.dumps(trust_document()),
                            Description=spec.description, Tags=tags.as_list(ctx.tags(spec.name)))
        except Exception as exc:
            if error_code(exc) != "EntityAlreadyExists":
                raise
            _tag_role(ctx, iam, spec.name, tags.as_dict(iam.get_role(RoleName=spec.name)["Role"].get("Tags")))
    else:
        _tag_role(ctx, iam, spec.name, role.tags)
        if any(f.field == "trusted entity" for f in change.fields):
            iam.update_assume_role_policy(RoleName=spec.name, PolicyDocument=json.dumps(trust_document()))
        attached = [p["PolicyArn"] for p in role.raw.get("AttachedManagedPolicies", [])]
    for arn in _wanted_arns(spec, have.account):
        if arn not in attached:
            eventually(ctx, f"IAM role {spec.name}", iam.attach_role_policy, RoleName=spec.name, PolicyArn=arn)


def _delete_policy(iam, arn: str) -> None:
    """Detached from every role, its other versions deleted, then the policy."""
    try:
        entities = iam.list_entities_for_policy(PolicyArn=arn)
        versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    except Exception as exc:
        if error_code(exc) == "NoSuchEntity":
            return
        raise
    for role in entities.get("PolicyRoles", []):
        gone_is_fine(iam.detach_role_policy, RoleName=role["RoleName"], PolicyArn=arn)
    for version in versions:
        if not version["IsDefaultVersion"]:
            gone_is_fine(iam.delete_policy_version, PolicyArn=arn, VersionId=version["VersionId"])
    gone_is_fine(iam.delete_policy, PolicyArn=arn)


def teardown(ctx: Context, have: Observed) -> list[Change]:
    """The policy, then the roles. `destroy` goes by CHANGES_AFTER (the roles first, then the policy no
    role holds); step app-off carries them out in this order (the policy detached first), so the roles go
    last and a removal stopped on the way leaves what its next look notices the tier by. The account's
    service-linked role stays: other envs' services use it."""
    policy = have.policy
    if policy is not None and policy.raw.get(INFERRED):
        policy = _read_policy(ctx, policy.name, policy.raw)  # whose it is decides the delete: read, not inferred
    changes = delete_change(NAME, policy, ctx)
    for _, role in have.roles:
        changes += delete_change(NAME, role, ctx)
    return changes
