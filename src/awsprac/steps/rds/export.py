"""The database's Terraform: its security group and rules, subnet and parameter groups, and the instance
(the password never: it stays in the secret, and Terraform is told to ignore it)."""

from __future__ import annotations

import dataclasses

from awsprac.engine.context import Context
from awsprac.engine.terraform import MANAGED_BY, Block, Expr, Exporter, Resource
from awsprac.steps.rds.groups import read_on_its_own


def export_terraform(ctx: Context, out: Exporter) -> None:
    from awsprac.steps import rds

    f = out.file("database.tf", "The database: security group, subnet and parameter groups, PostgreSQL (docs/reference.md section 5).")
    have = ctx.observed[rds.NAME]
    sg_spec, sng_spec, pg_spec, db_spec = rds.desired(ctx.cfg)
    sg = out.security_group(f, "db", have.sg, sg_spec.name)
    # A look knows the groups the instance uses from its description; their own carry all they hold.
    have = dataclasses.replace(have, subnet_group=read_on_its_own(ctx, have.subnet_group),
                               parameter_group=read_on_its_own(ctx, have.parameter_group))
    subnet_group = None
    if have.subnet_group is None:
        out.missing(f"DB subnet group {sng_spec.name}")
    else:
        raw = have.subnet_group.raw
        ids = sorted(s["SubnetIdentifier"] for s in raw.get("Subnets", []))
        subnet_group = f.add(Resource("aws_db_subnet_group", "main", {
            "name": have.subnet_group.name,
            "description": raw.get("DBSubnetGroupDescription", MANAGED_BY),
            "subnet_ids": sorted((out.ref("aws_subnet", i) for i in ids), key=lambda v: v.text if isinstance(v, Expr) else v),
            "tags": out.tags(have.subnet_group.name),
        }, have.subnet_group.name))
    parameter_group = None
    if have.parameter_group is None:
        out.missing(f"DB parameter group {pg_spec.name}")
    else:
        raw = have.parameter_group.raw
        parameter_group = f.add(Resource("aws_db_parameter_group", "main", {
            "name": have.parameter_group.name,
            "family": raw.get("DBParameterGroupFamily"),
            "description": raw.get("Description", MANAGED_BY),
            "tags": out.tags(have.parameter_group.name),
        }, have.parameter_group.name))
    if have.db is None:
        out.missing(f"DB instance {db_spec.name}")
        return
    db, c = have.db.raw, ctx.cfg.database
    subnet_group_name = (db.get("DBSubnetGroup") or {}).get("DBSubnetGroupName")
    pg_names = [g.get("DBParameterGroupName") for g in db.get("DBParameterGroups", [])]
    sg_ids = [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", [])]
    attrs: dict = {
        "identifier": db["DBInstanceIdentifier"],
        "engine": db.get("Engine", c.engine),
        # The major only: the provider accepts the minor AWS upgrades to (auto minor version upgrade).
        "engine_version": (db.get("EngineVersion") or c.engine_major).split(".")[0],
        "instance_class": db.get("DBInstanceClass", c.instance_class),
        "storage_type": db.get("StorageType", c.storage_type),
        # Storage never shrinks (and grows by itself with autoscaling): never below what exists.
        "allocated_storage": max(db.get("AllocatedStorage", 0), c.allocated_storage),
        "max_allocated_storage": c.max_allocated_storage or None,
        "username": db.get("MasterUsername", c.master_username),
        "db_name": db.get("DBName", c.db_name),
        "port": (db.get("Endpoint") or {}).get("Port", c.port),
        "multi_az": db.get("MultiAZ", c.multi_az),
        "availability_zone": None if c.multi_az else db.get("AvailabilityZone", c.availability_zone),
        "db_subnet_group_name": subnet_group.ref("name") if subnet_group and subnet_group_name == subnet_group.import_id else subnet_group_name,
        "parameter_group_name": parameter_group.ref("name") if parameter_group and pg_names == [parameter_group.import_id] else (pg_names[0] if pg_names else None),
        "vpc_security_group_ids": [sg.ref() if sg and i == sg.import_id else i for i in sg_ids],
        "publicly_accessible": db.get("PubliclyAccessible", c.publicly_accessible),
        "storage_encrypted": db.get("StorageEncrypted", c.storage_encrypted),
        "backup_retention_period": c.backup_retention_days,
        "backup_window": c.backup_window,
        "copy_tags_to_snapshot": c.copy_tags_to_snapshot,
        "performance_insights_enabled": c.performance_insights,
        "performance_insights_retention_period": c.performance_insights_retention_days if c.performance_insights else None,
        "monitoring_interval": 0,
        "iam_database_authentication_enabled": False,
        "auto_minor_version_upgrade": c.auto_minor_version_upgrade,
        "deletion_protection": c.deletion_protection,
        "apply_immediately": c.apply_immediately,
        "skip_final_snapshot": False,
        # A fixed name would collide on the second destroy (DBSnapshotAlreadyExists): the time goes in it,
        # and the changing value is ignored between destroys.
        "final_snapshot_identifier": Expr(f'format("%s-final-%s", "{db["DBInstanceIdentifier"]}", formatdate("YYYYMMDD-hhmmss", timestamp()))'),
        "tags": out.tags(have.db.name),
        # The master password lives in secret rds-main-<env> (awsprac wrote it there first). It is
        # never written here; Terraform leaves the instance's password as it is.
        "lifecycle": Block({"ignore_changes": [Expr("password"), Expr("final_snapshot_identifier")]}),
    }
    f.add(Resource("aws_db_instance", "main", attrs, db["DBInstanceIdentifier"]))
