"""Step `secrets`: the secret `rds-main-{env}` with the database's credentials (docs/reference.md section 6).

It runs before `rds`: the password is generated (by Secrets Manager) and stored here first, and the
database is then created with the password read back from this secret, so a crash in between loses
nothing. `DB_HOST` stays empty until the database has an endpoint; the `rds` step writes it.
A secret scheduled for deletion (after a destroy) is restored, never re-created.
"""

from __future__ import annotations

from dataclasses import dataclass

from awsprac.steps.rds import dbsecret
from awsprac.engine import tags
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import add_missing_tags, applying, gone_is_fine, update

NAME = "secrets"
REQUIRES: tuple[str, ...] = ()
DEFAULT_KMS_KEYS = (None, "", "alias/aws/secretsmanager")
HIDDEN = "(generated, never shown)"


@dataclass(frozen=True)
class SecretSpec:
    name: str
    values: tuple[tuple[str, str], ...]  # the keys this step owns: DB_PORT, DB_NAME, DB_USER_NAME
    db_id: str
    app_user: str = ""  # DB_USER_NAME may hold this user instead of the master (`db create-app-user`)
    kind: str = dbsecret.KIND

    @property
    def description(self) -> str:
        return f"Credentials of RDS instance {self.db_id} (managed by awsprac)"


@dataclass(frozen=True)
class Observed:
    secret: dbsecret.SecretState | None
    db_exists: bool | None = None  # only looked up when the secret cannot supply a password
    master: Found | None = None  # rds-master-{env}: made by `db create-app-user`, never by `up`

    @property
    def ready(self) -> bool:
        s = self.secret
        return s is not None and not s.pending_deletion and s.password is not None

    def resources(self) -> list[Found]:
        return [f for f in (self.secret.found if self.secret else None, self.master) if f is not None]

    def outputs(self) -> dict:
        # The ARN, never the value.
        if self.secret is None or self.secret.pending_deletion:
            return {}
        return {"db_secret_name": self.secret.found.name, "db_secret_arn": self.secret.arn}


def desired(cfg: EnvConfig) -> list[SecretSpec]:
    db = cfg.database
    values = (("DB_PORT", str(db.port)), ("DB_NAME", db.db_name), ("DB_USER_NAME", db.master_username))
    return [SecretSpec(dbsecret.secret_name(cfg), values, cfg.vpc_name, db.app_username)]


def observe(ctx: Context) -> Observed:
    secret = dbsecret.as_seen(ctx)
    master = dbsecret.listed_as_seen(ctx)[dbsecret.master_secret_name(ctx.cfg)]
    if secret is not None and (secret.pending_deletion or secret.password is not None):
        return Observed(secret, master=master)
    from awsprac.steps import rds

    return Observed(secret, rds.db_as_seen(ctx) is not None, master)


def status_states(ctx: Context, have: Observed) -> dict:
    """Which user the app's secret holds: the master, or the app user `db create-app-user` made."""
    s = have.secret
    if s is None or not s.readable:
        return {}
    user = s.values.get("DB_USER_NAME") or "?"
    role = "app user" if user == ctx.cfg.database.app_username else "master user" if user == ctx.cfg.database.master_username else "user"
    return {(s.found.kind, s.found.name): f"{s.found.state}, holds {role} {user}"}


def diff(ctx: Context, want: list[SecretSpec], have: Observed) -> list[Change]:
    (spec,) = want
    s = have.secret
    if s is None:
        if have.db_exists:
            raise dbsecret.SecretMissing(dbsecret.missing_message(ctx.cfg, spec.db_id, "is missing"))
        fields = [FieldDiff(k, None, v) for k, v in spec.values]
        fields += [FieldDiff("DB_HOST", None, "(empty until the database has an endpoint)"), FieldDiff("DB_PASSWORD", None, HIDDEN)]
        return [Change(NAME, Action.CREATE, spec.kind, spec.name, fields=tuple(fields), spec=spec)]
    if s.pending_deletion:
        fields = [FieldDiff("state", f"scheduled for deletion on {s.deletion_date}", "restored")]
        return update(ctx, NAME, s.found, fields, spec) + _master_changes(ctx, spec, have)
    if s.password is None and have.db_exists:
        raise dbsecret.SecretMissing(dbsecret.missing_message(ctx.cfg, spec.db_id, f"is unusable ({s.problem})"))
    changes = []
    if s.kms_key_id not in DEFAULT_KMS_KEYS:
        changes.append(Change(
            NAME, Action.REPORT, spec.kind, spec.name, s.arn, (FieldDiff("encryption key", s.kms_key_id, "aws/secretsmanager"),),
            note=f"left as is (other readers may depend on that key): `aws secretsmanager update-secret --secret-id {spec.name} "
                 "--kms-key-id alias/aws/secretsmanager` moves it to the default key",
        ))
    return changes + update(ctx, NAME, s.found, value_fields(spec, s), spec) + _master_changes(ctx, spec, have)


