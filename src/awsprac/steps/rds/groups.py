"""The DB's security group, subnet group and parameter group: found (or known from the instance's
description), compared, made or brought back in line. Reads of their RDS tags by ARN."""

from __future__ import annotations

import botocore.exceptions

from awsprac.engine import batched, lookup, tags, waiting
from awsprac.engine.aws import error_code, is_not_found, translate
from awsprac.engine.context import Context
from awsprac.engine.dag import concurrently
from awsprac.engine.errors import AwspracError
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import add_missing_tags, gone_is_fine, retag, update
from awsprac.steps.rds.instance import EngineDefault, client as rds_client
from awsprac.steps.rds import GROUP_DELETE_WAIT, NAME, Observed, ParameterGroupSpec, SgSpec, SubnetGroupSpec, owned_db, desired
from awsprac.steps.rds import ingress


def rds_tags(ctx: Context, arn: str) -> dict[str, str]:
    return tags.as_dict(rds_client(ctx).list_tags_for_resource(ResourceName=arn).get("TagList"))


def find_group(ctx: Context, kind: str, name: str) -> Found | None:
    """The group and its tags. With the account known its ARN is too: both read at once."""
    rds = rds_client(ctx)
    subnets = kind == "DB subnet group"
    arn_key = "DBSubnetGroupArn" if subnets else "DBParameterGroupArn"

    def describe() -> list[dict]:
        try:
            if subnets:
                return rds.describe_db_subnet_groups(DBSubnetGroupName=name)["DBSubnetGroups"]
            return rds.describe_db_parameter_groups(DBParameterGroupName=name)["DBParameterGroups"]
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return []
            raise

    def tags_of(arn: str | None, guessed: bool = False) -> dict[str, str] | None:
        try:
            return rds_tags(ctx, arn) if arn else None
        except botocore.exceptions.ClientError as exc:
            # A guessed ARN's answer only counts when the group exists: the describe decides that, and
            # the tags are then read again by the group's own ARN.
            if guessed or is_not_found(exc):
                return None
            raise

    with translate("looking up", f"{kind} {name}"):
        guessed = ctx.arn("rds", f"{'subgrp' if subnets else 'pg'}:{name}")
        items, group_tags = concurrently(describe, lambda: tags_of(guessed, guessed=True))
        items = [i for i in items if i.get("DBSubnetGroupName", i.get("DBParameterGroupName")) == name]
        if not items:
            return None
        item = items[0]
        if group_tags is None or item.get(arn_key) != guessed:
            group_tags = tags_of(item[arn_key])
    return Found(kind, name, name, item.get("SubnetGroupStatus", "exists"), group_tags or {}, item)


def find_sg(ctx: Context, name: str, vpc_id: str | None) -> Found | None:
    # One read with step nat's group (a console-made group may have its group name and no Name tag).
    return batched.security_groups(ctx, vpc_id, [name]).get(name)


# A group this env's instance uses is known from the instance's description. It is this env's: it was
# made, or adopted, before the instance that uses it. A destroy still reads its tags before deleting it.
INFERRED = "awsprac:from-instance"


def used_subnet_group(ctx: Context, raw: dict | None, spec: SubnetGroupSpec) -> Found | None:
    group = (raw or {}).get("DBSubnetGroup") or {}
    if not owned_db(ctx, raw) or group.get("DBSubnetGroupName") != spec.name:
        return None
    return Found(spec.kind, spec.name, spec.name, group.get("SubnetGroupStatus", "exists"), ctx.tags(spec.name), {**group, INFERRED: True})


def used_parameter_group(ctx: Context, raw: dict | None, spec: ParameterGroupSpec) -> Found | None:
    used = [g for g in (raw or {}).get("DBParameterGroups", []) if g.get("DBParameterGroupName") == spec.name]
    if not owned_db(ctx, raw) or not used:
        return None
    # An instance only uses a group of its engine's family: postgres<major>.
    family = f"{raw.get('Engine')}{str(raw.get('EngineVersion', '')).split('.')[0]}"
    item = {"DBParameterGroupName": spec.name, "DBParameterGroupFamily": family, INFERRED: True}
    return Found(spec.kind, spec.name, spec.name, "exists", ctx.tags(spec.name), item)


