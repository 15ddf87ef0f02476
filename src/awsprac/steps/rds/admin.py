"""`awsprac db reset-password`: a new master password on the instance, stored in its secret.

The way out when the instance exists but its secret is gone (or holds no password): the old password
is unknown, so a new one is generated (by Secrets Manager), stored in the secret first, and then set
on the instance. Stored first, so a failure in between never loses it: the message then says to run
the command again, which sets yet another one.
"""

from __future__ import annotations

from awsprac.steps.rds import dbsecret
from awsprac.engine.app import App
from awsprac.engine.aws import translate
from awsprac.engine.errors import AwspracError, UsageError


def reset_password(app: App) -> None:
    from awsprac.engine import lock
    from awsprac.steps.rds import instance as rdsinstance
    from awsprac.steps import rds, secrets

    ctx = app.context()
    cfg = ctx.cfg
    name = rds.db_name(cfg)
    db = rds.find(ctx)
    if db is None:
        raise UsageError(
            f"there is no DB instance {name} in env {cfg.env}, so no password to reset: "
            f"`awsprac up --env {cfg.env}` creates it with a stored password"
        )
    status = db.get("DBInstanceStatus", "")
    if status not in rdsinstance.MODIFIABLE:
        raise AwspracError(
            f"DB instance {name} is {status}: its password can be reset once it is available "
            "(a stopped instance must be started first); nothing was changed"
        )
    # Once `db create-app-user` gave rds-main-{env} to the app user, the master's password lives in rds-master-{env}.
    master = dbsecret.find(ctx, dbsecret.master_secret_name(cfg))
    secret_name = master.found.name if master is not None else dbsecret.secret_name(cfg)
    secret = master or dbsecret.find(ctx)
    where = f"secret {secret_name}" + (" (restored from its scheduled deletion)" if secret and secret.pending_deletion else "")
    app.confirm(f"Set a new master password on DB instance {name} and store it in {where}? "
                "Clients using the old password will fail to connect")
    with lock.held(ctx, "db reset-password"):  # `up` writes the same secret and instance: one run at a time
        password = dbsecret.generate_password(ctx)
        endpoint = db.get("Endpoint") or {}
        # The instance's own values: the user and database name are fixed at its creation.
        values = {
            "DB_HOST": endpoint.get("Address", ""), "DB_PORT": str(endpoint.get("Port") or cfg.database.port),
            "DB_NAME": db.get("DBName") or cfg.database.db_name, "DB_USER_NAME": db.get("MasterUsername") or cfg.database.master_username,
        }
        description = secrets.desired(cfg)[0].description
        if secret is None:
            secret = dbsecret.create(ctx, values, password, description)
        elif master is not None:
            values["DB_HOST"] = values["DB_HOST"] or master.values.get("DB_HOST", "")
        if secret.pending_deletion:
            secret = dbsecret.restore(ctx, secret)
        if secret.password != password:
            dbsecret.put(ctx, secret, {**secret.values, **values}, password, "reset-password")
        try:
            with translate("setting", f"the master password of DB instance {name}"):
                rdsinstance.client(ctx).modify_db_instance(DBInstanceIdentifier=name, MasterUserPassword=password.reveal(), ApplyImmediately=True)
        except AwspracError as exc:
            raise AwspracError(
                f"{exc}; secret {secret.found.name} now holds a new password the instance does not have: "
                f"run `awsprac db reset-password --env {cfg.env}` again"
            ) from None
        rdsinstance.wait_for_db(ctx, name, rdsinstance.MODIFIABLE, "taking the new password")
    app.report.info(
        f"DB instance {name} has a new master password, stored in secret {secret.found.name} ({secret.arn}); "
        f"it is never shown: `aws secretsmanager get-secret-value --secret-id {secret.found.name}` reads it"
    )
