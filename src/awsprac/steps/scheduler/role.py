"""The scheduler's IAM role: trusted by EventBridge Scheduler, allowed to start and stop this env's DB
instance only (its ARN known from the account, region and name), and waited on until assumable."""

from __future__ import annotations

from typing import Any
import json

from awsprac.engine import batched, tags
from awsprac.engine.aws import error_code, translate
from awsprac.engine.context import Context
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import add_missing_tags, gone_is_fine, update
from awsprac.steps.scheduler import ACTIONS, NAME, Observed, POLICY_NAME, PRINCIPAL, RoleSpec, desired


def trust_policy(account: str | None) -> dict:
    statement: dict = {"Effect": "Allow", "Principal": {"Service": PRINCIPAL}, "Action": "sts:AssumeRole"}
    if account:
        # Only schedules of this account may use the role (the confused-deputy guard AWS recommends).
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def permissions(db_arn: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": list(ACTIONS), "Resource": db_arn}]}


def canonical(doc: Any) -> str:
    """A policy document in one spelling: a string or a one-item list, in any order, compare equal."""
    if isinstance(doc, str):
        doc = json.loads(doc)

    def norm(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: norm(v, k) for k, v in value.items()}
        if isinstance(value, list):
            items = [norm(v) for v in value]
            return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
        # Single values may come back as one-item lists: Action, Resource, principals, condition values ("aws:...").
        if isinstance(value, str) and (key in ("Action", "NotAction", "Resource", "NotResource", "Service", "AWS") or ":" in key):
            return [value]
        return value

    doc = dict(doc)
    if isinstance(doc.get("Statement"), dict):
        doc["Statement"] = [doc["Statement"]]
    return json.dumps(norm(doc), sort_keys=True)


def _db(ctx: Context) -> dict | None:
    rds = ctx.observed.get("rds")
    return rds.db.raw if rds is not None and rds.db is not None else None


def _arn_of_db_in(ctx: Context, arn: str) -> str:
    """The instance's ARN in the partition and account of another ARN (the caller's, the role's)."""
    _, partition, _, _, account, _ = arn.split(":", 5)
    return f"arn:{partition}:rds:{ctx.cfg.region}:{account}:db:{ctx.cfg.name('{project}-{env}')}"


def db_arn_of(ctx: Context, role: Found | None) -> str | None:
    """The instance's ARN, for comparing: built from the caller's identity, else as AWS gives it when it
    exists, else in the role's account."""
    if ctx.identity:
        return _arn_of_db_in(ctx, ctx.identity["Arn"])
    db = _db(ctx)
    if db is not None:
        return db["DBInstanceArn"]
    if role is not None:
        return _arn_of_db_in(ctx, role.raw["Arn"])
    return None


def _account(arn: str | None) -> str | None:
    return arn.split(":")[4] if arn else None


def observe_role(ctx: Context, role_spec) -> tuple:
    # From the account's one batched IAM read (shared with step nat-iam): the role with its policies.
    raw = batched.iam_role(ctx, role_spec.name)
    if raw is None:
        return None, {}, ()
    role = Found(role_spec.kind, role_spec.name, raw["RoleName"], "exists", tags.as_dict(raw.get("Tags")), raw)
    inline = {p["PolicyName"]: p["PolicyDocument"] for p in raw.get("RolePolicyList", [])}
    attached = tuple(p["PolicyArn"] for p in raw.get("AttachedManagedPolicies", []))
    return role, inline, attached


def role_changes(ctx: Context, spec: RoleSpec, have: Observed) -> list[Change]:
    if have.role is None:
        fields = (
            FieldDiff("trusted by", None, PRINCIPAL),
            FieldDiff("allowed", None, f"{', '.join(ACTIONS)} on DB instance {spec.db_id} only"),
        )
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=fields, spec=spec)]
    role = have.role
    db_arn = db_arn_of(ctx, role)
    fields = []
    if canonical(role.raw.get("AssumeRolePolicyDocument") or {}) != canonical(trust_policy(_account(db_arn))):
        fields.append(FieldDiff("trust policy", _principals(role.raw.get("AssumeRolePolicyDocument")), f"{PRINCIPAL} (this account only)"))
    current = have.inline.get(POLICY_NAME)
    if current is None or canonical(current) != canonical(permissions(db_arn)):
        fields.append(FieldDiff(f"policy {POLICY_NAME}", "(missing)" if current is None else "(different)", f"{', '.join(ACTIONS)} on {db_arn}"))
    extra = sorted(n for n in have.inline if n != POLICY_NAME) + sorted(have.attached)
    if extra:
        fields.append(FieldDiff("other policies", ", ".join(extra), "(none: only start/stop of this DB)"))
    return update(ctx, NAME, role, fields, spec)


