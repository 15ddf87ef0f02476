"""Step `scheduler`: keep a stopped database stopped (docs/reference.md section 8).

A stopped RDS instance starts by itself after 7 days. EventBridge Scheduler starts it on a schedule
and stops it again 30 minutes later: role `{project}-scheduler-{env}` (trusted by
scheduler.amazonaws.com, allowed only rds:StartDBInstance / rds:StopDBInstance on this instance),
group `{project}-{env}`, and two schedules with universal targets.

Schedules take no tags: a schedule is this env's when its group is.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from awsprac import batched, tags, waiting
from awsprac.aws import error_code, is_not_found, translate
from awsprac.config import EnvConfig
from awsprac.context import Context
from awsprac.dag import concurrently
from awsprac.errors import AwspracError
from awsprac.lookup import Found
from awsprac.plan import Action, Change, FieldDiff
from awsprac.reconcile import applying, delete_change, gone_is_fine, update

NAME = "scheduler"
# The role's policy and the schedules name the instance (its ARN is known from the account, region and
# name): none of it needs the instance to exist, so this step does not wait for it to be created...
REQUIRES: tuple[str, ...] = ()
# ...but goes before it on destroy: nothing is left pointing at a deleted instance.
POINTS_AT = ("rds",)
# The role and the group at once; the two schedules (which need both) at once after them.
CHANGES_AFTER = {"schedule": ("IAM role", "schedule group")}

PRINCIPAL = "scheduler.amazonaws.com"
ACTIONS = ("rds:StartDBInstance", "rds:StopDBInstance")
POLICY_NAME = "start-stop-db"
# Short: a start or stop that cannot happen within minutes should not happen hours late.
RETRY_POLICY = {"MaximumEventAgeInSeconds": 600, "MaximumRetryAttempts": 3}
ROLE_WAIT = 120  # a new role takes seconds (sometimes a minute or two) before Scheduler may assume it
GROUP_GONE_WAIT = 5 * 60


@dataclass(frozen=True)
class RoleSpec:
    name: str
    db_id: str
    kind: str = "IAM role"


@dataclass(frozen=True)
class GroupSpec:
    name: str
    kind: str = "schedule group"


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    group: str
    action: str  # startDBInstance | stopDBInstance
    expression: str
    timezone: str
    enabled: bool
    db_id: str
    kind: str = "schedule"

    @property
    def target_arn(self) -> str:
        return f"arn:aws:scheduler:::aws-sdk:rds:{self.action}"

    @property
    def input(self) -> str:
        return json.dumps({"DbInstanceIdentifier": self.db_id})

    @property
    def description(self) -> str:
        verb = "starts" if self.action.startswith("start") else "stops"
        return f"{verb} RDS instance {self.db_id} (a stopped instance restarts by itself after 7 days); managed by awsprac"

    def params(self, role_arn: str) -> dict:
        """Everything a schedule is: UpdateSchedule replaces the whole schedule, so both calls send all of it."""
        return {
            "Name": self.name, "GroupName": self.group, "Description": self.description,
            "ScheduleExpression": self.expression, "ScheduleExpressionTimezone": self.timezone,
            "State": "ENABLED" if self.enabled else "DISABLED",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {"Arn": self.target_arn, "RoleArn": role_arn, "Input": self.input, "RetryPolicy": dict(RETRY_POLICY)},
        }


@dataclass(frozen=True)
class Observed:
    role: Found | None
    inline: dict[str, Any]  # policy name -> document
    attached: tuple[str, ...]  # managed policy ARNs
    group: Found | None
    schedules: dict[str, Found]

    @property
    def ready(self) -> bool:
        return self.role is not None and self.group is not None and self.group.state == "ACTIVE"

    def resources(self) -> list[Found]:
        return [f for f in (self.role, self.group) if f is not None] + list(self.schedules.values())

    def outputs(self) -> dict:
        out: dict = {}
        if self.role:
            out["db_scheduler_role_arn"] = self.role.raw["Arn"]
        if self.group:
            out["db_schedule_group"] = self.group.name
            out["db_schedules"] = sorted(self.schedules)
        return out


def desired(cfg: EnvConfig) -> list:
    s = cfg.scheduler
    db_id = cfg.name("{project}-{env}")
    group = GroupSpec(cfg.name("{project}-{env}"))
    return [
        RoleSpec(cfg.name("{project}-scheduler-{env}"), db_id),
        group,
        ScheduleSpec(cfg.name("{project}-db-start-{env}"), group.name, "startDBInstance", s.start_expression, s.timezone, s.enabled, db_id),
        ScheduleSpec(cfg.name("{project}-db-stop-{env}"), group.name, "stopDBInstance", s.stop_expression, s.timezone, s.enabled, db_id),
    ]


# --- policies ---


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


def _db_arn(ctx: Context, role: Found | None) -> str | None:
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


# --- looking things up ---


def observe(ctx: Context) -> Observed:
    role_spec, group_spec, *schedule_specs = desired(ctx.cfg)
    # The role and the group are independent: both read at once, and each one's own reads at once too.
    (role, inline, attached), (group, schedules) = concurrently(
        lambda: _observe_role(ctx, role_spec), lambda: _observe_group(ctx, group_spec, schedule_specs),
    )
    return Observed(role, inline, attached, group, schedules)


def _missing_is_none(call, **kwargs):
    try:
        return call(**kwargs)
    except botocore.exceptions.ClientError as exc:
        if not is_not_found(exc):
            raise
        return None


def _observe_role(ctx: Context, role_spec) -> tuple:
    # From the account's one batched IAM read (shared with step nat-iam): the role with its policies.
    raw = batched.iam_role(ctx, role_spec.name)
    if raw is None:
        return None, {}, ()
    role = Found(role_spec.kind, role_spec.name, raw["RoleName"], "exists", tags.as_dict(raw.get("Tags")), raw)
    inline = {p["PolicyName"]: p["PolicyDocument"] for p in raw.get("RolePolicyList", [])}
    attached = tuple(p["PolicyArn"] for p in raw.get("AttachedManagedPolicies", []))
    return role, inline, attached


def _observe_group(ctx: Context, group_spec, schedule_specs) -> tuple:
    """The group's tags and its schedules, all at once. A schedule found means its group exists and is
    active; only when one is missing is the group itself asked for (it may be missing, or deleting)."""
    scheduler = ctx.aws.client("scheduler")
    arn = ctx.arn("scheduler", f"schedule-group/{group_spec.name}")
    with translate("looking up", f"schedule group {group_spec.name}"):
        tag_reply, *items = concurrently(
            lambda: _missing_is_none(scheduler.list_tags_for_resource, ResourceArn=arn) if arn else None,
            *[lambda spec=spec: _missing_is_none(scheduler.get_schedule, Name=spec.name, GroupName=group_spec.name) for spec in schedule_specs],
        )
        group_tags = tags.as_dict(tag_reply.get("Tags")) if tag_reply is not None else None
        if arn is None or any(item is None for item in items):
            raw = _missing_is_none(scheduler.get_schedule_group, Name=group_spec.name)
            if raw is None:
                return None, {}
            if group_tags is None:
                group_tags = tags.as_dict(scheduler.list_tags_for_resource(ResourceArn=raw["Arn"]).get("Tags"))
        else:
            # Both schedules answered: the group is there. Were it being deleted, with its schedules
            # still listed, this run plans nothing and the next one sees it gone and makes it again.
            raw = {"Arn": arn, "Name": group_spec.name, "State": "ACTIVE"}
    group = Found(group_spec.kind, group_spec.name, group_spec.name, raw.get("State", "ACTIVE"), group_tags, raw)
    if group.state != "ACTIVE":
        return group, {}
    # Schedules take no tags: they belong to whoever owns their group.
    schedules = {spec.name: Found(spec.kind, spec.name, item["Arn"], item.get("State", ""), group_tags, item)
                 for spec, item in zip(schedule_specs, items) if item is not None}
    return group, schedules


# --- comparing ---


def diff(ctx: Context, want: list, have: Observed) -> list[Change]:
    role_spec, group_spec, *schedule_specs = want
    changes = _role_changes(ctx, role_spec, have) + _group_changes(ctx, group_spec, have)
    role_arn = have.role.raw["Arn"] if have.role else f"(new role {role_spec.name})"
    for spec in schedule_specs:
        changes += _schedule_changes(ctx, spec, have, role_arn)
    return changes


def _role_changes(ctx: Context, spec: RoleSpec, have: Observed) -> list[Change]:
    if have.role is None:
        fields = (
            FieldDiff("trusted by", None, PRINCIPAL),
            FieldDiff("allowed", None, f"{', '.join(ACTIONS)} on DB instance {spec.db_id} only"),
        )
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=fields, spec=spec)]
    role = have.role
    db_arn = _db_arn(ctx, role)
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


def _group_changes(ctx: Context, spec: GroupSpec, have: Observed) -> list[Change]:
    group = have.group
    if group is None or group.state == "DELETING":
        note = "the old group is still being deleted: up waits for it to go first" if group else ""
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, note=note, spec=spec)]
    return update(ctx, NAME, group, [], spec)


def _schedule_changes(ctx: Context, spec: ScheduleSpec, have: Observed, role_arn: str) -> list[Change]:
    found = have.schedules.get(spec.name)
    want = spec.params(role_arn)
    if found is None:
        fields = (
            FieldDiff("when", None, f"{spec.expression} {spec.timezone}"),
            FieldDiff("state", None, want["State"]),
            FieldDiff("target", None, f"{spec.target_arn} {spec.input}"),
            FieldDiff("flexible window", None, "OFF"),
            FieldDiff("retries", None, f"{RETRY_POLICY['MaximumRetryAttempts']} within {RETRY_POLICY['MaximumEventAgeInSeconds'] // 60} minutes"),
        )
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=fields, spec=spec)]
    fields = schedule_fields(found.raw, want)
    if not fields:
        return []
    action = Action.UPDATE if ctx.owns(found) else Action.ADOPT
    return [Change(NAME, action, spec.kind, spec.name, found.id, tuple(fields), spec=spec)]


def schedule_fields(have: dict, want: dict) -> list[FieldDiff]:
    target, want_target = have.get("Target") or {}, want["Target"]
    pairs = [
        ("description", have.get("Description"), want["Description"]),
        ("expression", have.get("ScheduleExpression"), want["ScheduleExpression"]),
        ("time zone", have.get("ScheduleExpressionTimezone"), want["ScheduleExpressionTimezone"]),
        ("state", have.get("State"), want["State"]),
        ("flexible window", (have.get("FlexibleTimeWindow") or {}).get("Mode"), "OFF"),
        ("target", target.get("Arn"), want_target["Arn"]),
        ("role", target.get("RoleArn"), want_target["RoleArn"]),
        ("input", _json(target.get("Input")), _json(want_target["Input"])),
        ("retry policy", _retry_text(target.get("RetryPolicy")), _retry_text(want_target["RetryPolicy"])),
    ]
    return [FieldDiff(label, current, wanted) for label, current, wanted in pairs if current != wanted]


def _json(text: str | None) -> str | None:
    try:
        return json.dumps(json.loads(text), sort_keys=True) if text else None
    except ValueError:
        return text


def _retry_text(policy: dict | None) -> str | None:
    if not policy:
        return None
    return f"{policy.get('MaximumRetryAttempts')} attempts within {policy.get('MaximumEventAgeInSeconds')}s"


# --- carrying it out ---


def apply(ctx: Context, change: Change) -> None:
    with applying(change):
        if change.action is Action.DELETE:
            _delete(ctx, change)
        elif change.kind == "IAM role":
            _apply_role(ctx, change)
        elif change.kind == "schedule group":
            _apply_group(ctx, change)
        else:
            _apply_schedule(ctx, change)


def _role_arn(ctx: Context) -> str:
    """The role's ARN: as observed, or (made moments ago in this run, not yet readable everywhere:
    IAM is eventually consistent) what AWS names a role at path / in the instance's account."""
    role = ctx.observed[NAME].role
    if role is not None:
        return role.raw["Arn"]
    _, partition, _, _, account, _ = _require_db_arn(ctx).split(":", 5)
    return f"arn:{partition}:iam::{account}:role/{desired(ctx.cfg)[0].name}"


