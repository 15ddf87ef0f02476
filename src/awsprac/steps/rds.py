"""Step `rds`: the database's security group, DB subnet group, DB parameter group and the PostgreSQL
instance itself, with every setting of SPEC section 5.

- The engine version is resolved from AWS (the default minor of the configured major) when the instance
  is created, and afterwards compared by major only: automatic minor upgrades are not drift.
- The master password is read from the secret the `secrets` step made first; once the instance has an
  endpoint, `DB_HOST` is written into that secret.
- Drift that RDS can change in place is fixed by `up`: at once, or (`database.apply_immediately = false`,
  prd's default) at the next maintenance window unless `--apply-immediately`; values AWS has queued for
  the window (PendingModifiedValues) count as done. Drift it cannot change (encryption, subnet group,
  AZ, ...) is reported with what it would take.
- Creating and waiting are separate: a create returns at once and the wait polls with a live status
  line for up to DB_WAIT seconds; a wait that runs out leaves the instance alone, and a re-run sees
  it still `creating` and picks up the waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import botocore.exceptions

from awsprac import batched, dbsecret, dbsgrules, lookup, tags, waiting
from awsprac.aws import error_code, is_not_found, translate
from awsprac.config import EnvConfig
from awsprac.context import Context
from awsprac.dag import concurrently
from awsprac.errors import AwspracError
from awsprac.lookup import Found
from awsprac.plan import Action, Change, FieldDiff
from awsprac.rdsinstance import (
    BROKEN, DB_WAIT, DELETABLE, MODIFIABLE, POLL, STOPPED, USABLE, DbSpec, EngineDefault,
    create_fields, create_params, drift, engine_default, find_db, snapshot_id, unfixable, wait_for_db, wait_modified,
)
from awsprac.rdsinstance import client as rds_client
from awsprac.reconcile import applying, delete_change, gone_is_fine, retag, update

NAME = "rds"
REQUIRES = ("vpc", "subnets", "secrets")
# The three groups at once, then the instance that uses them (on destroy: the instance, then the groups at once).
OBSERVES_AFTER = ("vpc",)  # observe() needs the VPC's id; the secret and the instance it shares with step secrets
CHANGES_AFTER = {"DB instance": ("security group", "DB subnet group", "DB parameter group")}

RULE = "security group rule"
DESCRIPTION = "Managed by Terraform"  # what the guide's console screens leave; SPEC keeps it
GROUP_DELETE_WAIT = 5 * 60  # a subnet/parameter group stays "in use" briefly after its instance is gone
SG_DELETE_WAIT = 20 * 60  # the instance's network interfaces linger for minutes and hold the group


@dataclass(frozen=True)
class SgSpec:
    name: str
    description: str = DESCRIPTION
    kind: str = "security group"


@dataclass(frozen=True)
class SubnetGroupSpec:
    name: str
    subnet_names: tuple[str, ...]
    description: str = DESCRIPTION
    kind: str = "DB subnet group"


@dataclass(frozen=True)
class ParameterGroupSpec:
    name: str
    description: str = DESCRIPTION
    kind: str = "DB parameter group"


@dataclass(frozen=True)
class Observed:
    sg: Found | None
    subnet_group: Found | None
    parameter_group: Found | None
    db: Found | None
    engine: EngineDefault | None = None
    secret: dbsecret.SecretState | None = None  # read fresh: this step writes DB_HOST into it
    peers: dict = field(default_factory=dict)  # {name: Found}: the groups the DB's group lets in (dbsgrules)

    @property
    def ready(self) -> bool:
        return self.db is not None and self.db.state != "deleting"

    def resources(self) -> list[Found]:
        return [f for f in (self.sg, self.subnet_group, self.parameter_group, self.db) if f is not None]

    def outputs(self) -> dict:
        out: dict = {}
        if self.sg:
            out["db_security_group_id"] = self.sg.id
        if self.db:
            endpoint = self.db.raw.get("Endpoint") or {}
            out.update({"db_instance_id": self.db.id, "db_status": self.db.state})
            if endpoint.get("Address"):
                out.update({"db_endpoint": endpoint["Address"], "db_port": endpoint.get("Port")})
        return out


def db_name(cfg: EnvConfig) -> str:
    return cfg.name("{project}-{env}")


def find(ctx: Context) -> dict | None:
    """This env's instance, as AWS describes it, or None."""
    return find_db(ctx, db_name(ctx.cfg))