def _master_changes(ctx: Context, spec: SecretSpec, have: Observed) -> list[Change]:
    """rds-master-{env} comes back with rds-main-{env}: the master's password is in it."""
    m = have.master
    if m is None or not m.raw.get("DeletedDate") or not ctx.owns(m):
        return []
    fields = [FieldDiff("state", f"scheduled for deletion on {dbsecret.SecretState(m).deletion_date}", "restored")]
    return [Change(NAME, Action.UPDATE, m.kind, m.name, m.id, tuple(fields), spec=spec)]


def value_fields(spec: SecretSpec, s: dbsecret.SecretState) -> list[FieldDiff]:
    """What differs in the value. The password is never shown: only whether it is there."""
    fields = []
    if s.password is None:
        fields.append(FieldDiff("DB_PASSWORD", f"(unusable: {s.problem})", HIDDEN))
    for key, value in spec.values:
        current = s.values.get(key)
        if key == "DB_USER_NAME" and current == spec.app_user:
            continue  # `db create-app-user` gave the secret to the app user (the master is in rds-master-{env})
        if current is None or str(current) != value:
            fields.append(FieldDiff(key, current, value))
    if "DB_HOST" not in s.values:
        fields.append(FieldDiff("DB_HOST", None, "(empty until the database has an endpoint)"))
    if s.rotation:
        fields.append(FieldDiff("rotation", "on", "off"))
    return fields


def wanted_values(spec: SecretSpec, current: dict) -> dict:
    values = dict(current)
    values.update(dict(spec.values))
    if current.get("DB_USER_NAME") == spec.app_user:
        values["DB_USER_NAME"] = spec.app_user
    values.setdefault("DB_HOST", "")
    return values


def apply(ctx: Context, change: Change) -> None:
    spec: SecretSpec = change.spec
    with applying(change):
        if change.action is Action.DELETE:
            _delete(ctx, change)
            return
        if change.name == dbsecret.master_secret_name(ctx.cfg):
            dbsecret.restore(ctx, dbsecret.SecretState(ctx.observed[NAME].master))
            return
        if change.action is Action.CREATE:
            password = dbsecret.generate_password(ctx)
            state = dbsecret.create(ctx, wanted_values(spec, {}), password, spec.description)
        else:
            state = ctx.observed[NAME].secret
            if state.pending_deletion:
                state = dbsecret.restore(ctx, state)
        _reconcile(ctx, spec, state)


def _reconcile(ctx: Context, spec: SecretSpec, state: dbsecret.SecretState) -> None:
    """Tags, rotation, values: only what differs (every put is a new version)."""
    sm = dbsecret.client(ctx)
    add_missing_tags(ctx, state.found.tags, spec.name, lambda tag_list: sm.tag_resource(SecretId=state.arn, Tags=tag_list))
    if state.rotation:
        sm.cancel_rotate_secret(SecretId=state.arn)
    fields = [f for f in value_fields(spec, state) if f.field != "rotation"]
    if not fields:
        return
    password = state.password
    if password is None:
        from awsprac.steps import rds

        if rds.find(ctx) is not None:
            raise dbsecret.SecretMissing(dbsecret.missing_message(ctx.cfg, spec.db_id, f"is unusable ({state.problem})"))
        password = dbsecret.generate_password(ctx)
    dbsecret.put(ctx, state, wanted_values(spec, state.values), password, "settings")


