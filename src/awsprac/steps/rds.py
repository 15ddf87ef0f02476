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

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import botocore.exceptions
import botocore.parsers

from awsprac import dbsecret, lookup, tags, waiting
from awsprac.aws import error_code, is_not_found, translate
from awsprac.config import EnvConfig
from awsprac.context import Context
from awsprac.errors import AwspracError
from awsprac.lookup import Found
from awsprac.plan import Action, Change, FieldDiff
from awsprac.reconcile import applying, delete_change, gone_is_fine, retag, update

NAME = "rds"
REQUIRES = ("vpc", "subnets", "secrets")

DESCRIPTION = "Managed by Terraform"  # what the guide's console screens leave; SPEC keeps it
DB_WAIT = 45 * 60  # creation takes 5-17 minutes on AWS, deletion about as long: a generous budget
POLL = 15.0
GROUP_DELETE_WAIT = 5 * 60  # a subnet/parameter group stays "in use" briefly after its instance is gone
SG_DELETE_WAIT = 20 * 60  # the instance's network interfaces linger for minutes and hold the group

USABLE = frozenset({"available", "backing-up", "storage-optimization"})  # has an endpoint, takes connections
MODIFIABLE = frozenset({"available", "storage-optimization"})
STOPPED = frozenset({"stopped", "stopping"})
DELETABLE = USABLE | {"stopped"}
BROKEN = frozenset({
    "failed", "incompatible-network", "incompatible-option-group", "incompatible-parameters",
    "incompatible-restore", "incompatible-credentials", "inaccessible-encryption-credentials",
    "inaccessible-encryption-credentials-recoverable", "restore-error", "storage-full", "insufficient-capacity",
})
# Any other status (creating, modifying, rebooting, starting, upgrading, configuring-*, ...) is a
# transition: wait for it to end.

# Errors that mean "the API is not there": an emulation (moto) without DescribeDBEngineVersions.
ENGINE_LOOKUP_UNAVAILABLE = ("InvalidAction", "NotImplemented", "InternalFailure")


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
class DbSpec:
    name: str
    sg: str
    subnet_group: str
    parameter_group: str
    secret: str
    kind: str = "DB instance"


@dataclass(frozen=True)
class EngineDefault:
    version: str  # what CreateDBInstance is sent
    family: str  # DBParameterGroupFamily
    source: str  # where it came from, for the plan


@dataclass(frozen=True)
class Observed:
    sg: Found | None
    subnet_group: Found | None
    parameter_group: Found | None
    db: Found | None
    engine: EngineDefault | None = None
    secret: dbsecret.SecretState | None = None  # read fresh: this step writes DB_HOST into it

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


def desired(cfg: EnvConfig) -> list:
    from awsprac.steps import subnets

    private = tuple(s.name for s in subnets.desired(cfg) if s.tier == "private")
    sg = SgSpec(cfg.name("{project}-db-{env}"))
    subnet_group = SubnetGroupSpec(cfg.name("{project}-db-subnet-group-{env}"), private)
    parameter_group = ParameterGroupSpec(cfg.name("{project}-db-parameter-group-{env}"))
    db = DbSpec(db_name(cfg), sg.name, subnet_group.name, parameter_group.name, dbsecret.secret_name(cfg))
    return [sg, subnet_group, parameter_group, db]


# --- looking things up (read-only) ---


def rds_client(ctx: Context):
    return ctx.aws.client("rds")


def find_db(ctx: Context, name: str | None = None) -> dict | None:
    """The instance's description, or None when there is none."""
    name = name or db_name(ctx.cfg)
    with translate("looking up", f"DB instance {name}"):
        try:
            items = rds_client(ctx).describe_db_instances(DBInstanceIdentifier=name)["DBInstances"]
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return None
            raise
    return items[0] if items else None


def _rds_tags(ctx: Context, arn: str) -> dict[str, str]:
    return tags.as_dict(rds_client(ctx).list_tags_for_resource(ResourceName=arn).get("TagList"))


