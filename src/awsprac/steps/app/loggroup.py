"""The log group `/ecs/{project}-backend-{env}` of step `app` (service.py): made by awsprac, because the task
execution role's policy cannot create it; retention `app.log_retention_days`.

Logs are data: a destroy keeps the group unless `--force`, and says how to remove it. Its tags are not
read when they follow from this env's task definition writing to it (see tags_of); a delete reads them.
"""

from __future__ import annotations

from awsprac.engine import tags
from awsprac.engine.aws import error_code, is_not_found
from awsprac.engine.context import Context
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import add_missing_tags, delete_change, gone_is_fine, update
from awsprac.steps.app import taskdef
from awsprac.steps.app.common import from_ecs_tags

KIND = "log group"


def client(ctx: Context):
    return ctx.aws.client("logs")


def describe(ctx: Context, name: str) -> dict | None:
    """The group itself (DescribeLogGroups takes a prefix: others may share it)."""
    groups = client(ctx).describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
    return next((g for g in groups if g["logGroupName"] == name), None)


def found(ctx: Context, name: str, group: dict | None, td: dict | None) -> Found | None:
    return Found(KIND, name, group["logGroupName"], "", tags_of(ctx, name, td), group) if group else None


def tags_of(ctx: Context, name: str, td: dict | None) -> dict[str, str]:
    """A log group this env's task definition writes to is this env's (made, or adopted, before the task
    definition named it): its tags are not read. Otherwise, and before a delete, they are."""
    if td is not None and tags.is_owned(from_ecs_tags(td.get("tags")), ctx.cfg.project, ctx.cfg.env):
        options = (taskdef._container(td["taskDefinition"]).get("logConfiguration") or {}).get("options") or {}
        if options.get("awslogs-group") == name:
            return ctx.tags(name)
    return read_tags(ctx, name)


def read_tags(ctx: Context, name: str) -> dict[str, str]:
    try:
        answer = client(ctx).list_tags_log_group(logGroupName=name)
    except Exception as exc:
        if is_not_found(exc):
            return {}
        raise
    return dict(answer.get("tags", {}))


def changes(ctx: Context, step: str, spec, group: Found | None) -> list[Change]:
    days = ctx.cfg.app.log_retention_days
    if group is None:
        return [Change(step, Action.CREATE, KIND, spec.name, spec=spec, fields=(FieldDiff("retention", None, f"{days} days"),))]
    have = group.raw.get("retentionInDays")
    fields = [FieldDiff("retention", f"{have} days" if have else "never expire", f"{days} days")] if have != days else []
    return update(ctx, step, group, fields, spec)


def apply(ctx: Context, change: Change, group: Found | None) -> None:
    """Create, or adopt/repair (`group`: as observed), then the retention; a delete when asked."""
    logs, days = client(ctx), ctx.cfg.app.log_retention_days
    if change.action is Action.DELETE:
        gone_is_fine(logs.delete_log_group, logGroupName=change.name)
        return
    if change.action is Action.CREATE:
        try:
            logs.create_log_group(logGroupName=change.name, tags=ctx.tags(change.name))
        except Exception as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
    else:
        add_missing_tags(ctx, group.tags, change.name, lambda tag_list: logs.tag_log_group(logGroupName=change.name, tags=tags.as_dict(tag_list)))
    logs.put_retention_policy(logGroupName=change.name, retentionInDays=days)


def with_read_tags(ctx: Context, group: Found | None) -> Found | None:
    """Whose it is decides a delete: its tags read, not inferred."""
    return Found(KIND, group.name, group.id, group.state, read_tags(ctx, group.name), group.raw) if group is not None else None


def kept(ctx: Context, step: str, group: Found, note: str = "") -> Change:
    return Change(step, Action.REPORT, KIND, group.name, group.id,
                  note=note or f"kept: logs are data; `awsprac destroy --env {ctx.cfg.env} --force` deletes them too")


def teardown(ctx: Context, step: str, group: Found | None, tags_read: bool = False) -> list[Change]:
    """Deleted only with --force (logs are data). `tags_read`: `group` comes from with_read_tags already."""
    group = group if tags_read else with_read_tags(ctx, group)
    if group is None:
        return []
    if ctx.owns(group) and not ctx.options.force:
        return [kept(ctx, step, group)]
    return delete_change(step, group, ctx)
