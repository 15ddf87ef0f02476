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

from awsprac.engine import tags, waiting
from awsprac.engine.aws import is_not_found, translate
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.dag import concurrently
from awsprac.engine.errors import AwspracError
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import add_missing_tags, applying, delete_change, gone_is_fine, update

NAME = "scheduler"
# The role's policy and the schedules name the instance (its ARN is known from the account, region and
# name): none of it needs the instance to exist, so this step does not wait for it to be created...
REQUIRES: tuple[str, ...] = ()
# ...but goes before it on destroy: nothing is left pointing at a deleted instance.
POINTS_AT = ("rds",)
# The group before the role (a role of this env's then means its group is too: see _made_here), the
# two schedules (which need both) at once after them.
CHANGES_AFTER = {"schedule": ("IAM role", "schedule group"), "IAM role": ("schedule group",)}

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


# --- looking things up ---


def observe(ctx: Context) -> Observed:
    role_spec, group_spec, *schedule_specs = desired(ctx.cfg)
    # The role and the schedules at once; the group's own reads only when the schedules do not settle it.
    (role, inline, attached), items = concurrently(
        lambda: observe_role(ctx, role_spec), lambda: _read_schedules(ctx, group_spec, schedule_specs),
    )
    arn = ctx.arn("scheduler", f"schedule-group/{group_spec.name}")
    if arn is not None and all(item is not None for item in items) and _made_here(ctx, role, items):
        group_tags = ctx.tags(group_spec.name)
        raw = {"Arn": arn, "Name": group_spec.name, "State": "ACTIVE", INFERRED: True}
    else:
        raw, group_tags = _observe_group(ctx, group_spec, items, arn)
        if raw is None:
            return Observed(role, inline, attached, None, {})
    group = Found(group_spec.kind, group_spec.name, group_spec.name, raw.get("State", "ACTIVE"), group_tags, raw)
    if group.state != "ACTIVE":
        return Observed(role, inline, attached, group, {})
    # Schedules take no tags: they belong to whoever owns their group.
    schedules = {spec.name: Found(spec.kind, spec.name, item["Arn"], item.get("State", ""), group_tags, item)
                 for spec, item in zip(schedule_specs, items) if item is not None}
    return Observed(role, inline, attached, group, schedules)


# Both schedules in the group, started by this env's role: the group is this env's, and its tags are not
# read (one read less per look). awsprac points a schedule at the role only after making (or adopting)
# the group, and tags or adopts the role only after the group (CHANGES_AFTER). A destroy reads them.
INFERRED = "awsprac:inferred"


def _made_here(ctx: Context, role: Found | None, items: list[dict]) -> bool:
    if role is None or not ctx.owns(role):
        return False
    return all((item.get("Target") or {}).get("RoleArn") == role.raw.get("Arn") for item in items)


def _missing_is_none(call, **kwargs):
    try:
        return call(**kwargs)
    except botocore.exceptions.ClientError as exc:
        if not is_not_found(exc):
            raise
        return None


def _read_schedules(ctx: Context, group_spec, schedule_specs) -> list:
    scheduler = ctx.aws.client("scheduler")
    with translate("looking up", f"the schedules of group {group_spec.name}"):
        return concurrently(
            *[lambda spec=spec: _missing_is_none(scheduler.get_schedule, Name=spec.name, GroupName=group_spec.name) for spec in schedule_specs],
        )


def _observe_group(ctx: Context, group_spec, items: list, arn: str | None) -> tuple:
    """(the group as described, its tags), or (None, None) when there is none. A schedule found means its
    group exists and is active; only when one is missing is the group itself asked for (it may be
    missing, or deleting)."""
    scheduler = ctx.aws.client("scheduler")
    with translate("looking up", f"schedule group {group_spec.name}"):
        if arn is not None and all(item is not None for item in items):
            # Both schedules answered: the group is there. Were it being deleted, with its schedules
            # still listed, this run plans nothing and the next one sees it gone and makes it again.
            raw = {"Arn": arn, "Name": group_spec.name, "State": "ACTIVE"}
        else:
            raw = _missing_is_none(scheduler.get_schedule_group, Name=group_spec.name)
            if raw is None:
                return None, None
        return raw, read_group_tags(ctx, raw["Arn"])


def read_group_tags(ctx: Context, arn: str) -> dict[str, str]:
    reply = _missing_is_none(ctx.aws.client("scheduler").list_tags_for_resource, ResourceArn=arn)
    return tags.as_dict((reply or {}).get("Tags"))


# --- comparing ---


def diff(ctx: Context, want: list, have: Observed) -> list[Change]:
    role_spec, group_spec, *schedule_specs = want
    changes = role_changes(ctx, role_spec, have) + _group_changes(ctx, group_spec, have)
    role_arn = have.role.raw["Arn"] if have.role else f"(new role {role_spec.name})"
    for spec in schedule_specs:
        changes += _schedule_changes(ctx, spec, have, role_arn)
    return changes


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
            apply_role(ctx, change)
        elif change.kind == "schedule group":
            _apply_group(ctx, change)
        else:
            _apply_schedule(ctx, change)


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
    add_missing_tags(ctx, group.tags, spec.name, lambda tag_list: scheduler.tag_resource(ResourceArn=group.raw["Arn"], Tags=tag_list))


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


def _apply_schedule(ctx: Context, change: Change) -> None:
    scheduler, spec = ctx.aws.client("scheduler"), change.spec
    params = spec.params(scheduler_role_arn(ctx))
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
    if group is not None and group.raw.get(INFERRED):  # whose it is decides the delete: read
        group = Found(group.kind, group.name, group.id, group.state, read_group_tags(ctx, group.raw["Arn"]), group.raw)
        have = Observed(have.role, have.inline, have.attached, group,
                        {n: Found(f.kind, f.name, f.id, f.state, group.tags, f.raw) for n, f in have.schedules.items()})
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


# --- the family's parts, imported last: they use the names above ---

from awsprac.steps.scheduler.role import apply_role, scheduler_role_arn, observe_role, role_changes, role_not_assumable_yet  # noqa: E402

# --- its other facets (see awsprac.steps) ---

from awsprac.steps.scheduler.export import export_terraform  # noqa: E402