def db_as_seen(ctx: Context) -> dict | None:
    """The instance as this look at the env saw it: read once, for step secrets and this step."""
    return ctx.reads.once("db instance", lambda: find(ctx))


def desired(cfg: EnvConfig) -> list:
    from awsprac.steps import subnets

    private = tuple(s.name for s in subnets.desired(cfg) if s.tier == "private")
    sg = SgSpec(cfg.name("{project}-db-{env}"))
    subnet_group = SubnetGroupSpec(cfg.name("{project}-db-subnet-group-{env}"), private)
    parameter_group = ParameterGroupSpec(cfg.name("{project}-db-parameter-group-{env}"))
    db = DbSpec(db_name(cfg), sg.name, subnet_group.name, parameter_group.name, dbsecret.secret_name(cfg))
    return [sg, subnet_group, parameter_group, db]


# --- looking things up (read-only) ---


def _rds_tags(ctx: Context, arn: str) -> dict[str, str]:
    return tags.as_dict(rds_client(ctx).list_tags_for_resource(ResourceName=arn).get("TagList"))


def _find_group(ctx: Context, kind: str, name: str) -> Found | None:
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
            return _rds_tags(ctx, arn) if arn else None
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


def _find_sg(ctx: Context, name: str, vpc_id: str | None) -> Found | None:
    # One read with step nat's group (a console-made group may have its group name and no Name tag).
    return batched.security_groups(ctx, vpc_id, [name]).get(name)


def observe(ctx: Context) -> Observed:
    sg_spec, sng_spec, pg_spec, db_spec = desired(ctx.cfg)
    vpc_id = ctx.observed["vpc"].id
    earlier = ctx.observed.get(NAME)

    def engine() -> EngineDefault:
        # The default does not change during a run: asked once.
        return earlier.engine if earlier is not None and earlier.engine is not None else engine_default(ctx)

    def the_rest() -> tuple:
        if earlier is not None and earlier.db is None:
            # Looking again in a run that found no instance: still none, most likely; all reads at once.
            return tuple(concurrently(
                lambda: _find_sg(ctx, sg_spec.name, vpc_id), lambda: db_as_seen(ctx),
                lambda: _find_group(ctx, sng_spec.kind, sng_spec.name), lambda: _find_group(ctx, pg_spec.kind, pg_spec.name),
                engine,
            ))
        sg, raw = concurrently(lambda: _find_sg(ctx, sg_spec.name, vpc_id), lambda: db_as_seen(ctx))
        # The instance's description carries its groups: read them on their own only when it does not use ours.
        # AWS's default version only matters to what is still to be created: a converged run skips the read.
        subnet_group, parameter_group, default = concurrently(
            lambda: _used_subnet_group(ctx, raw, sng_spec) or _find_group(ctx, sng_spec.kind, sng_spec.name),
            lambda: _used_parameter_group(ctx, raw, pg_spec) or _find_group(ctx, pg_spec.kind, pg_spec.name),
            lambda: engine() if raw is None else None,
        )
        return sg, raw, subnet_group, parameter_group, default

    # The secret as step secrets saw it in this look (a look after a write reads it again).
    (sg, raw, subnet_group, parameter_group, default), secret_state = concurrently(the_rest, lambda: dbsecret.as_seen(ctx))
    db = None
    if raw is not None:
        db = Found(db_spec.kind, db_spec.name, raw["DBInstanceIdentifier"], raw.get("DBInstanceStatus", ""), tags.as_dict(raw.get("TagList")), raw)
    # AWS's default version matters only to what is still to be made (asked above when that was likely).
    default = (default or engine()) if db is None or parameter_group is None else None
    # The groups the DB's group lets in: from the same read of the VPC's groups as the DB's own.
    return Observed(sg, subnet_group, parameter_group, db, default, secret_state, dbsgrules.peers(ctx, vpc_id))


