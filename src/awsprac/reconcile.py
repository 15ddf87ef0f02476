"""Small pieces every step uses to compare, adopt, tag and delete, so no step repeats them."""

from __future__ import annotations

from awsprac import tags
from awsprac.aws import is_not_found, translate
from awsprac.context import Context
from awsprac.lookup import Found
from awsprac.plan import Action, Change, FieldDiff


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


def retag(ctx: Context, found: Found) -> None:
    add = tags.missing(found.tags, ctx.tags(found.name))
    if add:
        ctx.aws.ec2.create_tags(Resources=[found.id], Tags=tags.as_list(add))


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


def resource(change: Change) -> str:
    return f"{change.kind} {change.name}" + (f" ({change.id})" if change.id else "")


def doing(change: Change) -> str:
    return {Action.CREATE: "creating", Action.DELETE: "deleting", Action.ADOPT: "adopting"}.get(change.action, "updating")


def applying(change: Change) -> translate:
    """`with applying(change):` names the operation and resource in any AWS error."""
    return translate(doing(change), resource(change))


def _tag_text(current: dict[str, str], keys: dict[str, str]) -> str:
    return ", ".join(f"{k}={current.get(k) or '(none)'}" for k in keys)