def _require_db_arn(ctx: Context) -> str:
    """The instance's ARN, whether or not it exists yet (the caller's account is asked once if not known)."""
    arn = _db_arn(ctx, ctx.observed[NAME].role)
    if arn is None:
        with translate("checking", "the caller identity (sts get-caller-identity)"):
            who = ctx.aws.client("sts").get_caller_identity()
        ctx.identity = {"Account": who["Account"], "Arn": who["Arn"]}
        arn = _arn_of_db_in(ctx, who["Arn"])
    return arn


def _apply_role(ctx: Context, change: Change) -> None:
    iam, spec = ctx.aws.client("iam"), change.spec
    db_arn = _require_db_arn(ctx)
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
    add = tags.missing(role.tags, ctx.tags(spec.name))
    if add:
        iam.tag_role(RoleName=spec.name, Tags=tags.as_list(add))
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


def _apply_group(ctx: Context, change: Change) -> None:
    scheduler, spec = ctx.aws.client("scheduler"), change.spec
    if change.action is Action.CREATE:
        # Create only after looking: re-creating an existing group drops its schedules (moto), or fails (AWS).
        # This step's observation just looked and found none; one being deleted is looked at until it is gone.
        if ctx.observed[NAME].group is not None:
            _wait_group_gone(ctx, spec.name)
        scheduler.create_schedule_group(
            Name=spec.name, Tags=tags.as_list(ctx.tags(spec.name)),
            # One token per attempt (botocore's own retries of this call are one request): a run after a crash
            # looks first. Not derived from names: AWS would answer for a group deleted since.
            ClientToken=uuid.uuid4().hex,
        )
        return
    group = ctx.observed[NAME].group
    add = tags.missing(group.tags, ctx.tags(spec.name))
    if add:
        scheduler.tag_resource(ResourceArn=group.raw["Arn"], Tags=tags.as_list(add))