def _find_group(ctx: Context, kind: str, name: str) -> Found | None:
    rds = rds_client(ctx)
    with translate("looking up", f"{kind} {name}"):
        try:
            if kind == "DB subnet group":
                items = rds.describe_db_subnet_groups(DBSubnetGroupName=name)["DBSubnetGroups"]
                arn_key = "DBSubnetGroupArn"
            else:
                items = rds.describe_db_parameter_groups(DBParameterGroupName=name)["DBParameterGroups"]
                arn_key = "DBParameterGroupArn"
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        items = [i for i in items if i.get("DBSubnetGroupName", i.get("DBParameterGroupName")) == name]
        if not items:
            return None
        item = items[0]
        return Found(kind, name, name, item.get("SubnetGroupStatus", "exists"), _rds_tags(ctx, item[arn_key]), item)


def _find_sg(ctx: Context, name: str, vpc_id: str | None) -> Found | None:
    if not vpc_id:
        return None
    ec2 = ctx.aws.ec2
    with translate("looking up", f"security group {name}"):
        found = lookup.find_by_names(ec2, lookup.SECURITY_GROUP, [name], vpc_id).get(name)
        if found is not None:
            return found
        # Made in the console by following the guide: the group *name* is set, the Name tag often not.
        items = ec2.describe_security_groups(Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": [name]},
        ])["SecurityGroups"]
    if not items:
        return None
    item = items[0]
    return Found(lookup.SECURITY_GROUP.kind, name, item["GroupId"], "", tags.as_dict(item.get("Tags")), item)


def engine_default(ctx: Context) -> EngineDefault:
    """AWS's default version of the configured major, and its parameter group family."""
    db = ctx.cfg.database
    try:
        with translate("looking up", f"the default {db.engine} {db.engine_major} version"):
            versions = rds_client(ctx).describe_db_engine_versions(
                Engine=db.engine, EngineVersion=db.engine_major, DefaultOnly=True,
            )["DBEngineVersions"]
    except (NotImplementedError, botocore.parsers.ResponseParserError) as exc:
        return _engine_fallback(ctx, type(exc).__name__)
    except AwspracError as exc:
        if getattr(exc, "code", "") not in ENGINE_LOOKUP_UNAVAILABLE:
            raise
        return _engine_fallback(ctx, exc.code)
    if not versions:
        raise AwspracError(
            f"AWS offers no {db.engine} {db.engine_major} version in {ctx.cfg.region}: "
            f"set database.engine_major in {ctx.cfg.path} to a major version it offers"
        )
    v = versions[0]
    return EngineDefault(v["EngineVersion"], v["DBParameterGroupFamily"], "AWS's default minor")


def _engine_fallback(ctx: Context, why: str) -> EngineDefault:
    # Sending the major alone lets RDS pick its default minor; PostgreSQL's families are postgres<major>.
    db = ctx.cfg.database
    ctx.report.debug(f"DescribeDBEngineVersions unavailable here ({why}): sending engine version {db.engine_major}, family {db.engine}{db.engine_major}")
    return EngineDefault(db.engine_major, f"{db.engine}{db.engine_major}", "major only: RDS picks the default minor")


def observe(ctx: Context) -> Observed:
    sg_spec, sng_spec, pg_spec, db_spec = desired(ctx.cfg)
    sg = _find_sg(ctx, sg_spec.name, ctx.observed["vpc"].id)
    subnet_group = _find_group(ctx, sng_spec.kind, sng_spec.name)
    parameter_group = _find_group(ctx, pg_spec.kind, pg_spec.name)
    raw = find_db(ctx, db_spec.name)
    db = None
    if raw is not None:
        db = Found(db_spec.kind, db_spec.name, raw["DBInstanceIdentifier"], raw.get("DBInstanceStatus", ""), tags.as_dict(raw.get("TagList")), raw)
    return Observed(sg, subnet_group, parameter_group, db, engine_default(ctx), dbsecret.find(ctx))


# --- comparing (pure, given what was observed) ---


