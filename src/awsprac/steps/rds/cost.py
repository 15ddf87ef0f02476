"""The database's cost facet: instance hours, storage and manual snapshots, and its credentials' secret."""

from __future__ import annotations

from awsprac.engine.aws import translate
from awsprac.engine.context import Context
from awsprac.engine.prices import Line, money


def cost_lines(ctx: Context, prices: dict, nat_gb: float) -> tuple[list[Line], list[str]]:
    from awsprac.steps import rds

    hours = prices["hours_per_month"]
    ipv4 = prices["public_ipv4_hour"] * hours
    out: list[Line] = []
    notes: list[str] = []

    db = ctx.observed[rds.NAME].db
    if db is not None:
        raw = db.raw
        cls, engine = raw.get("DBInstanceClass", ""), raw.get("Engine", "postgres")
        hourly = prices["rds_instance_hour"].get(engine, {}).get(cls)
        if hourly is None:
            notes.append(f"no price for {engine} {cls} in the {prices['region']} table: DB instance hours left out")
        if raw.get("MultiAZ"):
            notes.append("the DB is multi-AZ: its instance hours cost twice the single-AZ price used here")
        out.append(Line("DB instance", db.name, db.id, db.state, money((hourly or 0) * hours), 0.0,
                        f"{cls} {hourly}/h x {hours} h; nothing while stopped (AWS starts it again after 7 days)"))
        stype, size = raw.get("StorageType", "gp3"), raw.get("AllocatedStorage", 0)
        gb = prices["rds_storage_gb_month"].get(stype)
        if gb is None:
            notes.append(f"no price for RDS {stype} storage in the table: left out")
        else:
            monthly = money(size * gb)
            out.append(Line("DB storage", db.name, db.id, db.state, monthly, monthly, f"{size} GiB {stype} x {gb}/GB-month, also while stopped"))
        snapshots = _snapshots(ctx, db.id)
        if snapshots:
            size = sum(s.get("AllocatedStorage", 0) for s in snapshots)
            monthly = money(size * prices["rds_snapshot_gb_month"])
            out.append(Line("DB snapshots", f"{len(snapshots)} manual snapshot(s)", db.id, "available", monthly, monthly,
                            f"at most {size} GiB x {prices['rds_snapshot_gb_month']}/GB-month (snapshots are incremental)"))

    # The secret holds the DB's credentials: priced with it.
    secret = ctx.observed["secrets"].secret
    if secret is not None:
        monthly = money(prices["secret_month"])
        out.append(Line("secret", secret.found.name, secret.found.id, secret.found.state or "exists", monthly, monthly,
                        f"{prices['secret_month']}/secret-month (API calls extra, negligible here)"))
    return out, notes


def _snapshots(ctx: Context, db_id: str) -> list[dict]:
    rds = ctx.aws.client("rds")
    with translate("looking up", f"the manual snapshots of DB instance {db_id}"):
        pages = rds.get_paginator("describe_db_snapshots").paginate(DBInstanceIdentifier=db_id, SnapshotType="manual")
        return [s for page in pages for s in page["DBSnapshots"]]
