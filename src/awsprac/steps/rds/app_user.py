"""`awsprac db create-app-user`: the app's own login role, as the guide says ("using the default user as-is
is too strong; later create a new user and update the secret").

Crash-safe order, each write before the next:
1. the master credentials are copied to secret rds-master-{env} (unless it exists): they are never lost;
2. a new app password (Secrets Manager's generator) is stored in rds-main-{env} with DB_USER_NAME = the
   app user, before any role has it (`--rotate`: a new one, stored first);
3. as the master, in one transaction: the role is created (or altered) with that password and given the
   guide's grants.
A run killed anywhere is finished by running it again: step 3 checks the role by logging in as it with
the stored password, so a second run changes nothing. The password reaches PostgreSQL already hashed
(SCRAM, by libpq): never in a statement's text, an argument, a log line or a message.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Iterator

from awsprac.steps.rds import dbsecret
from awsprac.engine.app import App
from awsprac.engine.context import Context
from awsprac.engine.errors import AwspracError, UsageError

CONNECT_TIMEOUT = 15  # seconds


@dataclass(frozen=True)
class Address:
    host: str
    port: int


def parse_through(text: str) -> Address:
    match = re.fullmatch(r"\[?([^\]\s]+?)\]?:(\d{1,5})", text.strip())
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise UsageError(f"--through {text!r} must be HOST:PORT, like 127.0.0.1:15432")
    return Address(match.group(1), int(match.group(2)))


def _psycopg():
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a broken install
        raise UsageError("psycopg is missing: reinstall awsprac (`pip install awsprac`), then run again") from None
    return psycopg


def command(app: App, through: Address | None, rotate: bool) -> None:
    ctx = app.context()
    if rotate:
        app.confirm(f"Give {ctx.cfg.database.app_username} a new password (stored in {dbsecret.secret_name(ctx.cfg)} first)? "
                    "Apps still using the old one fail to connect until they read the secret again")
    main = _main_secret(ctx)
    master_user, master_password, master_from = master_credentials(ctx, main)
    database = str(main.values.get("DB_NAME") or ctx.cfg.database.db_name)
    with _reachable(ctx, through) as address:
        # The master's login is checked before anything is written: a refused one changes nothing.
        with _connect(ctx, address, master_user, master_password, database, master_from) as conn:
            master = ensure_master_secret(ctx, main)
            main, password = store_app_password(ctx, main, rotate)
            done = make_role(ctx, conn, address, master_user, database, password, rotate)
    user = ctx.cfg.database.app_username
    what = "; ".join(done) if done else "nothing to change"
    app.report.info(
        f"app user {user}: {what}. Secret {main.found.name} holds it (the app reads it), "
        f"secret {master.found.name} the master {master_user}; no password is shown"
    )


def _main_secret(ctx: Context) -> dbsecret.SecretState:
    cfg = ctx.cfg
    main = dbsecret.find(ctx)
    if main is not None and main.pending_deletion:
        main = dbsecret.restore(ctx, main)
    if main is None or main.password is None:
        why = "does not exist" if main is None else main.problem
        raise UsageError(f"secret {dbsecret.secret_name(cfg)} {why}: run `awsprac up --env {cfg.env}` first")
    return main


def master_credentials(ctx: Context, main: dbsecret.SecretState) -> tuple[str, dbsecret.Password, str]:
    """(user, password, secret): from rds-master-{env} once it exists, else from rds-main-{env}."""
    cfg = ctx.cfg
    master = dbsecret.master_state(ctx)
    state = master or main
    if master is None and main.values.get("DB_USER_NAME") != cfg.database.master_username:
        raise AwspracError(
            f"secret {main.found.name} holds user {main.values.get('DB_USER_NAME')!r}, not the master "
            f"{cfg.database.master_username!r}, and there is no {dbsecret.master_secret_name(cfg)}: the master password is unknown; "
            f"`awsprac db reset-password --env {cfg.env}` sets a new one and stores it"
        )
    return str(state.values.get("DB_USER_NAME") or cfg.database.master_username), state.password, state.found.name


def ensure_master_secret(ctx: Context, main: dbsecret.SecretState) -> dbsecret.SecretState:
    """rds-master-{env} with the master credentials: written first (same keys, key and tags as rds-main)."""
    cfg = ctx.cfg
    master = dbsecret.master_state(ctx)
    if master is not None:
        return master
    from awsprac.steps import secrets

    db_id = secrets.desired(cfg)[0].db_id
    description = f"Master credentials of RDS instance {db_id} (managed by awsprac)"
    kms = main.kms_key_id if main.kms_key_id not in secrets.DEFAULT_KMS_KEYS else None
    master = dbsecret.create(ctx, dict(main.values), main.password, description, dbsecret.master_secret_name(cfg), kms)
    ctx.report.info(f"secret {master.found.name} holds the master credentials")
    return master


def store_app_password(ctx: Context, main: dbsecret.SecretState, rotate: bool) -> tuple[dbsecret.SecretState, dbsecret.Password]:
    """The app user's password in rds-main-{env}, before the role has it. Already there: kept (unless rotating)."""
    user = ctx.cfg.database.app_username
    if main.values.get("DB_USER_NAME") == user and not rotate:
        return main, main.password
    password = dbsecret.generate_password(ctx)
    dbsecret.put(ctx, main, {**main.values, "DB_USER_NAME": user}, password, "app-user-rotate" if rotate else "app-user")
    ctx.report.info(f"secret {main.found.name} holds the new password of {user}")
    stored = dbsecret.find(ctx)
    if stored is None or stored.password != password:
        raise AwspracError(f"secret {main.found.name} does not read back the password just stored: run the same command again")
    return stored, password