def diff(ctx: Context, want: list, have: Observed) -> list[Change]:
    sg_spec, sng_spec, pg_spec, db_spec = want
    return (
        _sg_changes(ctx, sg_spec, have.sg)
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


def _sg_changes(ctx: Context, spec: SgSpec, sg: Found | None) -> list[Change]:
    if sg is None:
        fields = (FieldDiff("description", None, spec.description), FieldDiff("inbound", None, "(none)"), FieldDiff("outbound", None, ALL_OUT))
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=fields, spec=spec)]
    changes: list[Change] = []
    if sg.raw.get("Description") != spec.description:
        changes.append(Change(NAME, Action.REPORT, spec.kind, spec.name, sg.id, (FieldDiff("description", sg.raw.get("Description"), spec.description),),
                              note="a security group's description cannot change: recreate it once the database no longer uses it"))
    fields = []
    inbound = sg.raw.get("IpPermissions", [])
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
                                  note="kept; `awsprac up --prune` removes them (SPEC: no inbound rules until the API server exists)"))
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


def _parameter_group_changes(ctx: Context, spec: ParameterGroupSpec, group: Found | None, engine: EngineDefault) -> list[Change]:
    if group is None:
        fields = (FieldDiff("description", None, spec.description), FieldDiff("family", None, f"{engine.family} (from {ctx.cfg.database.engine} {engine.version})"))
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=fields, spec=spec)]
    fixed = [
        FieldDiff(label, current, wanted)
        for label, current, wanted in (("family", group.raw.get("DBParameterGroupFamily"), engine.family), ("description", group.raw.get("Description"), spec.description))
        if current != wanted
    ]
    changes = []
    if fixed:
        changes.append(Change(NAME, Action.REPORT, spec.kind, spec.name, group.id, tuple(fixed),
                              note="a parameter group's family and description cannot change: once no instance uses it, "
                                   "delete it and `awsprac up` creates it again"))
    return changes + update(ctx, NAME, group, [], spec)


@dataclass(frozen=True)
class Setting:
    """One in-place-modifiable instance setting: where AWS shows it, how ModifyDBInstance takes it."""

    label: str
    current: Any
    wanted: Any
    modify: dict
    pending_key: str = ""  # its PendingModifiedValues key, when AWS can defer it to the window


def _major(version: str) -> str:
    return version.split(".")[0]


