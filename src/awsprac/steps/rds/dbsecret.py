"""The database credentials secret `rds-main-{env}` (docs/reference.md section 6): found, read, generated and written
so that the password never reaches a plan, a log line, an exception message or a process's arguments.

The password only ever exists as a `Password`, whose repr and str are masked; `reveal()` is called in
exactly two places: building the secret's JSON and the RDS call that sets it on the instance.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from awsprac.engine import tokens
from awsprac.engine.aws import error_code, translate
from awsprac.engine.context import Context
from awsprac.engine.errors import AmbiguousResource, AwspracError
from awsprac.engine.lookup import Found
from awsprac.config import DB_SECRET_KEYS

KEYS = DB_SECRET_KEYS
KIND = "secret"
PASSWORD_LENGTH = 40  # the guide: at least 32; RDS PostgreSQL takes up to 128
# RDS refuses these in a master password.
RDS_REFUSES = '/@" '
# These break a connection string or URL (postgresql://user:pw@host/db?opts) or a shell line.
BREAKS_CONNECTION_STRINGS = "'\\`:;?#[]{}()<>%&+=,|!$^*~"
EXCLUDED = RDS_REFUSES + BREAKS_CONNECTION_STRINGS
# Secrets Manager says "already exists" for a name that is scheduled for deletion: AWS with
# InvalidRequestException, moto with ResourceExistsException. Either means: look again.
NAME_TAKEN_CODES = ("ResourceExistsException", "InvalidRequestException")


class Password:
    """A password that prints as asterisks. Compare with ==; get the text with reveal()."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Password(********)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Password) and hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self):
        raise TypeError("a Password is not pickled")


class SecretMissing(AwspracError):
    """The database exists but the secret holding its master password does not (or holds none)."""


def secret_name(cfg) -> str:
    return cfg.name("rds-main-{env}")


def master_secret_name(cfg) -> str:
    """Where the master credentials live once `db create-app-user` gave rds-main-{env} to the app user."""
    return cfg.name("rds-master-{env}")


def usable(password: str) -> bool:
    return (
        len(password) >= 32 and password.isascii() and password.isprintable()
        and not any(c in EXCLUDED for c in password)
    )


@dataclass(frozen=True)
class SecretState:
    """What the secret holds. `values` has every key but DB_PASSWORD (kept as-is, extras too)."""

    found: Found
    version_id: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    password: Password | None = None
    readable: bool = False  # the value is a JSON object
    # why it could not be read, for messages (never the value)
    problem: str = ""

    @property
    def arn(self) -> str:
        return self.found.id

    @property
    def pending_deletion(self) -> bool:
        return bool(self.found.raw.get("DeletedDate"))

    @property
    def deletion_date(self) -> str:
        date = self.found.raw.get("DeletedDate")
        return date.strftime("%Y-%m-%d") if isinstance(date, datetime) else str(date or "")

    @property
    def rotation(self) -> bool:
        return bool(self.found.raw.get("RotationEnabled"))

    @property
    def kms_key_id(self) -> str | None:
        return self.found.raw.get("KmsKeyId")


def client(ctx: Context):
    return ctx.aws.client("secretsmanager")


def find(ctx: Context, name: str | None = None) -> SecretState | None:
    """The secret (rds-main-{env} unless named) by exact name, scheduled-for-deletion ones included
    (their name stays taken)."""
    name = name or secret_name(ctx.cfg)
    return _state(ctx, _listed(ctx, [name])[name])


def _listed(ctx: Context, names: list[str]) -> dict[str, Found | None]:
    """{name: Found or None}: the secrets of those exact names, in one read."""
    sm = client(ctx)
    with translate("looking up", f"secret {' and '.join(names)}"):
        # list_secrets, not describe_secret(SecretId=name): a name ending in '-' + 6 characters is
        # also read as a partial ARN; the name filter is a prefix match, so keep exact names only.
        pages = sm.get_paginator("list_secrets").paginate(
            Filters=[{"Key": "name", "Values": names}], IncludePlannedDeletion=True,
        )
        listed = [s for page in pages for s in page.get("SecretList", [])]
    found: dict[str, Found | None] = {}
    for name in names:
        matches = [s for s in listed if s.get("Name") == name]
        if len(matches) > 1:
            raise AmbiguousResource(KIND, name, [m["ARN"] for m in matches])
        found[name] = _to_found(matches[0]) if matches else None
    return found


