"""The database's cost facet: instance hours, storage and manual snapshots (or, with no instance, the
final snapshots destroy left), and its credentials' secret; those final snapshots for `status` and
`destroy` too (left_behind)."""

from __future__ import annotations

from awsprac.engine.aws import translate
from awsprac.engine.context import Context
from awsprac.engine.errors import UsageError
from awsprac.engine.prices import Line, money, price_table


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
    else:
        out += _final_snapshot_lines(ctx, prices)

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


def _final_snapshot_lines(ctx: Context, prices: dict) -> list[Line]:
    """With no instance: the final snapshots destroy left (with one, the manual snapshots line holds them)."""
    left = _leftover_snapshots(ctx)
    if not left:
        return []
    size = sum(s.get("AllocatedStorage", 0) for s in left)
    monthly = money(size * prices["rds_snapshot_gb_month"])
    ids = ", ".join(s["DBSnapshotIdentifier"] for s in left)
    return [Line("DB final snapshots", f"{len(left)} left by destroy", ids, "available", monthly, monthly,
                 f"at most {size} GiB x {prices['rds_snapshot_gb_month']}/GB-month, until deleted")]


def _leftover_snapshots(ctx: Context) -> list[dict]:
    from awsprac.steps.rds import db_name
    from awsprac.steps.rds.instance import final_snapshots

    return final_snapshots(ctx, db_name(ctx.cfg))


def left_behind(ctx: Context) -> list[str]:
    """One line per final snapshot destroy left: size, monthly cost (when the region has a price table), how to remove it."""
    from awsprac.steps.rds import db_name
    from awsprac.steps.rds.instance import snapshot_removal

    try:
        per_gb = price_table(ctx.cfg.region)["rds_snapshot_gb_month"]
    except UsageError:
        per_gb = None
    notes = []
    for s in _leftover_snapshots(ctx):
        size = s.get("AllocatedStorage", 0)
        price = f", ${money(size * per_gb):.2f}/month" if per_gb is not None else ""
        notes.append(f"final snapshot {s['DBSnapshotIdentifier']} of {db_name(ctx.cfg)}: {size} GiB{price} until deleted: "
                     f"{snapshot_removal(ctx, s['DBSnapshotIdentifier'])}")
    return notes