def _settings(ctx: Context, db: dict, sg_id: str | None) -> list[Setting]:
    """Every modifiable setting SPEC fixes, against what AWS returned. A setting missing from AWS's
    answer is not compared (moto omits Performance Insights): it could never converge."""
    c, spec = ctx.cfg.database, desired(ctx.cfg)[3]
    out: list[Setting] = []

    def add(label: str, key: str, wanted: Any, modify: dict, pending_key: str = "") -> None:
        if key in db:
            out.append(Setting(label, db[key], wanted, modify, pending_key))

    add("instance class", "DBInstanceClass", c.instance_class, {"DBInstanceClass": c.instance_class}, "DBInstanceClass")
    add("storage type", "StorageType", c.storage_type, {"StorageType": c.storage_type}, "StorageType")
    add("multi-AZ", "MultiAZ", c.multi_az, {"MultiAZ": c.multi_az}, "MultiAZ")
    add("publicly accessible", "PubliclyAccessible", c.publicly_accessible, {"PubliclyAccessible": c.publicly_accessible})
    add("backup retention days", "BackupRetentionPeriod", c.backup_retention_days, {"BackupRetentionPeriod": c.backup_retention_days}, "BackupRetentionPeriod")
    add("backup window", "PreferredBackupWindow", c.backup_window, {"PreferredBackupWindow": c.backup_window})
    add("copy tags to snapshots", "CopyTagsToSnapshot", c.copy_tags_to_snapshot, {"CopyTagsToSnapshot": c.copy_tags_to_snapshot})
    add("auto minor version upgrade", "AutoMinorVersionUpgrade", c.auto_minor_version_upgrade, {"AutoMinorVersionUpgrade": c.auto_minor_version_upgrade})
    add("deletion protection", "DeletionProtection", c.deletion_protection, {"DeletionProtection": c.deletion_protection})
    add("IAM database auth", "IAMDatabaseAuthenticationEnabled", False, {"EnableIAMDatabaseAuthentication": False}, "IAMDatabaseAuthenticationEnabled")
    add("enhanced monitoring interval", "MonitoringInterval", 0, {"MonitoringInterval": 0})
    # Storage grows, never shrinks; with autoscaling on, growth beyond the setting is AWS's doing, not drift.
    allocated = db.get("AllocatedStorage")
    if allocated is not None and allocated < c.allocated_storage:
        out.append(Setting("allocated storage GiB", allocated, c.allocated_storage, {"AllocatedStorage": c.allocated_storage}, "AllocatedStorage"))
    max_wanted = c.max_allocated_storage or None
    if db.get("MaxAllocatedStorage") != max_wanted:  # absent means autoscaling off
        # Autoscaling goes off when the maximum is set to the allocated size.
        out.append(Setting("storage autoscaling max GiB", db.get("MaxAllocatedStorage"), max_wanted,
                           {"MaxAllocatedStorage": max_wanted or allocated or c.allocated_storage}))
    port = (db.get("Endpoint") or {}).get("Port")
    if port is not None:  # DbInstancePort is 0 for many engines on AWS; the endpoint's port is the truth
        out.append(Setting("port", port, c.port, {"DBPortNumber": c.port}, "Port"))
    if "EnabledCloudwatchLogsExports" in db:
        exports = sorted(db.get("EnabledCloudwatchLogsExports") or [])
        out.append(Setting("log exports", ", ".join(exports) or None, None,
                           {"CloudwatchLogsExportConfiguration": {"DisableLogTypes": exports}}, "PendingCloudwatchLogsExports"))
    if "PerformanceInsightsEnabled" in db:
        pi_on = bool(db["PerformanceInsightsEnabled"])
        pi_modify: dict = {"EnablePerformanceInsights": c.performance_insights}
        if c.performance_insights:
            pi_modify["PerformanceInsightsRetentionPeriod"] = c.performance_insights_retention_days
        out.append(Setting("performance insights", pi_on, c.performance_insights, pi_modify))
        if pi_on and c.performance_insights and "PerformanceInsightsRetentionPeriod" in db:
            out.append(Setting("performance insights retention days", db["PerformanceInsightsRetentionPeriod"],
                               c.performance_insights_retention_days, pi_modify))
    groups = sorted(g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", []) if g.get("Status") not in ("removing", "inactive"))
    out.append(Setting("security groups", ", ".join(groups) or None, sg_id or f"(new {spec.sg})", {"VpcSecurityGroupIds": [sg_id]}))
    pgs = [g.get("DBParameterGroupName") for g in db.get("DBParameterGroups", [])]
    out.append(Setting("parameter group", ", ".join(pgs) or None, spec.parameter_group, {"DBParameterGroupName": spec.parameter_group}))
    return out


def drift(ctx: Context, db: dict, sg_id: str | None, count_pending: bool = True) -> list[Setting]:
    """The settings that differ. With count_pending, a value AWS has queued for the maintenance window
    counts as done; without, a queued value is still to come (after an immediate modify)."""
    pending = db.get("PendingModifiedValues") or {}
    result = []
    for s in _settings(ctx, db, sg_id):
        if s.pending_key and s.pending_key in pending:
            if not count_pending:
                result.append(s)
                continue
            if s.pending_key == "PendingCloudwatchLogsExports":
                continue  # log types on their way: awsprac only ever turns them off
            if pending[s.pending_key] != s.wanted:
                result.append(s)
            continue
        if s.current != s.wanted:
            result.append(s)
    return result


def _unfixable(ctx: Context, db: dict, spec: DbSpec) -> tuple[list[FieldDiff], list[str]]:
    c = ctx.cfg.database
    fields, remedies = [], []
    checks = [
        ("engine", db.get("Engine"), c.engine, "a different engine needs a new instance: migrate the data (pg_dump/restore) to a new one"),
        ("engine major", _major(db["EngineVersion"]) if db.get("EngineVersion") else None, c.engine_major,
         f"major upgrades are not done by `up`: `aws rds modify-db-instance --db-instance-identifier {spec.name} --engine-version <{c.engine_major}.x> "
         "--allow-major-version-upgrade --apply-immediately` after testing (a downgrade needs a restore into a new instance)"),
        ("storage encrypted", db.get("StorageEncrypted"), c.storage_encrypted,
         "encryption cannot change in place: snapshot, copy the snapshot with encryption (aws/rds key), restore it as a new instance"),
        ("subnet group", (db.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"), spec.subnet_group,
         f"an instance cannot move to another subnet group in place: snapshot and restore into {spec.subnet_group} (or destroy + up)"),
        ("master user", db.get("MasterUsername"), c.master_username, "the master user name is fixed at creation: a new instance is needed"),
        ("database name", db.get("DBName"), c.db_name, f"the initial database is fixed at creation: `CREATE DATABASE {c.db_name}` by hand, or a new instance"),
    ]
    if not c.multi_az:
        checks.append(("availability zone", db.get("AvailabilityZone"), c.availability_zone,
                       f"a single-AZ instance cannot move: snapshot and restore it in {c.availability_zone} (or turn multi-AZ on, fail over, and off)"))
    allocated = db.get("AllocatedStorage")
    if allocated is not None and allocated > c.allocated_storage and not db.get("MaxAllocatedStorage"):
        checks.append(("allocated storage GiB", allocated, c.allocated_storage, "storage never shrinks: restore a dump into a new, smaller instance"))
    for label, current, wanted, remedy in checks:
        if current is not None and current != wanted:
            fields.append(FieldDiff(label, current, wanted))
            remedies.append(remedy)
    return fields, remedies


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
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=tuple(_create_fields(ctx, spec, have.engine)), spec=spec)]
    raw, status = db.raw, db.state
    if have.secret is None:
        raise dbsecret.SecretMissing(dbsecret.missing_message(ctx.cfg, spec.name, "is missing"))
    if status == "deleting":
        return [Change(NAME, Action.REPORT, spec.kind, spec.name, db.id, (FieldDiff("status", status, "available"),),
                       note="it is being deleted: run `awsprac up` again once it is gone (`awsprac status` shows it)")]
    if status in BROKEN:
        return [Change(NAME, Action.REPORT, spec.kind, spec.name, db.id, (FieldDiff("status", status, "available"),),
                       note="AWS reports it broken: its events in the RDS console say why; fix that, then run `awsprac up` again")]
    changes = []
    fixed, remedies = _unfixable(ctx, raw, spec)
    if fixed:
        changes.append(Change(NAME, Action.REPORT, spec.kind, spec.name, db.id, tuple(fixed), note="; ".join(remedies)))
    fields: list[FieldDiff] = []
    settings = drift(ctx, raw, _sg_id(ctx, have))
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