def _wait_group_gone(ctx: Context, name: str) -> None:
    """A group being deleted (after a destroy) keeps its name until it is gone: wait for that."""
    scheduler = ctx.aws.client("scheduler")

    def check() -> tuple[bool, str]:
        try:
            state = scheduler.get_schedule_group(Name=name).get("State", "ACTIVE")
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return True, "gone"
            raise
        if state == "ACTIVE":
            raise AwspracError(f"schedule group {name} exists already: run `awsprac up --env {ctx.cfg.env}` again to adopt it")
        return False, state

    if check()[0]:
        return
    waiting.wait_for(ctx.report, f"old schedule group {name} being deleted", check, timeout=GROUP_GONE_WAIT, interval=5)


def role_not_assumable_yet(exc: Exception) -> bool:
    """AWS's answer while a new role is not yet visible to Scheduler; the only error worth a retry."""
    if error_code(exc) != "ValidationException":
        return False
    message = exc.response.get("Error", {}).get("Message", "")  # type: ignore[attr-defined]
    return "assume the role" in message or "assume role" in message


def _apply_schedule(ctx: Context, change: Change) -> None:
    scheduler, spec = ctx.aws.client("scheduler"), change.spec
    params = spec.params(_role_arn(ctx))
    if change.action is Action.CREATE:
        token = uuid.uuid4().hex  # one per attempt, as for the group; the retries below are the same request
        waiting.retry_on(
            role_not_assumable_yet, lambda: scheduler.create_schedule(ClientToken=token, **params),
            ROLE_WAIT, ctx.report, f"creating schedule {spec.name}",
        )
        return
    waiting.retry_on(role_not_assumable_yet, lambda: scheduler.update_schedule(**params), ROLE_WAIT, ctx.report, f"updating schedule {spec.name}")


def teardown(ctx: Context, have: Observed) -> list[Change]:
    changes: list[Change] = []
    group = have.group
    if group is not None and group.state == "ACTIVE":
        for found in have.schedules.values():
            changes += delete_change(NAME, found, ctx)
    if group is not None and group.state == "ACTIVE":
        changes += delete_change(NAME, group, ctx)
    changes += delete_change(NAME, have.role, ctx)
    return changes


def _delete(ctx: Context, change: Change) -> None:
    if change.kind == "schedule":
        group = desired(ctx.cfg)[1].name
        gone_is_fine(ctx.aws.client("scheduler").delete_schedule, Name=change.name, GroupName=group)
    elif change.kind == "schedule group":
        gone_is_fine(ctx.aws.client("scheduler").delete_schedule_group, Name=change.name)
    else:
        iam = ctx.aws.client("iam")
        have: Observed = ctx.observed[NAME]
        for name in have.inline:
            gone_is_fine(iam.delete_role_policy, RoleName=change.name, PolicyName=name)
        for arn in have.attached:
            gone_is_fine(iam.detach_role_policy, RoleName=change.name, PolicyArn=arn)
        gone_is_fine(iam.delete_role, RoleName=change.name)