@contextlib.contextmanager
def _reachable(ctx: Context, through: Address | None) -> Iterator[Address]:
    if through is not None:
        yield through
        return
    from awsprac.steps.rds import tunnel as db_tunnel

    with db_tunnel.opened(ctx) as tunnel:
        yield Address("127.0.0.1", tunnel.local_port)


def _connect(ctx: Context, address: Address, user: str, password: dbsecret.Password, database: str, secret: str):
    psycopg = _psycopg()
    try:
        return psycopg.connect(host=address.host, port=address.port, user=user, password=password.reveal(), dbname=database,
                               connect_timeout=CONNECT_TIMEOUT, sslmode="prefer", application_name="awsprac")
    except psycopg.OperationalError as exc:
        raise connection_error(ctx, exc, address, user, database, secret, password) from None


def connection_error(ctx: Context, exc: Exception, address: Address, user: str, database: str, secret: str,
                     password: dbsecret.Password) -> AwspracError:
    """One line saying what to do; PostgreSQL's own text only with the password taken out."""
    env = ctx.cfg.env
    state = sqlstate(exc)
    where = f"{address.host}:{address.port}"
    if state == "28P01":
        fix = (f"the password of {user} in secret {secret} was refused: "
               + (f"`awsprac db reset-password --env {env}` sets a new master password" if secret == dbsecret.master_secret_name(ctx.cfg)
                  or user == ctx.cfg.database.master_username else f"run `awsprac db create-app-user --env {env}` again"))
    elif state == "3D000":
        fix = f"database {database} does not exist on {where}: check database.db_name in {ctx.cfg.path}"
    elif state == "28000":
        fix = f"{where} refused {user} (pg_hba): check the DB's parameter group and the address"
    else:
        text = " ".join(str(exc).split()).replace(password.reveal(), "********")
        fix = f"cannot connect to PostgreSQL at {where} as {user} ({text[:300]}): is the tunnel open (`awsprac db tunnel --env {env}`) and the DB available?"
    return AwspracError(fix)


# libpq reports a refused connection with no SQLSTATE (psycopg's sqlstate is None): its server message says which.
CONNECT_FAILURES = (
    ("password authentication failed", "28P01"),
    ("does not exist", "3D000"),  # FATAL: database "x" does not exist
    ("no pg_hba.conf entry", "28000"),
    ("is not permitted to log in", "28000"),
)


def sqlstate(exc: Exception) -> str | None:
    state = getattr(exc, "sqlstate", None)
    if state:
        return state
    text = str(exc)
    return next((code for needle, code in CONNECT_FAILURES if f"FATAL:  {needle}" in text or needle in text.partition("FATAL:")[2]), None)


def make_role(ctx: Context, conn, address: Address, master_user: str, database: str, password: dbsecret.Password, rotate: bool) -> list[str]:
    """As the master, in one transaction: the role (created, or its attributes and password fixed) and
    the grants. Returns what was changed, for the report."""
    psycopg = _psycopg()
    from psycopg import sql

    cfg = ctx.cfg
    user = cfg.database.app_username
    done: list[str] = []
    try:
        role = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin FROM pg_roles WHERE rolname = %s", (user,)
        ).fetchone()
        hashed = conn.pgconn.encrypt_password(password.reveal().encode(), user.encode(), b"scram-sha-256").decode()
        name = sql.Identifier(user)
        if role is None:
            conn.execute(sql.SQL("CREATE ROLE {} WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB PASSWORD {}").format(name, sql.Literal(hashed)))
            done.append("role created")
        else:
            if tuple(role) != (False, False, False, True):
                conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB").format(name))
                done.append("role attributes set (LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB)")
            if rotate or not _logs_in(ctx, address, user, password, database):
                conn.execute(sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(name, sql.Literal(hashed)))
                done.append("password set")
        del hashed
        for statement in grants(database, user, master_user):
            conn.execute(statement)
        conn.commit()
    except psycopg.Error as exc:
        conn.rollback()
        state = sqlstate(exc) or "?"
        first = " ".join(str(exc).split()).replace(password.reveal(), "********")[:200]
        raise AwspracError(
            f"PostgreSQL refused setting up role {user} as {master_user} ({state}: {first}); nothing was changed in the database: "
            f"fix that, then run `awsprac db create-app-user --env {cfg.env}` again"
        ) from None
    return done


def grants(database: str, user: str, master_user: str) -> list:
    """The guide repository's grants, and the same by default for what the master creates later."""
    from psycopg import sql

    ids = {"db": sql.Identifier(database), "user": sql.Identifier(user), "master": sql.Identifier(master_user)}
    return [sql.SQL(text).format(**ids) for text in (
        "GRANT CONNECT ON DATABASE {db} TO {user}",
        "GRANT USAGE ON SCHEMA public TO {user}",
        "GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO {user}",
        "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {user}",
        "ALTER DEFAULT PRIVILEGES FOR ROLE {master} IN SCHEMA public GRANT ALL PRIVILEGES ON TABLES TO {user}",
        "ALTER DEFAULT PRIVILEGES FOR ROLE {master} IN SCHEMA public GRANT USAGE ON SEQUENCES TO {user}",
    )]


def _logs_in(ctx: Context, address: Address, user: str, password: dbsecret.Password, database: str) -> bool:
    """Does the role take the stored password? (a run killed before ALTER ROLE, or a rotation cut short)"""
    psycopg = _psycopg()
    try:
        with psycopg.connect(host=address.host, port=address.port, user=user, password=password.reveal(), dbname=database,
                             connect_timeout=CONNECT_TIMEOUT, sslmode="prefer", application_name="awsprac"):
            return True
    except psycopg.OperationalError as exc:
        if sqlstate(exc) in ("28P01", "28000"):
            return False
        raise connection_error(ctx, exc, address, user, database, dbsecret.secret_name(ctx.cfg), password) from None
