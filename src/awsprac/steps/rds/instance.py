"""The RDS instance of docs/reference.md section 5, as knowledge the `rds` step uses: what CreateDBInstance is sent,
which settings can change in place (and how ModifyDBInstance takes them), which cannot, and waiting on
its status. Pure functions of the env file and AWS's description, plus the describe/wait calls.

Compare only what AWS returns: moto leaves out Performance Insights and PendingModifiedValues, and a
comparison with a missing field would never converge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import botocore.exceptions
import botocore.parsers

from awsprac.engine import tags, waiting
from awsprac.engine.aws import is_not_found, translate
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.errors import AwspracError
from awsprac.engine.plan import FieldDiff

DB_WAIT = 45 * 60  # creation takes 5-17 minutes on AWS, deletion about as long: a generous budget
POLL = 15.0
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


def client(ctx: Context):
    return ctx.aws.client("rds")


def find_db(ctx: Context, name: str) -> dict | None:
    """The instance's description, or None when there is none."""
    with translate("looking up", f"DB instance {name}"):
        try:
            items = client(ctx).describe_db_instances(DBInstanceIdentifier=name)["DBInstances"]
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return None
            raise
    return items[0] if items else None


# What a new instance runs: AWS's default minor of the major (DescribeDBEngineVersions DefaultOnly), not the
# newest; the env files and the README say the same words.
DEFAULT_MINOR = "AWS's default minor"