def teardown(ctx: Context, have: Observed) -> list[Change]:
    return [c for found in have.resources() for c in _teardown_one(ctx, found)]


def _teardown_one(ctx: Context, found: Found) -> list[Change]:
    if not ctx.owns(found):
        return [Change(NAME, Action.REPORT, found.kind, found.name, found.id,
                       note=f"left alone: not tagged {tags.ENV_KEY}={ctx.cfg.env}, so not this env's to delete")]
    immediate = ctx.options.force_delete_secret or ctx.cfg.secrets.recovery_window_days == 0
    if found.raw.get("DeletedDate") and not immediate:
        return []  # already on its way out; `up` restores it
    from awsprac.steps import rds

    stays = rds.db_stays(ctx)
    if stays:
        return [Change(NAME, Action.REPORT, found.kind, found.name, found.id,
                       note=f"kept: it holds a password of database {rds.db_name(ctx.cfg)}, which stays ({stays})")]
    if immediate:
        note = "deleted at once, no recovery window (--force-delete-secret): the password it holds is gone"
    else:
        note = f"recoverable for {ctx.cfg.secrets.recovery_window_days} days: `awsprac up` restores it"
    return [Change(NAME, Action.DELETE, found.kind, found.name, found.id, note=note)]


def _delete(ctx: Context, change: Change) -> None:
    sm = dbsecret.client(ctx)
    window = ctx.cfg.secrets.recovery_window_days
    if ctx.options.force_delete_secret or window == 0:
        gone_is_fine(sm.delete_secret, SecretId=change.id, ForceDeleteWithoutRecovery=True)
        ctx.report.info(f"secret {change.name} deleted without a recovery window: it cannot be restored")
        return
    gone_is_fine(sm.delete_secret, SecretId=change.id, RecoveryWindowInDays=window)
    ctx.report.info(
        f"secret {change.name} is scheduled for deletion in {window} days; until then `awsprac up --env {ctx.cfg.env}` "
        f"restores it (or `aws secretsmanager restore-secret --secret-id {change.name}`)"
    )



# --- facets ---


def export_terraform(ctx: Context, out) -> None:
    from awsprac.engine.terraform import Resource

    f = out.file("secrets.tf", (
        "The DB credentials' secret (docs/reference.md section 6): the secret only, never its value. An\n"
        "aws_secretsmanager_secret_version would need the password in these files and would copy it into\n"
        "Terraform's state; awsprac keeps writing the value (`awsprac db reset-password` replaces it)."
    ))
    state = ctx.observed[NAME].secret
    if state is None:
        out.missing(f"secret {ctx.cfg.name('rds-main-{env}')}")
        return
    raw = state.found.raw
    attrs: dict = {"name": state.found.name, "description": raw.get("Description")}
    if raw.get("KmsKeyId") and raw["KmsKeyId"] not in ("alias/aws/secretsmanager",):
        attrs["kms_key_id"] = raw["KmsKeyId"]
    attrs["recovery_window_in_days"] = ctx.cfg.secrets.recovery_window_days
    attrs["tags"] = out.tags(state.found.name)
    f.add(Resource("aws_secretsmanager_secret", "db", attrs, state.arn))


def check_secret_pending_deletion(scan) -> list[Finding]:
    """A secret scheduled for deletion: its name cannot be reused, and the DB password in it is about to go."""
    from awsprac.engine.aws import is_not_found, translate
    from awsprac.engine.doctor import Finding

    name = dbsecret.secret_name(scan.cfg)
    sm = scan.ctx.aws.client("secretsmanager")
    try:
        secret = sm.describe_secret(SecretId=name)
    except Exception as exc:
        if is_not_found(exc):
            return []
        with translate("describing", f"secret {name}"):
            raise
    if not secret.get("DeletedDate"):
        return []
    return [Finding(
        "secret pending deletion", f"secret {name}",
        f"scheduled for deletion on {secret['DeletedDate']:%Y-%m-%d %H:%M} UTC: it holds the DB password, and its name cannot be reused until it is gone",
        f"`awsprac up --env {scan.cfg.env}` restores it, or: " + scan.cli(f"aws secretsmanager restore-secret --secret-id {name}"),
    )]


doctor_checks = (check_secret_pending_deletion,)