def _owned_db(ctx: Context, raw: dict | None) -> bool:
    return raw is not None and tags.is_owned(tags.as_dict(raw.get("TagList")), ctx.cfg.project, ctx.cfg.env)


# A group this env's instance uses is known from the instance's description. It is this env's: it was
# made, or adopted, before the instance that uses it. A destroy still reads its tags before deleting it.
INFERRED = "awsprac:from-instance"


def _used_subnet_group(ctx: Context, raw: dict | None, spec: SubnetGroupSpec) -> Found | None:
    group = (raw or {}).get("DBSubnetGroup") or {}
    if not _owned_db(ctx, raw) or group.get("DBSubnetGroupName") != spec.name:
        return None
    return Found(spec.kind, spec.name, spec.name, group.get("SubnetGroupStatus", "exists"), ctx.tags(spec.name), {**group, INFERRED: True})


def _used_parameter_group(ctx: Context, raw: dict | None, spec: ParameterGroupSpec) -> Found | None:
    used = [g for g in (raw or {}).get("DBParameterGroups", []) if g.get("DBParameterGroupName") == spec.name]
    if not _owned_db(ctx, raw) or not used:
        return None
    # An instance only uses a group of its engine's family: postgres<major>.
    family = f"{raw.get('Engine')}{str(raw.get('EngineVersion', '')).split('.')[0]}"
    item = {"DBParameterGroupName": spec.name, "DBParameterGroupFamily": family, INFERRED: True}
    return Found(spec.kind, spec.name, spec.name, "exists", ctx.tags(spec.name), item)


# --- comparing (pure, given what was observed) ---


def diff(ctx: Context, want: list, have: Observed) -> list[Change]:
    sg_spec, sng_spec, pg_spec, db_spec = want
    return (
        _sg_changes(ctx, sg_spec, have.sg, have.peers)
        + _subnet_group_changes(ctx, sng_spec, have.subnet_group)
        + _parameter_group_changes(ctx, pg_spec, have.parameter_group, have.engine)
        + _db_changes(ctx, db_spec, have)
    )


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


def _sg_changes(ctx: Context, spec: SgSpec, sg: Found | None, peers: dict) -> list[Change]:
    if sg is None:
        fields = (FieldDiff("description", None, spec.description), dbsgrules.field(ctx.cfg, None, peers, dbsgrules.coming(ctx)), FieldDiff("outbound", None, ALL_OUT))
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=fields, spec=spec)]
    changes: list[Change] = []
    if sg.raw.get("Description") != spec.description:
        changes.append(Change(NAME, Action.REPORT, spec.kind, spec.name, sg.id, (FieldDiff("description", sg.raw.get("Description"), spec.description),),
                              note="a security group's description cannot change: recreate it once the database no longer uses it"))
    fields = []
    rules = dbsgrules.field(ctx.cfg, sg.raw.get("IpPermissions", []), peers, dbsgrules.coming(ctx))
    if rules is not None:
        fields.append(rules)
    inbound = list(dbsgrules.gaps(ctx.cfg, sg.raw.get("IpPermissions", []), peers).others)
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


def _subnet_group_changes(ctx: Context, spec: SubnetGroupSpec, group: Found | None) -> list[Change]:
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


def _parameter_group_changes(ctx: Context, spec: ParameterGroupSpec, group: Found | None, engine: EngineDefault | None) -> list[Change]:
    if group is None:
        fields = (FieldDiff("description", None, spec.description), FieldDiff("family", None, f"{engine.family} (from {ctx.cfg.database.engine} {engine.version})"))
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=fields, spec=spec)]
    # PostgreSQL's families are postgres<major>: an existing group is checked without asking AWS.
    family = engine.family if engine else f"{ctx.cfg.database.engine}{ctx.cfg.database.engine_major}"
    fixed = [
        FieldDiff(label, current, wanted)
        for label, current, wanted in (("family", group.raw.get("DBParameterGroupFamily"), family), ("description", group.raw.get("Description", spec.description), spec.description))
        if current != wanted
    ]
    changes = []
    if fixed:
        changes.append(Change(NAME, Action.REPORT, spec.kind, spec.name, group.id, tuple(fixed),
                              note="a parameter group's family and description cannot change: once no instance uses it, "
                                   "delete it and `awsprac up` creates it again"))
    return changes + update(ctx, NAME, group, [], spec)