def engine_default(ctx: Context) -> EngineDefault:
    """AWS's default version of the configured major, and its parameter group family."""
    db = ctx.cfg.database
    try:
        with translate("looking up", f"the default {db.engine} {db.engine_major} version"):
            versions = client(ctx).describe_db_engine_versions(
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
    return EngineDefault(v["EngineVersion"], v["DBParameterGroupFamily"], DEFAULT_MINOR)


def _engine_fallback(ctx: Context, why: str) -> EngineDefault:
    # Sending the major alone lets RDS pick its default minor; PostgreSQL's families are postgres<major>.
    db = ctx.cfg.database
    ctx.report.debug(f"DescribeDBEngineVersions unavailable here ({why}): sending engine version {db.engine_major}, family {db.engine}{db.engine_major}")
    return EngineDefault(db.engine_major, f"{db.engine}{db.engine_major}", "major only: RDS picks the default minor")


@dataclass(frozen=True)
class Setting:
    """One in-place-modifiable instance setting: where AWS shows it, how ModifyDBInstance takes it."""

    label: str
    current: Any
    wanted: Any
    modify: dict
    pending_key: str = ""  # its PendingModifiedValues key, when AWS can defer it to the window


def major(version: str) -> str:
    return version.split(".")[0]


def settings(cfg: EnvConfig, spec: DbSpec, db: dict, sg_id: str | None) -> list[Setting]:
    """Every modifiable setting docs/reference.md fixes, against what AWS returned. A setting missing from AWS's
    answer is not compared (moto omits Performance Insights): it could never converge."""
    c = cfg.database
    out: list[Setting] = []

    def add(label: str, key: str, wanted: Any, modify: dict, pending_key: str = "") -> None:
        if key in db:
            out.append(Setting(label, db[key], wanted, modify, pending_key))

    add("instance class", "DBInstanceClass", c.instance_class, {"DBInstanceClass": c.instance_class}, "DBInstanceClass")
    add("storage type", "StorageType", c.storage_type, {"StorageType": c.storage_type}, "StorageType")
    add("multi-AZ", "MultiAZ", c.multi_az, {"MultiAZ": c.multi_az}, "MultiAZ")
    add("publicly accessible", "PubliclyAccessible", c.publicly_accessible, {"PubliclyAccessible": c.publicly_accessible})
    add("backup retention days", "BackupRetentionPeriod", c.backup_retention_days, {"BackupRetentionPeriod": c.backup_retention_days}, "BackupRetentionPeriod")
    # Both windows go in every modify that touches either: AWS checks the pair (they must not overlap).
    windows = {"PreferredBackupWindow": c.backup_window, "PreferredMaintenanceWindow": c.maintenance_window}
    add("backup window", "PreferredBackupWindow", c.backup_window, windows)
    if "PreferredMaintenanceWindow" in db:  # AWS answers it in lower case
        out.append(Setting("maintenance window", str(db["PreferredMaintenanceWindow"]).lower(), c.maintenance_window.lower(), windows))
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


def drift(cfg: EnvConfig, spec: DbSpec, db: dict, sg_id: str | None, count_pending: bool = True) -> list[Setting]:
    """The settings that differ. With count_pending, a value AWS has queued for the maintenance window
    counts as done; without, a queued value is still to come (after an immediate modify)."""
    pending = db.get("PendingModifiedValues") or {}
    result = []
    for s in settings(cfg, spec, db, sg_id):
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


def unfixable(cfg: EnvConfig, spec: DbSpec, db: dict) -> tuple[list[FieldDiff], list[str]]:
    c = cfg.database
    fields, remedies = [], []
    checks = [
        ("engine", db.get("Engine"), c.engine, "a different engine needs a new instance: migrate the data (pg_dump/restore) to a new one"),
        ("engine major", major(db["EngineVersion"]) if db.get("EngineVersion") else None, c.engine_major,
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


def create_fields(cfg: EnvConfig, spec: DbSpec, engine: EngineDefault) -> list[FieldDiff]:
    c = cfg.database
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
        ("maintenance window", f"{c.maintenance_window} UTC"),
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
        # Sent, not left to AWS: it would pick one at random, which a later backup window may overlap.
        PreferredMaintenanceWindow=c.maintenance_window,
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


def describe_or_fail(ctx: Context, name: str) -> dict:
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
        db = describe_or_fail(ctx, name)
        latest["db"] = db
        status = db.get("DBInstanceStatus", "")
        return status in states and bool((db.get("Endpoint") or {}).get("Address")), status

    waiting.wait_for(ctx.report, f"DB instance {name} {what}", check, timeout=DB_WAIT, interval=POLL)
    return latest["db"]


def wait_modified(ctx: Context, spec: DbSpec, sg_id: str, count_pending: bool) -> dict:
    """After a modify: until AWS shows the new values (or, when deferred, has them queued for the window)
    and the instance is usable. Right after the call AWS may still say `available` with the old values:
    the values are what count, not the status."""
    latest: dict = {}

    def check() -> tuple[bool, str]:
        db = describe_or_fail(ctx, spec.name)
        latest["db"] = db
        status = db.get("DBInstanceStatus", "")
        left = drift(ctx.cfg, spec, db, sg_id, count_pending=count_pending)
        return status in USABLE and not left, status if not left else f"{status}, applying {', '.join(s.label for s in left)}"

    waiting.wait_for(ctx.report, f"DB instance {spec.name} applying changes", check, timeout=DB_WAIT, interval=POLL)
    return latest["db"]


def snapshot_id(name: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{name}-final-{now:%Y%m%d-%H%M%S}"


def final_snapshots(ctx: Context, name: str) -> list[dict]:
    """This env's final snapshots of instance `name`, left by destroy: manual, named `<name>-final-*`, and
    tagged for the env (the instance's tags are copied to its snapshots, at their creation)."""
    with translate("looking up", f"the final snapshots of DB instance {name}"):
        pages = client(ctx).get_paginator("describe_db_snapshots").paginate(DBInstanceIdentifier=name, SnapshotType="manual")
        items = [s for page in pages for s in page["DBSnapshots"]]
    return [s for s in items if s["DBSnapshotIdentifier"].startswith(f"{name}-final-")
            and tags.is_owned(tags.as_dict(s.get("TagList")), ctx.cfg.project, ctx.cfg.env)]


def snapshot_removal(ctx: Context, snapshot: str) -> str:
    return f"aws rds delete-db-snapshot --db-snapshot-identifier {snapshot} --region {ctx.cfg.region}"

