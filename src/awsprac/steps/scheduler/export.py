"""The scheduler's Terraform: its IAM role and policies, the schedule group and the two schedules."""

from __future__ import annotations

from awsprac.engine.context import Context
from awsprac.engine.terraform import Block, Exporter, Resource


def export_terraform(ctx: Context, out: Exporter) -> None:
    from awsprac.steps import scheduler

    f = out.file("scheduler.tf", "EventBridge Scheduler keeps a stopped DB stopped: weekly start, stop 30 minutes later (docs/reference.md section 8).")
    have = ctx.observed[scheduler.NAME]
    role_spec, group_spec, *schedule_specs = scheduler.desired(ctx.cfg)
    role = None
    if have.role is None:
        out.missing(f"IAM role {role_spec.name}")
    else:
        role = out.iam_role(f, "scheduler", have.role, have.inline, have.attached)
    if have.group is None:
        out.missing(f"schedule group {group_spec.name}")
        return
    group = f.add(Resource("aws_scheduler_schedule_group", "main", {"name": have.group.name, "tags": out.tags(have.group.name)}, have.group.name))
    for spec in schedule_specs:
        found = have.schedules.get(spec.name)
        if found is None:
            out.missing(f"schedule {spec.name}")
            continue
        raw = found.raw
        target = raw.get("Target") or {}
        target_attrs: dict = {
            "arn": target.get("Arn"),
            "role_arn": role.ref("arn") if role and target.get("RoleArn") == have.role.raw["Arn"] else target.get("RoleArn"),
            # As AWS holds it, byte for byte: the provider compares this text as is.
            "input": target.get("Input"),
        }
        retry = target.get("RetryPolicy")
        if retry:
            target_attrs["retry_policy"] = Block({
                "maximum_event_age_in_seconds": retry.get("MaximumEventAgeInSeconds"),
                "maximum_retry_attempts": retry.get("MaximumRetryAttempts"),
            })
        window = raw.get("FlexibleTimeWindow") or {"Mode": "OFF"}
        window_attrs: dict = {"mode": window.get("Mode")}
        if window.get("MaximumWindowInMinutes"):
            window_attrs["maximum_window_in_minutes"] = window["MaximumWindowInMinutes"]
        short = "db_start" if spec.action.startswith("start") else "db_stop"
        f.add(Resource("aws_scheduler_schedule", short, {
            "name": found.name,
            "group_name": group.ref("name"),
            "description": raw.get("Description"),
            "schedule_expression": raw.get("ScheduleExpression"),
            "schedule_expression_timezone": raw.get("ScheduleExpressionTimezone"),
            "state": raw.get("State"),
            "flexible_time_window": Block(window_attrs),
            "target": Block(target_attrs),
        }, f"{have.group.name}/{found.name}"))