def _apply_now(ctx: Context) -> bool:
    return ctx.cfg.database.apply_immediately or ctx.options.apply_immediately


def _when(ctx: Context, db: dict) -> str:
    if _apply_now(ctx):
        why = "--apply-immediately" if ctx.options.apply_immediately and not ctx.cfg.database.apply_immediately else "database.apply_immediately"
        return f"applied now ({why})"
    window = db.get("PreferredMaintenanceWindow", "?")
    return f"applied at the next maintenance window ({window} UTC); `up --apply-immediately` applies now"


def _sg_id(ctx: Context, have: Observed) -> str | None:
    return have.sg.id if have.sg else None


def _db_changes(ctx: Context, spec: DbSpec, have: Observed) -> list[Change]:
    db = have.db
    if db is None:
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=tuple(create_fields(ctx.cfg, spec, have.engine)), spec=spec)]
    raw, status = db.raw, db.state
    if status == "deleting":
        return [Change(NAME, Action.REPORT, spec.kind, spec.name, db.id, (FieldDiff("status", status, "available"),),
                       note="it is being deleted: run `awsprac up` again once it is gone (`awsprac status` shows it)")]
    if have.secret is None:
        raise dbsecret.SecretMissing(dbsecret.missing_message(ctx.cfg, spec.name, "is missing"))
    if status in BROKEN:
        return [Change(NAME, Action.REPORT, spec.kind, spec.name, db.id, (FieldDiff("status", status, "available"),),
                       note="AWS reports it broken: its events in the RDS console say why; fix that, then run `awsprac up` again")]
    changes = []
    fixed, remedies = unfixable(ctx.cfg, spec, raw)
    if fixed:
        changes.append(Change(NAME, Action.REPORT, spec.kind, spec.name, db.id, tuple(fixed), note="; ".join(remedies)))
    fields: list[FieldDiff] = []
    settings = drift(ctx.cfg, spec, raw, _sg_id(ctx, have))
    if settings and status in STOPPED:
        changes.append(Change(NAME, Action.REPORT, spec.kind, spec.name, db.id, tuple(FieldDiff(s.label, s.current, s.wanted) for s in settings),
                              note=f"it is {status}, and a stopped instance cannot be modified: start it "
                                   f"(`aws rds start-db-instance --db-instance-identifier {spec.name}`), then `awsprac up`"))
        settings = []
    if status not in USABLE and status not in STOPPED:
        fields.append(FieldDiff("status", status, "available (waits for it)"))
    fields += [FieldDiff(s.label, s.current, s.wanted) for s in settings]
    host = (raw.get("Endpoint") or {}).get("Address")
    secret_host = have.secret.values.get("DB_HOST") if have.secret.readable else None
    if host is None or secret_host != host:
        fields.append(FieldDiff(f"secret {spec.secret} DB_HOST", secret_host or None, host or "(the endpoint, once there is one)"))
    update_changes = update(ctx, NAME, db, fields, spec)
    if settings and update_changes:
        update_changes = [_with_note(update_changes[0], _when(ctx, raw))]
    return changes + update_changes


def _with_note(change: Change, note: str) -> Change:
    from dataclasses import replace

    return replace(change, note=note)


# --- carrying it out ---


def apply(ctx: Context, change: Change) -> None:
    with applying(change):
        if change.action is Action.DELETE:
            _delete(ctx, change)
        elif change.kind == "security group":
            _apply_sg(ctx, change)
        elif change.kind == "DB subnet group":
            _apply_subnet_group(ctx, change)
        elif change.kind == "DB parameter group":
            _apply_parameter_group(ctx, change)
        elif change.action is Action.CREATE:
            _create_db(ctx, change.spec)
        else:
            _update_db(ctx, change.spec)


def _current_sg_id(ctx: Context) -> str:
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