def _to_found(item: dict) -> Found:
    from awsprac.engine import tags as tagging

    state = "scheduled for deletion" if item.get("DeletedDate") else "active"
    return Found(KIND, item["Name"], item["ARN"], state, tagging.as_dict(item.get("Tags")), item)


def _state(ctx: Context, found: Found | None) -> SecretState | None:
    if found is None:
        return None
    if found.raw.get("DeletedDate"):
        return SecretState(found, problem="scheduled for deletion")
    with translate("reading", f"secret {found.name}"):
        return _read(client(ctx), found)


def listed_as_seen(ctx: Context) -> dict[str, Found | None]:
    """Both DB secrets (rds-main-{env}, rds-master-{env}) as this look at the env saw them: one read."""
    cfg = ctx.cfg
    return ctx.reads.once("db secrets", lambda: _listed(ctx, [secret_name(cfg), master_secret_name(cfg)]))


def as_seen(ctx: Context) -> SecretState | None:
    """The secret as this look at the env saw it: read once, for steps secrets and rds."""
    return ctx.reads.once("secret", lambda: _state(ctx, listed_as_seen(ctx)[secret_name(ctx.cfg)]))


def _read(sm, found: Found) -> SecretState:
    try:
        reply = sm.get_secret_value(SecretId=found.id)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":  # a secret with no current version
            return SecretState(found, problem="it has no value")
        raise
    version_id = reply.get("VersionId")
    try:
        data = json.loads(reply.get("SecretString") or "")
    except ValueError:
        data = None
    del reply
    if not isinstance(data, dict):
        return SecretState(found, version_id, problem="its value is not a JSON object")
    raw_password = data.pop("DB_PASSWORD", None)
    password = Password(raw_password) if isinstance(raw_password, str) and raw_password else None
    problem = "" if password else "it holds no DB_PASSWORD"
    return SecretState(found, version_id, data, password, readable=True, problem=problem)


def generate_password(ctx: Context) -> Password:
    """A new password from Secrets Manager's own generator, without characters RDS or URLs refuse."""
    with translate("generating", "a database password (secretsmanager get-random-password)"):
        reply = client(ctx).get_random_password(
            PasswordLength=PASSWORD_LENGTH, ExcludeCharacters=EXCLUDED, RequireEachIncludedType=True,
        )
    password = Password(reply.pop("RandomPassword", ""))
    if not usable(password.reveal()):
        raise AwspracError(
            "Secrets Manager returned a password that RDS would refuse or that breaks connection strings "
            "(value withheld); nothing was changed: run the same command again"
        )
    return password


def secret_string(values: dict[str, Any], password: Password) -> str:
    """The secret's JSON: the keys docs/reference.md lists first, in order, then any a person added."""
    body = {k: values[k] for k in KEYS if k in values and k != "DB_PASSWORD"}
    body["DB_PASSWORD"] = password.reveal()
    body.update({k: v for k, v in values.items() if k not in body})
    return json.dumps(body)


def _version_token(arn: str, current_version: str | None, why: str, values: dict[str, Any]) -> str:
    # Deterministic (a retried call is one version) and password-free (the token becomes the VersionId).
    return tokens.client_token("secret-version", arn, current_version or "", why, json.dumps(values, sort_keys=True, default=str))


def put(ctx: Context, state: SecretState, values: dict[str, Any], password: Password, why: str) -> None:
    """A new current version. Callers compare first: every put is a new version."""
    token = _version_token(state.arn, state.version_id, why, values)
    with translate("writing", f"secret {state.found.name}"):
        client(ctx).put_secret_value(SecretId=state.arn, SecretString=secret_string(values, password), ClientRequestToken=token)