def _create_fields(ctx: Context, spec: DbSpec, engine: EngineDefault) -> list[FieldDiff]:
    c = ctx.cfg.database
    storage = f"{c.storage_type} {c.allocated_storage} GiB" + (f", autoscaling to {c.max_allocated_storage} GiB" if c.max_allocated_storage else "")
    values = [
        ("engine", f"{c.engine} {engine.version} ({engine.source})"),
        ("instance class", c.instance_class),
        ("storage", storage),
        ("master user", c.master_username),
        ("password", f"from secret {spec.secret} (never shown)"),
        ("placement", f"single-AZ {c.availability_zone}" if not c.multi_az else "multi-AZ"),
        ("subnet group", spec.subnet_group),
        ("publicly accessible", c.publicly_accessible),
        ("security group", spec.sg),
        ("port", c.port),
        ("database", c.db_name),
        ("parameter group", spec.parameter_group),
        ("backups", f"{c.backup_retention_days} day(s), window {c.backup_window} UTC"),
        ("copy tags to snapshots", c.copy_tags_to_snapshot),
        ("encryption", "aws/rds (default key)" if c.storage_encrypted else False),
        ("performance insights", f"{c.performance_insights_retention_days} days" if c.performance_insights else False),
        ("enhanced monitoring", False),
        ("log exports", "(none)"),
        ("auto minor version upgrade", c.auto_minor_version_upgrade),
        ("deletion protection", c.deletion_protection),
        (f"secret {spec.secret} DB_HOST", "the endpoint, once available (5-20 minutes on AWS)"),
    ]
    return [FieldDiff(label, None, value) for label, value in values]


