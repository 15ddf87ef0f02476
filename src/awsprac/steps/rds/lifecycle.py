"""The DB instance's changes: created with the password stored first in its secret, updated (at once or
at the next maintenance window), its endpoint written to the secret, deleted (with a final snapshot)."""

from __future__ import annotations

import botocore.exceptions

from awsprac.engine import waiting
from awsprac.engine.aws import error_code
from awsprac.engine.context import Context
from awsprac.engine.errors import AwspracError
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import gone_is_fine, update
from awsprac.steps.rds import dbsecret
from awsprac.steps.rds.groups import current_sg_id, retag_rds
from awsprac.steps.rds.instance import (
    BROKEN, DB_WAIT, DELETABLE, MODIFIABLE, POLL, STOPPED, USABLE, DbSpec,
    create_fields, create_params, drift, find_db, snapshot_id, unfixable, wait_for_db, wait_modified,
)
from awsprac.steps.rds.instance import client as rds_client
from awsprac.steps.rds import NAME, Observed


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


def db_changes(ctx: Context, spec: DbSpec, have: Observed, blocked: str | None = None) -> list[Change]:
    db = have.db
    if db is None and blocked:
        return [Change(NAME, Action.REPORT, spec.kind, spec.name, note=blocked)]
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
                              note=f"it is {status} (the env is parked) and a stopped instance cannot be modified: "
                                   f"run `awsprac start --env {ctx.cfg.env}`, then `awsprac up --env {ctx.cfg.env}`"))
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


def _usable_secret(ctx: Context) -> dbsecret.SecretState | None:
    """The master's secret: rds-master-{env} once `db create-app-user` made it; else rds-main-{env} as this
    step's observation just read it (nothing wrote it since), else read now. rds-master-{env} is read only
    when that observation saw it: the instance's create does not wait for a read of a secret that is not there."""
    master = dbsecret.master_state(ctx) if ctx.observed[NAME].master is not None else None
    if master is not None:
        return master
    secret = ctx.observed[NAME].secret
    if secret is None or secret.pending_deletion or not secret.readable or secret.password is None:
        secret = dbsecret.find(ctx)
    return secret


def create_db(ctx: Context, spec: DbSpec) -> None:
    have: Observed = ctx.observed[NAME]
    secret = _usable_secret(ctx)
    if secret is None or secret.pending_deletion or secret.password is None:
        raise AwspracError(
            f"secret {spec.secret} holds no usable password yet: run `awsprac step secrets --env {ctx.cfg.env}` first"
        )
    params = create_params(ctx, spec, have.engine, current_sg_id(ctx))
    try:
        rds_client(ctx).create_db_instance(MasterUserPassword=secret.password.reveal(), **params)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "DBInstanceAlreadyExists":  # a retried create that had worked: wait for it
            raise
    ctx.report.info(f"DB instance {spec.name} is being created: on AWS this takes 5-20 minutes")
    db = wait_for_db(ctx, spec.name, USABLE, "becoming available")
    write_host(ctx, spec, db)


def update_db(ctx: Context, spec: DbSpec) -> None:
    have: Observed = ctx.observed[NAME]
    db = have.db.raw
    rds = rds_client(ctx)
    retag_rds(ctx, have.db, db["DBInstanceArn"])
    sg_id = have.sg.id if have.sg else current_sg_id(ctx)
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
    if ctx.observed[NAME].master is not None:
        dbsecret.master_host(ctx, host)


BUSY_RETRY = 900.0  # seconds: a backup or a modification finishing


def delete_db(ctx: Context, change: Change) -> None:
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