ALL_OUT = "all traffic to 0.0.0.0/0"


def _is_all_out(rule: dict) -> bool:
    return rule.get("IpProtocol") == "-1" and any(r.get("CidrIp") == "0.0.0.0/0" for r in rule.get("IpRanges", []))


def _rule_text(rule: dict) -> str:
    proto = "all" if rule.get("IpProtocol") == "-1" else f"{rule.get('IpProtocol')} {rule.get('FromPort')}-{rule.get('ToPort')}"
    peers = [r["CidrIp"] for r in rule.get("IpRanges", [])] + [r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])]
    peers += [p["GroupId"] for p in rule.get("UserIdGroupPairs", [])] + [p["PrefixListId"] for p in rule.get("PrefixListIds", [])]
    return f"{proto} {', '.join(peers)}"


def _extra_egress(rules: list[dict]) -> list[dict]:
    """Outbound permissions beyond 'all to 0.0.0.0/0' (split out of a rule that also holds that range)."""
    extra = []
    for rule in rules:
        if rule.get("IpProtocol") == "-1":
            ranges = [r for r in rule.get("IpRanges", []) if r.get("CidrIp") != "0.0.0.0/0"]
            rest = {k: v for k, v in rule.items() if k in ("Ipv6Ranges", "UserIdGroupPairs", "PrefixListIds") and v}
            if ranges or rest:
                extra.append({"IpProtocol": "-1", **({"IpRanges": ranges} if ranges else {}), **rest})
        else:
            extra.append(rule)
    return extra


def sg_changes(ctx: Context, spec: SgSpec, sg: Found | None, peers: dict) -> list[Change]:
    if sg is None:
        fields = (FieldDiff("description", None, spec.description), FieldDiff("inbound", None, "(none)"), FieldDiff("outbound", None, ALL_OUT))
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=fields, spec=spec)]
    changes: list[Change] = []
    if sg.raw.get("Description") != spec.description:
        changes.append(Change(NAME, Action.REPORT, spec.kind, spec.name, sg.id, (FieldDiff("description", sg.raw.get("Description"), spec.description),),
                              note="a security group's description cannot change: recreate it once the database no longer uses it"))
    fields = []
    inbound = ingress.unmanaged(ctx.cfg, sg.raw.get("IpPermissions", []), peers)  # step db-ingress's rules are not by hand
    egress = sg.raw.get("IpPermissionsEgress", [])
    if not any(_is_all_out(r) for r in egress):
        fields.append(FieldDiff("outbound", "; ".join(_rule_text(r) for r in egress) or None, ALL_OUT))
    extra = [("inbound", r) for r in inbound] + [("outbound", r) for r in _extra_egress(egress)]
    if extra:
        text = "; ".join(f"{direction} {_rule_text(r)}" for direction, r in extra)
        if ctx.options.prune:
            fields.append(FieldDiff("rules added by hand", text, "(none)"))
        else:
            changes.append(Change(NAME, Action.REPORT, spec.kind, spec.name, sg.id, (FieldDiff("rules added by hand", text, "(none)"),),
                                  note="kept; `awsprac up --prune` removes them (the DB lets in only the groups the env file names)"))
    return changes + update(ctx, NAME, sg, fields, spec)


def _private_subnet_ids(ctx: Context, spec: SubnetGroupSpec) -> list[str | None]:
    have = ctx.observed["subnets"].subnets
    return [have[n].id if n in have else None for n in spec.subnet_names]


def subnet_group_changes(ctx: Context, spec: SubnetGroupSpec, group: Found | None) -> list[Change]:
    if group is None:
        fields = (FieldDiff("description", None, spec.description), FieldDiff("subnets", None, ", ".join(spec.subnet_names)))
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=fields, spec=spec)]
    fields = []
    if group.raw.get("DBSubnetGroupDescription") != spec.description:
        fields.append(FieldDiff("description", group.raw.get("DBSubnetGroupDescription"), spec.description))
    have_ids = sorted(s["SubnetIdentifier"] for s in group.raw.get("Subnets", []))
    want_ids = _private_subnet_ids(ctx, spec)
    if None in want_ids or have_ids != sorted(want_ids):
        want_text = ", ".join(i or f"(new {n})" for i, n in zip(want_ids, spec.subnet_names))
        fields.append(FieldDiff("subnets", ", ".join(have_ids) or None, want_text))
    return update(ctx, NAME, group, fields, spec)