# --- carrying it out ---


def create_params(ctx: Context, spec: DbSpec, engine: EngineDefault, sg_id: str) -> dict:
    """CreateDBInstance's parameters, except the password (added at the last moment)."""
    c = ctx.cfg.database
    params = dict(
        DBInstanceIdentifier=spec.name, Engine=c.engine, EngineVersion=engine.version,
        DBInstanceClass=c.instance_class, StorageType=c.storage_type, AllocatedStorage=c.allocated_storage,
        MasterUsername=c.master_username, DBName=c.db_name, Port=c.port,
        MultiAZ=c.multi_az, DBSubnetGroupName=spec.subnet_group, PubliclyAccessible=c.publicly_accessible,
        VpcSecurityGroupIds=[sg_id], DBParameterGroupName=spec.parameter_group,
        BackupRetentionPeriod=c.backup_retention_days, PreferredBackupWindow=c.backup_window,
        CopyTagsToSnapshot=c.copy_tags_to_snapshot,
        StorageEncrypted=c.storage_encrypted,  # no KmsKeyId: the default aws/rds key
        EnablePerformanceInsights=c.performance_insights,
        MonitoringInterval=0, EnableIAMDatabaseAuthentication=False,
        AutoMinorVersionUpgrade=c.auto_minor_version_upgrade, DeletionProtection=c.deletion_protection,
        Tags=tags.as_list(ctx.tags(spec.name)),
    )
    # gp3 below 400 GiB has fixed IOPS and throughput: sending either is refused. No log exports: none sent.
    if not c.multi_az:
        params["AvailabilityZone"] = c.availability_zone
    if c.max_allocated_storage:
        params["MaxAllocatedStorage"] = c.max_allocated_storage
    if c.performance_insights:
        params["PerformanceInsightsRetentionPeriod"] = c.performance_insights_retention_days
    return params


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
    found = _find_sg(ctx, name, ctx.observed["vpc"].id)
    if found is None:
        raise AwspracError(f"security group {name} is missing: run `awsprac up --env {ctx.cfg.env}` again")
    return found.id


def _apply_sg(ctx: Context, change: Change) -> None:
    ec2, spec = ctx.aws.ec2, change.spec
    if change.action is Action.CREATE:
        ec2.create_security_group(
            GroupName=spec.name, Description=spec.description, VpcId=ctx.observed["vpc"].id,
            TagSpecifications=tags.specification("security-group", ctx.tags(spec.name)),
        )  # a new group allows all outbound traffic and no inbound: exactly SPEC
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
        inbound = sg.raw.get("IpPermissions", [])
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
    group = ctx.observed[NAME].subnet_group
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
    group = ctx.observed[NAME].parameter_group
    _retag_rds(ctx, group, group.raw["DBParameterGroupArn"])


def _create_db(ctx: Context, spec: DbSpec) -> None:
    have: Observed = ctx.observed[NAME]
    secret = dbsecret.find(ctx)
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
    if db.get("DBInstanceStatus") not in STOPPED and drift(ctx, db, sg_id):
        if db.get("DBInstanceStatus") not in MODIFIABLE:
            db = wait_for_db(ctx, spec.name, MODIFIABLE, "becoming available before it is modified")
        settings = drift(ctx, db, sg_id)
        if settings:
            modify: dict = {}
            for s in settings:
                modify.update(s.modify)
            now = _apply_now(ctx)
            rds.modify_db_instance(DBInstanceIdentifier=spec.name, ApplyImmediately=now, **modify)
            ctx.report.info(f"DB instance {spec.name}: {', '.join(s.label for s in settings)} {_when(ctx, db)}")
            # Even when deferred, some settings (backup window, deletion protection, ...) apply at once, in the background.
            db = _wait_modified(ctx, spec, sg_id, count_pending=not now)
    if db.get("DBInstanceStatus") not in USABLE and db.get("DBInstanceStatus") not in STOPPED:
        db = wait_for_db(ctx, spec.name, USABLE, "becoming available")
    write_host(ctx, spec, db)