class _NameNotFreeYet(Exception):
    """The name is taken, yet no secret by that name is listed: a forced delete still finishing."""


NAME_FREE_WAIT = 60  # AWS finishes a forced delete in the background, within seconds


def create(ctx: Context, values: dict[str, Any], password: Password, description: str, name: str | None = None,
           kms_key_id: str | None = None) -> SecretState:
    """Create the secret (rds-main-{env} unless named); if its name turns out taken (a retried create, or
    a secret scheduled for deletion), the existing one is restored and returned instead, unchanged."""
    from awsprac.engine import tags, waiting

    name = name or secret_name(ctx.cfg)
    sm = client(ctx)
    token = tokens.client_token("secret", ctx.cfg.project, ctx.cfg.env, name)

    def attempt() -> SecretState | None:
        try:
            with translate("creating", f"secret {name}"):
                reply = sm.create_secret(
                    Name=name, Description=description, SecretString=secret_string(values, password),
                    ClientRequestToken=token, Tags=tags.as_list(ctx.tags(name)), **({"KmsKeyId": kms_key_id} if kms_key_id else {}),
                )
        except AwspracError as exc:
            if getattr(exc, "code", "") not in NAME_TAKEN_CODES:
                raise
            existing = find(ctx, name)
            if existing is None:
                raise _NameNotFreeYet(str(exc)) from None
            ctx.report.debug(f"secret {name} exists already ({existing.found.state}): using it")
            return restore(ctx, existing) if existing.pending_deletion else existing
        # What it holds is what was just sent: no need to read it back (the runner observes it again anyway).
        raw = {"ARN": reply["ARN"], "Name": name, "Description": description, "Tags": tags.as_list(ctx.tags(name))}
        found = Found(KIND, name, reply["ARN"], "active", ctx.tags(name), raw)
        plain = {k: v for k, v in values.items() if k != "DB_PASSWORD"}
        return SecretState(found, reply.get("VersionId"), plain, password, readable=True)

    try:
        existing = waiting.retry_on(lambda e: isinstance(e, _NameNotFreeYet), attempt, NAME_FREE_WAIT, ctx.report, f"creating secret {name}")
    except _NameNotFreeYet as exc:
        raise AwspracError(f"{exc}; run the same command again in a minute") from None
    return existing


def restore(ctx: Context, state: SecretState) -> SecretState:
    """Cancel a scheduled deletion; returns the secret as it is now."""
    with translate("restoring", f"secret {state.found.name}"):
        client(ctx).restore_secret(SecretId=state.arn)
    ctx.report.info(f"restored secret {state.found.name} (it was scheduled for deletion on {state.deletion_date})")
    restored = find(ctx, state.found.name)
    if restored is None or restored.pending_deletion:
        raise AwspracError(f"secret {state.found.name} could not be restored: run the same command again")
    return restored


def master_state(ctx: Context) -> SecretState | None:
    """rds-master-{env} read now, or None while it does not exist (the master is then in rds-main-{env})."""
    state = find(ctx, master_secret_name(ctx.cfg))
    if state is None:
        return None
    if state.pending_deletion:
        state = restore(ctx, state)
    if state.password is None:
        raise AwspracError(
            f"secret {state.found.name} holds no usable master password ({state.problem}): "
            f"run `awsprac db reset-password --env {ctx.cfg.env}` to set a new one and store it there"
        )
    return state


def master_host(ctx: Context, host: str) -> None:
    """DB_HOST of rds-master-{env}, when it exists, follows the instance's endpoint too."""
    master = find(ctx, master_secret_name(ctx.cfg))
    if master is None or master.pending_deletion or master.password is None or master.values.get("DB_HOST") == host:
        return
    put(ctx, master, {**master.values, "DB_HOST": host}, master.password, "db-host")


def missing_message(cfg, db_id: str, problem: str) -> str:
    return (
        f"database {db_id} exists but its secret {secret_name(cfg)} {problem}, so its master password is unknown: "
        f"run `awsprac db reset-password --env {cfg.env}` to set a new master password on it and store it"
    )