def _wanted_family(ctx: Context, engine: EngineDefault | None) -> str:
    # PostgreSQL's families are postgres<major>: an existing group is checked without asking AWS.
    return engine.family if engine else f"{ctx.cfg.database.engine}{ctx.cfg.database.engine_major}"


def _replaceable(ctx: Context, group: Found, have: Observed) -> bool:
    """A group of the wrong family is made again when nothing can use it yet: ours, and no instance."""
    return have.db is None and ctx.owns(group) and not group.raw.get(INFERRED)


def parameter_group_changes(ctx: Context, spec: ParameterGroupSpec, have: Observed) -> list[Change]:
    group, engine = have.parameter_group, have.engine
    if group is None:
        fields = (FieldDiff("description", None, spec.description), FieldDiff("family", None, f"{engine.family} (from {ctx.cfg.database.engine} {engine.version})"))
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=fields, spec=spec)]
    family = _wanted_family(ctx, engine)
    fixed = [
        FieldDiff(label, current, wanted)
        for label, current, wanted in (("family", group.raw.get("DBParameterGroupFamily"), family), ("description", group.raw.get("Description", spec.description), spec.description))
        if current != wanted
    ]
    if fixed and _replaceable(ctx, group, have):
        # Made from an earlier env file (another engine or major): no instance uses it, so it is
        # deleted and made again, and the instance is never created with the wrong one.
        return [Change(NAME, Action.UPDATE, spec.kind, spec.name, group.id, tuple(fixed),
                       note="replaced: a parameter group's family and description cannot change, and no instance uses it yet", spec=spec)]
    changes = []
    if fixed:
        changes.append(Change(NAME, Action.REPORT, spec.kind, spec.name, group.id, tuple(fixed),
                              note="a parameter group's family and description cannot change: once no instance uses it, "
                                   "delete it and `awsprac up` creates it again"))
        if not ctx.owns(group):
            return changes  # not what awsprac would make: not adopted either
    return changes + update(ctx, NAME, group, [], spec)


def wrong_group_blocks_create(ctx: Context, spec: ParameterGroupSpec, have: Observed) -> str | None:
    """Why the instance must not be created yet: its parameter group is of another family and is not
    awsprac's to replace."""
    group = have.parameter_group
    if group is None or _replaceable(ctx, group, have):
        return None
    current, wanted = group.raw.get("DBParameterGroupFamily"), _wanted_family(ctx, have.engine)
    if current == wanted:
        return None
    return (f"not created: its parameter group {spec.name} is of family {current}, not {wanted}, and is not tagged as this env's: "
            "delete that group (it is not this env's, so awsprac does not replace it) and run `awsprac up` again")


def current_sg_id(ctx: Context) -> str:
    name = desired(ctx.cfg)[0].name
    have = ctx.observed[NAME]
    if have.sg is not None:
        return have.sg.id
    made = ctx.made.get(("security group", name))
    if made:
        return made
    # Read now, not taken from the look before apply (its shared reads are from before this apply).
    found = lookup.find_by_names(ctx.aws.ec2, lookup.SECURITY_GROUP, [name], ctx.observed["vpc"].id).get(name)
    if found is None:
        raise AwspracError(f"security group {name} is missing: run `awsprac up --env {ctx.cfg.env}` again")
    return found.id