def _wait_modified(ctx: Context, spec: DbSpec, sg_id: str, count_pending: bool) -> dict:
    """After a modify: until AWS shows the new values (or, when deferred, has them queued for the window)
    and the instance is usable. Right after the call AWS may still say `available` with the old values:
    the values are what count, not the status."""
    latest: dict = {}

    def check() -> tuple[bool, str]:
        db = _describe_or_fail(ctx, spec.name)
        latest["db"] = db
        status = db.get("DBInstanceStatus", "")
        left = drift(ctx, db, sg_id, count_pending=count_pending)
        return status in USABLE and not left, status if not left else f"{status}, applying {', '.join(s.label for s in left)}"

    waiting.wait_for(ctx.report, f"DB instance {spec.name} applying changes", check, timeout=DB_WAIT, interval=POLL)
    return latest["db"]


def _describe_or_fail(ctx: Context, name: str) -> dict:
    db = find_db(ctx, name)
    if db is None:
        raise AwspracError(f"DB instance {name} disappeared while awsprac waited for it")
    status = db.get("DBInstanceStatus", "")
    if status in BROKEN:
        raise AwspracError(f"DB instance {name} is {status}: its events in the RDS console say why")
    return db


def wait_for_db(ctx: Context, name: str, states: frozenset, what: str) -> dict:
    """Poll until the instance is in one of `states` (and has an endpoint, for usable states); returns its description."""
    latest: dict = {}

    def check() -> tuple[bool, str]:
        db = _describe_or_fail(ctx, name)
        latest["db"] = db
        status = db.get("DBInstanceStatus", "")
        return status in states and bool((db.get("Endpoint") or {}).get("Address")), status

    waiting.wait_for(ctx.report, f"DB instance {name} {what}", check, timeout=DB_WAIT, interval=POLL)
    return latest["db"]


def write_host(ctx: Context, spec: DbSpec, db: dict) -> None:
    """DB_HOST := the endpoint, in a new secret version only when it differs."""
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


def snapshot_id(name: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{name}-final-{now:%Y%m%d-%H%M%S}"


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
    for found in (have.subnet_group, have.parameter_group, have.sg):
        if found is not None and stays and ctx.owns(found):
            changes.append(Change(NAME, Action.REPORT, found.kind, found.name, found.id, note=f"kept: DB instance {db.name} stays and may use it"))
        else:
            changes += delete_change(NAME, found, ctx)
    return changes


def _delete(ctx: Context, change: Change) -> None:
    rds = rds_client(ctx)
    if change.kind == "DB instance":
        _delete_db(ctx, change)
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
        if ctx.options.skip_final_snapshot:
            gone_is_fine(rds.delete_db_instance, DBInstanceIdentifier=change.id, SkipFinalSnapshot=True)
        else:
            snapshot = snapshot_id(change.id)
            gone_is_fine(rds.delete_db_instance, DBInstanceIdentifier=change.id, SkipFinalSnapshot=False, FinalDBSnapshotIdentifier=snapshot)
            ctx.report.info(
                f"final snapshot {snapshot} of DB instance {change.id} is being taken (it is kept, and billed, until you delete it; "
                f"`aws rds restore-db-instance-from-db-snapshot --db-snapshot-identifier {snapshot} ...` brings the data back)"
            )

    def gone() -> tuple[bool, str]:
        current = find_db(ctx, change.id)
        return current is None, current.get("DBInstanceStatus", "") if current else "deleted"

    waiting.wait_for(ctx.report, f"DB instance {change.id} being deleted", gone, timeout=DB_WAIT, interval=POLL)
