"""Small pieces every step uses to compare, adopt, tag and delete, so no step repeats them."""

from __future__ import annotations

from awsprac.engine import tags, waiting
from awsprac.engine.aws import error_code, is_not_found, translate
from awsprac.engine.errors import AwspracError
from awsprac.engine.context import Context
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change, FieldDiff


def tag_fields(ctx: Context, found: Found) -> list[FieldDiff]:
    """The ownership/Name tags a found resource lacks, as one plan field."""
    want = ctx.tags(found.name)
    add = tags.missing(found.tags, want)
    if not add:
        return []
    return [FieldDiff("tags", _tag_text(found.tags, add), _tag_text(want, add))]


def update(ctx: Context, step: str, found: Found, fields: list[FieldDiff], spec=None) -> list[Change]:
    """An update (or an adoption, for a resource without our tags) when anything differs."""
    fields = tag_fields(ctx, found) + list(fields)
    if not fields:
        return []
    action = Action.UPDATE if ctx.owns(found) else Action.ADOPT
    return [Change(step, action, found.kind, found.name, found.id, tuple(fields), spec=spec)]


def add_missing_tags(ctx: Context, have: dict[str, str], name: str, write) -> None:
    """Adopting (or repairing) a resource: the ownership and Name tags it lacks, written in one call
    `write(tag_list)` in its service's own words; nothing at all when none is missing."""
    add = tags.missing(have, ctx.tags(name))
    if add:
        write(tags.as_list(add))


def retag(ctx: Context, found: Found) -> None:
    """An EC2 resource's missing tags."""
    add_missing_tags(ctx, found.tags, found.name, lambda tag_list: ctx.aws.ec2.create_tags(Resources=[found.id], Tags=tag_list))


def delete_change(step: str, found: Found | None, ctx: Context) -> list[Change]:
    """Teardown of one observed resource: deleted only when this env owns it, else shown as left alone."""
    if found is None:
        return []
    if not ctx.owns(found):
        note = f"left alone: not tagged {tags.ENV_KEY}={ctx.cfg.env}, so not this env's to delete"
        return [Change(step, Action.REPORT, found.kind, found.name, found.id, note=note)]
    return [Change(step, Action.DELETE, found.kind, found.name, found.id)]


def gone_is_fine(call, **kwargs) -> None:
    """Run a delete; AWS saying it is already gone means the delete has succeeded."""
    try:
        call(**kwargs)
    except Exception as exc:
        if not is_not_found(exc):
            raise


# AWS may not know an id for a few seconds after its create answered (eventual consistency).
EVENTUAL_CONSISTENCY_BUDGET = 30.0
# Network interfaces of a terminated instance or a deleted database linger for minutes.
DEPENDENCY_BUDGET = 600.0


def eventually(ctx: Context, what: str, call, **kwargs):
    """A call on ids created moments ago in this run: `*.NotFound` is retried briefly."""
    return waiting.retry_on(is_not_found, lambda: call(**kwargs), EVENTUAL_CONSISTENCY_BUDGET, ctx.report, what)


class StillInUse(AwspracError):
    """A delete kept failing with DependencyViolation: the message lists what still uses the resource."""


def delete_when_free(ctx: Context, change: Change, call, blockers=None, **kwargs) -> None:
    """Delete, retrying while AWS says something still depends on it; gone already is success.

    When the budget runs out, `blockers()` (a list of strings) says what is in the way.
    """
    def attempt():
        gone_is_fine(call, **kwargs)

    try:
        waiting.retry_on(lambda e: error_code(e) == "DependencyViolation", attempt, DEPENDENCY_BUDGET, ctx.report, f"deleting {resource(change)}", first_delay=5, max_delay=30)
    except Exception as exc:
        if error_code(exc) != "DependencyViolation":
            raise
        in_the_way = blockers() if blockers else []
        what = f"still used by {'; '.join(in_the_way)}; remove those (or wait)" if in_the_way else "something still uses it; wait a few minutes"
        raise StillInUse(
            f"deleting {resource(change)} failed: DependencyViolation after {int(DEPENDENCY_BUDGET // 60)} minutes: "
            f"{what}, then run the same command again"
        ) from None


def revoke_references(ctx: Context, group_id: str, vpc_id: str | None) -> None:
    """Revoke the inbound rules of this env's other security groups that let `group_id` in: AWS refuses
    to delete a group another group's rule still names (DependencyViolation). A step whose group goes
    while `up` runs (a mode switch) cannot wait for the step that owns the rule: that one comes after it."""
    from awsprac.engine import lookup

    if not vpc_id:
        return
    for item in lookup.describe(ctx.aws.ec2, lookup.SECURITY_GROUP, [{"Name": "vpc-id", "Values": [vpc_id]}]):
        found = lookup.to_found(lookup.SECURITY_GROUP, item)
        if found.id == group_id or not ctx.owns(found):
            continue
        naming = []
        for permission in item.get("IpPermissions", []):
            pairs = [{k: v for k, v in p.items() if k in ("GroupId", "Description")}
                     for p in permission.get("UserIdGroupPairs", []) if p.get("GroupId") == group_id]
            if pairs:
                kept = {k: permission[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in permission}
                naming.append({**kept, "UserIdGroupPairs": pairs})
        if naming:
            gone_is_fine(ctx.aws.ec2.revoke_security_group_ingress, GroupId=found.id, IpPermissions=naming)


def network_interfaces(ec2, **filters: str) -> list[str]:
    """Network interfaces matching e.g. vpc_id=..., as 'eni-... (description, status)'."""
    aws_filters = [{"Name": key.replace("_", "-"), "Values": [value]} for key, value in filters.items()]
    found = ec2.describe_network_interfaces(Filters=aws_filters)["NetworkInterfaces"]
    return [f"{n['NetworkInterfaceId']} ({n.get('Description') or n.get('InterfaceType') or 'no description'}, {n.get('Status')})" for n in found]


def resource(change: Change) -> str:
    return f"{change.kind} {change.name}" + (f" ({change.id})" if change.id else "")


def doing(change: Change) -> str:
    return {Action.CREATE: "creating", Action.DELETE: "deleting", Action.ADOPT: "adopting"}.get(change.action, "updating")


def applying(change: Change) -> translate:
    """`with applying(change):` names the operation and resource in any AWS error."""
    return translate(doing(change), resource(change))


def _tag_text(current: dict[str, str], keys: dict[str, str]) -> str:
    return ", ".join(f"{k}={current.get(k) or '(none)'}" for k in keys)
