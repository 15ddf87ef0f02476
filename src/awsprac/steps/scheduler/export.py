"""The scheduler's Terraform: its IAM role and policies, the schedule group and the two schedules."""

from __future__ import annotations

from awsprac.engine.context import Context
from awsprac.engine.terraform import Block, Exporter, Resource, address_name, jsonencode, policy


def export_terraform(ctx: Context, out: Exporter) -> None:
    from awsprac.steps import scheduler

    f = out.file("scheduler.tf", "EventBridge Scheduler keeps a stopped DB stopped: weekly start, stop 30 minutes later (SPEC section 8).")
    have = ctx.observed[scheduler.NAME]
    role_spec, group_spec, *schedule_specs = scheduler.desired(ctx.cfg)
    role = None
    if have.role is None:
        out.missing(f"IAM role {role_spec.name}")
    else:
        raw = have.role.raw
        role = f.add(Resource("aws_iam_role", "scheduler", {
            "name": have.role.name,
            "description": out.role_description(have.role),
            "assume_role_policy": jsonencode(policy(raw.get("AssumeRolePolicyDocument"))),
            "tags": out.tags(have.role.name),
        }, have.role.name))
        for policy_name, document in sorted(have.inline.items()):
            f.add(Resource("aws_iam_role_policy", f"scheduler_{address_name(policy_name)}", {
                "name": policy_name, "role": role.ref(), "policy": jsonencode(policy(document)),
            }, f"{have.role.name}:{policy_name}"))
        for arn in sorted(have.attached):
            f.add(Resource("aws_iam_role_policy_attachment", f"scheduler_{address_name(arn.rsplit('/', 1)[-1])}", {
                "role": role.ref("name"), "policy_arn": arn,
            }, f"{have.role.name}/{arn}"))
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