def _principals(doc: Any) -> str:
    try:
        return ", ".join(sorted({s for st in json.loads(canonical(doc))["Statement"] for s in st.get("Principal", {}).get("Service", [])})) or "(none)"
    except (ValueError, KeyError, TypeError, AttributeError):
        return "(unreadable)"


def scheduler_role_arn(ctx: Context) -> str:
    """The role's ARN: as observed, or (made moments ago in this run, not yet readable everywhere:
    IAM is eventually consistent) what AWS names a role at path / in the instance's account."""
    role = ctx.observed[NAME].role
    if role is not None:
        return role.raw["Arn"]
    _, partition, _, _, account, _ = require_db_arn(ctx).split(":", 5)
    return f"arn:{partition}:iam::{account}:role/{desired(ctx.cfg)[0].name}"


def require_db_arn(ctx: Context) -> str:
    """The instance's ARN, whether or not it exists yet (the caller's account is asked once if not known)."""
    arn = db_arn_of(ctx, ctx.observed[NAME].role)
    if arn is None:
        with translate("checking", "the caller identity (sts get-caller-identity)"):
            who = ctx.aws.client("sts").get_caller_identity()
        ctx.identity = {"Account": who["Account"], "Arn": who["Arn"]}
        arn = _arn_of_db_in(ctx, who["Arn"])
    return arn


def apply_role(ctx: Context, change: Change) -> None:
    iam, spec = ctx.aws.client("iam"), change.spec
    db_arn = require_db_arn(ctx)
    trust = json.dumps(trust_policy(_account(db_arn)))
    policy = json.dumps(permissions(db_arn))
    if change.action is Action.CREATE:
        iam.create_role(
            RoleName=spec.name, AssumeRolePolicyDocument=trust, Tags=tags.as_list(ctx.tags(spec.name)),
            Description=f"EventBridge Scheduler: start and stop RDS instance {spec.db_id}; managed by awsprac",
        )
        iam.put_role_policy(RoleName=spec.name, PolicyName=POLICY_NAME, PolicyDocument=policy)
        return
    have: Observed = ctx.observed[NAME]
    role = have.role
    add_missing_tags(ctx, role.tags, spec.name, lambda tag_list: iam.tag_role(RoleName=spec.name, Tags=tag_list))
    if canonical(role.raw.get("AssumeRolePolicyDocument") or {}) != canonical(trust):
        iam.update_assume_role_policy(RoleName=spec.name, PolicyDocument=trust)
    current = have.inline.get(POLICY_NAME)
    if current is None or canonical(current) != canonical(policy):
        iam.put_role_policy(RoleName=spec.name, PolicyName=POLICY_NAME, PolicyDocument=policy)
    for name in have.inline:
        if name != POLICY_NAME:
            gone_is_fine(iam.delete_role_policy, RoleName=spec.name, PolicyName=name)
    for arn in have.attached:
        gone_is_fine(iam.detach_role_policy, RoleName=spec.name, PolicyArn=arn)


def role_not_assumable_yet(exc: Exception) -> bool:
    """AWS's answer while a new role is not yet visible to Scheduler; the only error worth a retry."""
    if error_code(exc) != "ValidationException":
        return False
    message = exc.response.get("Error", {}).get("Message", "")  # type: ignore[attr-defined]
    return "assume the role" in message or "assume role" in message