def _apply_sg(ctx: Context, change: Change) -> None:
    ec2, spec = ctx.aws.ec2, change.spec
    if change.action is Action.CREATE:
        group_id = ctx.made[(spec.kind, spec.name)] = ec2.create_security_group(
            GroupName=spec.name, Description=spec.description, VpcId=ctx.observed["vpc"].id,
            TagSpecifications=tags.specification("security-group", ctx.tags(spec.name)),
        )["GroupId"]  # a new group allows all outbound traffic and no inbound
        dbsgrules.reconcile(ctx, group_id, [], ctx.observed["vpc"].id)
        return
    sg = ctx.observed[NAME].sg
    retag(ctx, sg)
    dbsgrules.reconcile(ctx, sg.id, sg.raw.get("IpPermissions", []), ctx.observed["vpc"].id)
    if not any(_is_all_out(r) for r in sg.raw.get("IpPermissionsEgress", [])):
        try:
            ec2.authorize_security_group_egress(GroupId=sg.id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "InvalidPermission.Duplicate":
                raise
    if ctx.options.prune:
        inbound = list(dbsgrules.gaps(ctx.cfg, sg.raw.get("IpPermissions", []), ctx.observed[NAME].peers).others)
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


def _retag_rds(ctx: Context, found: Found, arn: str) -> None:
    add = tags.missing(found.tags, ctx.tags(found.name))
    if add:
        rds_client(ctx).add_tags_to_resource(ResourceName=arn, Tags=tags.as_list(add))


def _apply_subnet_group(ctx: Context, change: Change) -> None:
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
    _retag_rds(ctx, group, group.raw["DBSubnetGroupArn"])
    have_ids = sorted(s["SubnetIdentifier"] for s in group.raw.get("Subnets", []))
    if have_ids != sorted(subnet_ids) or group.raw.get("DBSubnetGroupDescription") != spec.description:
        rds.modify_db_subnet_group(DBSubnetGroupName=spec.name, DBSubnetGroupDescription=spec.description, SubnetIds=subnet_ids)


def _apply_parameter_group(ctx: Context, change: Change) -> None:
    rds, spec = rds_client(ctx), change.spec
    if change.action is Action.CREATE:
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
    _retag_rds(ctx, group, group.raw["DBParameterGroupArn"])


def _usable_secret(ctx: Context) -> dbsecret.SecretState | None:
    """The master's secret: rds-master-{env} once `db create-app-user` made it; else rds-main-{env} as this
    step's observation just read it (nothing wrote it since), else read now."""
    master = dbsecret.master_state(ctx)
    if master is not None:
        return master
    secret = ctx.observed[NAME].secret
    if secret is None or secret.pending_deletion or not secret.readable or secret.password is None:
        secret = dbsecret.find(ctx)
    return secret


def _create_db(ctx: Context, spec: DbSpec) -> None:
    have: Observed = ctx.observed[NAME]
    secret = _usable_secret(ctx)
    if secret is None or secret.pending_deletion or secret.password is None:
        raise AwspracError(
            f"secret {spec.secret} holds no usable password yet: run `awsprac step secrets --env {ctx.cfg.env}` first"
        )
    params = create_params(ctx, spec, have.engine, _current_sg_id(ctx))
    try:
        rds_client(ctx).create_db_instance(MasterUserPassword=secret.password.reveal(), **params)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "DBInstanceAlreadyExists":  # a retried create that had worked: wait for it
            raise
    ctx.report.info(f"DB instance {spec.name} is being created: on AWS this takes 5-20 minutes")
    db = wait_for_db(ctx, spec.name, USABLE, "becoming available")
    write_host(ctx, spec, db)


def _update_db(ctx: Context, spec: DbSpec) -> None:
    have: Observed = ctx.observed[NAME]
    db = have.db.raw
    rds = rds_client(ctx)
    _retag_rds(ctx, have.db, db["DBInstanceArn"])
    sg_id = have.sg.id if have.sg else _current_sg_id(ctx)
    if db.get("DBInstanceStatus") not in STOPPED and drift(ctx.cfg, spec, db, sg_id):
        if db.get("DBInstanceStatus") not in MODIFIABLE:
            db = wait_for_db(ctx, spec.name, MODIFIABLE, "becoming available before it is modified")
        settings = drift(ctx.cfg, spec, db, sg_id)
        if settings:
            modify: dict = {}
            for s in settings:
                modify.update(s.modify)
            now = _apply_now(ctx)
            rds.modify_db_instance(DBInstanceIdentifier=spec.name, ApplyImmediately=now, **modify)
            ctx.report.info(f"DB instance {spec.name}: {', '.join(s.label for s in settings)} {_when(ctx, db)}")
            # Even when deferred, some settings (backup window, deletion protection, ...) apply at once, in the background.
            db = wait_modified(ctx, spec, sg_id, count_pending=not now)
    if db.get("DBInstanceStatus") not in USABLE and db.get("DBInstanceStatus") not in STOPPED:
        db = wait_for_db(ctx, spec.name, USABLE, "becoming available")
    write_host(ctx, spec, db)


def write_host(ctx: Context, spec: DbSpec, db: dict) -> None:
    """DB_HOST := the endpoint, in a new secret version only when it differs. The secret is read now: the
    instance's wait took minutes, and a value edited meanwhile must not be written back over."""
    host = (db.get("Endpoint") or {}).get("Address")
    if not host:
        return
    secret = dbsecret.find(ctx)
    if secret is None or secret.pending_deletion or not secret.readable or secret.password is None:
        raise dbsecret.SecretMissing(dbsecret.missing_message(ctx.cfg, spec.name, "is missing or unusable"))
    if secret.values.get("DB_HOST") == host:
        return
    values = dict(secret.values)
    values["DB_HOST"] = host
    dbsecret.put(ctx, secret, values, secret.password, "db-host")
    ctx.report.debug(f"secret {spec.secret}: DB_HOST = {host}")
    dbsecret.master_host(ctx, host)


# --- tearing down ---


def db_stays(ctx: Context) -> str | None:
    """Why destroy leaves the instance in place (then its groups and secret stay too), or None."""
    have = ctx.observed.get(NAME)
    if have is None or have.db is None:
        return None
    if not ctx.owns(have.db):
        return f"not tagged {tags.ENV_KEY}={ctx.cfg.env}"
    if have.db.raw.get("DeletionProtection") and not ctx.options.force:
        return "deletion protection is on"
    return None


def teardown(ctx: Context, have: Observed) -> list[Change]:
    changes: list[Change] = []
    db = have.db
    stays = db_stays(ctx)
    if db is not None:
        if not ctx.owns(db):
            changes += delete_change(NAME, db, ctx)
        elif stays:
            changes.append(Change(NAME, Action.REPORT, db.kind, db.name, db.id, note=(
                f"kept: deletion protection is on; `awsprac destroy --env {ctx.cfg.env} --force` turns it off and deletes it")))
        else:
            notes = []
            if db.state == "deleting":
                notes.append("already being deleted: waits until it is gone")
            else:
                if db.raw.get("DeletionProtection"):
                    notes.append("turns deletion protection off first (--force)")
                if ctx.options.skip_final_snapshot:
                    notes.append("no final snapshot (--skip-final-snapshot): its data is gone for good")
                else:
                    notes.append(f"final snapshot {db.name}-final-<UTC time> first (--skip-final-snapshot: none)")
            changes.append(Change(NAME, Action.DELETE, db.kind, db.name, db.id, note="; ".join(notes)))
    if have.sg is not None and ctx.owns(have.sg) and not stays:
        # First, at the same time as the instance's delete: a rule naming another group (the NAT's) keeps
        # that group from being deleted, and the DB's own group goes only minutes after the instance.
        for source_id, source, description in dbsgrules.revokes(ctx.cfg, have.sg.raw.get("IpPermissions", []), have.peers):
            changes.append(Change(NAME, Action.DELETE, RULE, f"{have.sg.name} from {source}", have.sg.id, spec=(source_id, description),
                                  note=f"tcp {ctx.cfg.database.port} from {source}"))
    for found in (read_on_its_own(ctx, have.subnet_group), read_on_its_own(ctx, have.parameter_group), have.sg):
        if found is not None and stays and ctx.owns(found):
            changes.append(Change(NAME, Action.REPORT, found.kind, found.name, found.id, note=f"kept: DB instance {db.name} stays and may use it"))
        else:
            changes += delete_change(NAME, found, ctx)
    return changes


def read_on_its_own(ctx: Context, group: Found | None) -> Found | None:
    """A group known from the instance's description, read on its own: before a change to it (its ARN
    and tags are not in that description), and before a delete (whose it is decides)."""
    if group is None or not group.raw.get(INFERRED):
        return group
    return _find_group(ctx, group.kind, group.name)


def _delete(ctx: Context, change: Change) -> None:
    rds = rds_client(ctx)
    if change.kind == "DB instance":
        _delete_db(ctx, change)
    elif change.kind == RULE:
        dbsgrules.revoke(ctx, change.id, change.spec)
    elif change.kind == "DB subnet group":
        waiting.retry_on(lambda e: error_code(e) == "InvalidDBSubnetGroupStateFault",
                         lambda: gone_is_fine(rds.delete_db_subnet_group, DBSubnetGroupName=change.id),
                         GROUP_DELETE_WAIT, ctx.report, f"deleting DB subnet group {change.name}")
    elif change.kind == "DB parameter group":
        waiting.retry_on(lambda e: error_code(e) == "InvalidDBParameterGroupState",
                         lambda: gone_is_fine(rds.delete_db_parameter_group, DBParameterGroupName=change.id),
                         GROUP_DELETE_WAIT, ctx.report, f"deleting DB parameter group {change.name}")
    else:
        # The instance's network interfaces outlive it by minutes and keep the group "in use".
        waiting.retry_on(lambda e: error_code(e) == "DependencyViolation",
                         lambda: gone_is_fine(ctx.aws.ec2.delete_security_group, GroupId=change.id),
                         SG_DELETE_WAIT, ctx.report, f"deleting security group {change.name}")


BUSY_RETRY = 900.0  # seconds: a backup or a modification finishing


def _delete_db(ctx: Context, change: Change) -> None:
    rds = rds_client(ctx)
    db = find_db(ctx, change.id)
    if db is None:
        return
    if db.get("DBInstanceStatus") != "deleting":
        if db.get("DBInstanceStatus") not in DELETABLE | BROKEN:
            # AWS refuses to delete while creating, modifying, starting, stopping, ... (InvalidDBInstanceState).
            db = wait_for_db(ctx, change.id, DELETABLE, "settling before it is deleted")
        if db.get("DeletionProtection"):
            rds.modify_db_instance(DBInstanceIdentifier=change.id, DeletionProtection=False, ApplyImmediately=True)
        # The state can still move (a backup starting) between that look and the delete: AWS then answers
        # InvalidDBInstanceState, which passes once the instance settles. Retried for that code only.
        def settled(call):
            return waiting.retry_on(lambda e: error_code(e) == "InvalidDBInstanceState", call, BUSY_RETRY, ctx.report,
                                    f"deleting DB instance {change.id}", first_delay=15, max_delay=60)

        if ctx.options.skip_final_snapshot:
            settled(lambda: gone_is_fine(rds.delete_db_instance, DBInstanceIdentifier=change.id, SkipFinalSnapshot=True))
        else:
            snapshot = snapshot_id(change.id)
            settled(lambda: gone_is_fine(rds.delete_db_instance, DBInstanceIdentifier=change.id, SkipFinalSnapshot=False, FinalDBSnapshotIdentifier=snapshot))
            ctx.report.info(
                f"final snapshot {snapshot} of DB instance {change.id} is being taken (it is kept, and billed, until you delete it; "
                f"`aws rds restore-db-instance-from-db-snapshot --db-snapshot-identifier {snapshot} ...` brings the data back)"
            )

    def gone() -> tuple[bool, str]:
        current = find_db(ctx, change.id)
        return current is None, current.get("DBInstanceStatus", "") if current else "deleted"

    waiting.wait_for(ctx.report, f"DB instance {change.id} being deleted", gone, timeout=DB_WAIT, interval=POLL)