def apply_sg(ctx: Context, change: Change) -> None:
    ec2, spec = ctx.aws.ec2, change.spec
    if change.action is Action.CREATE:
        ctx.made[(spec.kind, spec.name)] = ec2.create_security_group(
            GroupName=spec.name, Description=spec.description, VpcId=ctx.observed["vpc"].id,
            TagSpecifications=tags.specification("security-group", ctx.tags(spec.name)),
        )["GroupId"]  # a new group allows all outbound traffic and no inbound (step db-ingress adds its rules)
        return
    sg = ctx.observed[NAME].sg
    retag(ctx, sg)
    if not any(_is_all_out(r) for r in sg.raw.get("IpPermissionsEgress", [])):
        try:
            ec2.authorize_security_group_egress(GroupId=sg.id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "InvalidPermission.Duplicate":
                raise
    if ctx.options.prune:
        inbound = ingress.unmanaged(ctx.cfg, sg.raw.get("IpPermissions", []), ctx.observed[NAME].peers)
        if inbound:
            ec2.revoke_security_group_ingress(GroupId=sg.id, IpPermissions=[_strip(r) for r in inbound])
        extra = _extra_egress(sg.raw.get("IpPermissionsEgress", []))
        if extra:
            ec2.revoke_security_group_egress(GroupId=sg.id, IpPermissions=[_strip(r) for r in extra])


def _strip(rule: dict) -> dict:
    # Describe answers carry fields a revoke does not take (empty lists are fine, UserId is not).
    out = {k: v for k, v in rule.items() if k in ("IpProtocol", "FromPort", "ToPort", "IpRanges", "Ipv6Ranges", "PrefixListIds") and v != []}
    pairs = [{k: v for k, v in p.items() if k in ("GroupId", "Description")} for p in rule.get("UserIdGroupPairs", [])]
    if pairs:
        out["UserIdGroupPairs"] = pairs
    return out


def retag_rds(ctx: Context, found: Found, arn: str) -> None:
    add_missing_tags(ctx, found.tags, found.name, lambda tag_list: rds_client(ctx).add_tags_to_resource(ResourceName=arn, Tags=tag_list))


def apply_subnet_group(ctx: Context, change: Change) -> None:
    rds, spec = rds_client(ctx), change.spec
    subnet_ids = _private_subnet_ids(ctx, spec)
    if None in subnet_ids:
        raise AwspracError(f"the private subnets {', '.join(spec.subnet_names)} must exist first: run `awsprac up --env {ctx.cfg.env}`")
    if change.action is Action.CREATE:
        try:
            rds.create_db_subnet_group(
                DBSubnetGroupName=spec.name, DBSubnetGroupDescription=spec.description, SubnetIds=subnet_ids,
                Tags=tags.as_list(ctx.tags(spec.name)),
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "DBSubnetGroupAlreadyExists":  # a retried create that had worked
                raise
        return
    group = read_on_its_own(ctx, ctx.observed[NAME].subnet_group)
    retag_rds(ctx, group, group.raw["DBSubnetGroupArn"])
    have_ids = sorted(s["SubnetIdentifier"] for s in group.raw.get("Subnets", []))
    if have_ids != sorted(subnet_ids) or group.raw.get("DBSubnetGroupDescription") != spec.description:
        rds.modify_db_subnet_group(DBSubnetGroupName=spec.name, DBSubnetGroupDescription=spec.description, SubnetIds=subnet_ids)


def apply_parameter_group(ctx: Context, change: Change) -> None:
    rds, spec = rds_client(ctx), change.spec
    # An update of the family or description is a replacement (parameter_group_changes says when).
    replace = change.action is Action.UPDATE and any(f.field in ("family", "description") for f in change.fields)
    if replace:
        waiting.retry_on(lambda e: error_code(e) == "InvalidDBParameterGroupState",
                         lambda: gone_is_fine(rds.delete_db_parameter_group, DBParameterGroupName=change.id),
                         GROUP_DELETE_WAIT, ctx.report, f"deleting DB parameter group {change.name} to make it again")
    if change.action is Action.CREATE or replace:
        family = ctx.observed[NAME].engine.family
        try:
            rds.create_db_parameter_group(
                DBParameterGroupName=spec.name, DBParameterGroupFamily=family, Description=spec.description,
                Tags=tags.as_list(ctx.tags(spec.name)),
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "DBParameterGroupAlreadyExists":
                raise
        return
    group = read_on_its_own(ctx, ctx.observed[NAME].parameter_group)
    retag_rds(ctx, group, group.raw["DBParameterGroupArn"])


def read_on_its_own(ctx: Context, group: Found | None) -> Found | None:
    """A group known from the instance's description, read on its own: before a change to it (its ARN
    and tags are not in that description), and before a delete (whose it is decides)."""
    if group is None or not group.raw.get(INFERRED):
        return group
    return find_group(ctx, group.kind, group.name)
