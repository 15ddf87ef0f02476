"""`awsprac profile import | create-user | check`: the CLI user's access key in a named profile (docs/reference.md section 1).

The guide's manual part (an IAM user with AdministratorAccess, an access key downloaded as
CSV, `aws configure`, sections renamed by hand, direnv) as commands. The secret key is never
printed: messages name the key by its masked id only.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from awsprac.steps.profile import inifiles
from awsprac.engine.app import App, Identity
from awsprac.engine.errors import AccountMismatch, AwspracError, UsageError

KEY_ID = re.compile(r"^AKIA[A-Z0-9]{16}$")  # a long-term IAM user key (ASIA... keys need a session token)
SECRET = re.compile(r"^[A-Za-z0-9/+]{40}$")
KEY_ID_COLUMN, SECRET_COLUMN, USER_COLUMN = "access key id", "secret access key", "user name"
ADMIN_POLICY = "AdministratorAccess"
NEW_KEY_BUDGET = 60.0  # seconds: a new access key takes a few seconds to be accepted everywhere


@dataclass(frozen=True)
class AccessKey:
    key_id: str
    secret: str = field(repr=False)
    user_name: str | None = None

    @property
    def masked(self) -> str:
        return mask(self.key_id)


def mask(key_id: str | None) -> str:
    """As `aws configure list` shows a key: enough to recognise it, not to use it."""
    return f"****************{key_id[-4:]}" if key_id else "(none)"


# --- the console's CSV ---


def read_csv(path: Path) -> AccessKey:
    """The access-key CSV the IAM console downloads (UTF-8 with BOM, CRLF), with or without a `User name` column."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file (the CSV the IAM console downloads when an access key is created)") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a UTF-8 CSV file (expected the access-key CSV the IAM console downloads)") from None
    rows = [row for row in csv.reader(io.StringIO(text, newline="")) if any(cell.strip() for cell in row)]
    # Never echo cells: a CSV without its header row holds the secret key in its "first line".
    if not rows:
        raise UsageError(f"{path}: empty: expected a header row and one access key row")
    header = [cell.strip().lower() for cell in rows[0]]
    if KEY_ID_COLUMN not in header or SECRET_COLUMN not in header:
        raise UsageError(
            f"{path}: not an access-key CSV: expected a header row with columns "
            f"'Access key ID' and 'Secret access key' (optionally 'User name')"
        )
    data = rows[1:]
    if not data:
        raise UsageError(f"{path}: no access key row under the header")
    if len(data) > 1:
        raise UsageError(f"{path}: {len(data)} access key rows; expected exactly one (the console writes one CSV per key)")
    (row,) = data
    cells = dict(zip(header, (cell.strip() for cell in row)))
    key_id, secret = cells.get(KEY_ID_COLUMN, ""), cells.get(SECRET_COLUMN, "")
    if not KEY_ID.match(key_id):
        raise UsageError(f"{path}: the 'Access key ID' value is not an access key ID (AKIA and 16 upper-case letters or digits; value withheld)")
    if not SECRET.match(secret):
        raise UsageError(f"{path}: the 'Secret access key' value is not a secret access key (40 characters; value withheld)")
    return AccessKey(key_id, secret, cells.get(USER_COLUMN) or None)


# --- the profile in ~/.aws ---


@dataclass
class ProfileEdit:
    """The edits that put a key into a profile, computed before anything is written."""

    credentials: inifiles.Document
    config: inifiles.Document
    profile: str

    @property
    def current_key_id(self) -> str | None:
        return self.credentials.get(self.profile, "aws_access_key_id")

    def holds(self, key: AccessKey) -> bool:
        return (self.current_key_id, self.credentials.get(self.profile, "aws_secret_access_key")) == (key.key_id, key.secret)

    def put(self, key: AccessKey, region: str) -> list[inifiles.Edit]:
        if not self.holds(key):
            self.credentials.set(self.profile, {"aws_access_key_id": key.key_id, "aws_secret_access_key": key.secret})
            # A session token left from temporary credentials would be sent with the new key, and refused.
            for stale in ("aws_session_token", "aws_security_token"):
                self.credentials.remove(self.profile, stale)
        self.config.set(inifiles.config_section(self.profile), {"region": region, "output": "json"})
        return [self.credentials.edit(), self.config.edit()]


def load_profile(files: inifiles.AwsFiles, profile: str) -> ProfileEdit:
    return ProfileEdit(inifiles.Document.load(files.credentials), inifiles.Document.load(files.config), profile)


def refuse_other_key(edit: ProfileEdit, files: inifiles.AwsFiles, new_key_id: str | None, force: bool) -> None:
    current = edit.current_key_id
    if current and current != new_key_id and not force:
        raise UsageError(
            f"profile {edit.profile} in {files.credentials} already holds another access key ({mask(current)}); "
            f"--force replaces it (the old file is kept as a timestamped backup)"
        )


def _refuse_sandbox(app: App) -> None:
    if app.settings.sandbox:
        raise UsageError("profile commands edit your real ~/.aws files: they do not run with --sandbox")


# --- commands ---


def import_csv(app: App, csv_path: Path, direnv: bool, force: bool) -> None:
    """Validate the CSV and the key (sts) first; write the profile (and .envrc) only when all is well."""
    _refuse_sandbox(app)
    cfg, report = app.cfg, app.report
    profile = cfg.profile_name
    key = read_csv(csv_path)
    user = cfg.name("{project}-terraform-{env}")
    if key.user_name and key.user_name != user:
        report.warn(f"{csv_path} is for IAM user {key.user_name!r}, not {user!r} (awsprac's CLI user for env {cfg.env})")
    files = inifiles.AwsFiles.locate()
    edit = load_profile(files, profile)
    refuse_other_key(edit, files, key.key_id, force)
    edits = edit.put(key, cfg.region)
    warnings: list[str] = []
    if direnv:
        envrc, warnings = inifiles.envrc_edit(Path.cwd() / ".envrc", profile)
        edits.append(envrc)
    # The key itself must work, in the right account, before it is stored anywhere.
    identity = _identity_of_key(app, key, csv_path)
    _say_written(app, profile, inifiles.write_all(edits))
    resolved = identity_of_profile(app, profile)
    if resolved != identity:
        raise AwspracError(f"profile {profile} resolves to {resolved.arn}, not to the imported key's {identity.arn}: check {files.credentials} and {files.config}")
    for warning in warnings:
        report.warn(warning)
    if direnv:
        report.info(f"run `direnv allow` in {Path.cwd()} to load AWS_PROFILE={profile}")
    _show_identity(app, profile, identity)
    report.info(f"delete {csv_path} now: the key is in {files.credentials}, and the CSV is a plain-text copy of its secret")


def create_user(app: App, force: bool) -> None:
    """With administrator credentials: the CLI user, AdministratorAccess, a key written straight into the profile."""
    from awsprac.engine import tags
    from awsprac.engine.aws import error_code, translate

    _refuse_sandbox(app)
    ctx = app.context()
    cfg, report = app.cfg, app.report
    profile = cfg.profile_name  # --profile names the administrator's credentials here
    user = cfg.name("{project}-terraform-{env}")
    iam = ctx.aws.client("iam")
    files = inifiles.AwsFiles.locate()
    edit = load_profile(files, profile)
    partition = app.identity.arn.split(":")[1]
    policy_arn = f"arn:{partition}:iam::aws:policy/{ADMIN_POLICY}"

    with translate("looking up", f"IAM user {user}"):
        try:
            iam.get_user(UserName=user)
            exists = True
        except Exception as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            exists = False
        keys, attached, console = [], [], False
        if exists:
            keys = [k for page in iam.get_paginator("list_access_keys").paginate(UserName=user) for k in page["AccessKeyMetadata"]]
            attached = [p["PolicyArn"] for page in iam.get_paginator("list_attached_user_policies").paginate(UserName=user) for p in page["AttachedPolicies"]]
            try:
                iam.get_login_profile(UserName=user)
                console = True
            except Exception as exc:
                if error_code(exc) != "NoSuchEntity":
                    raise

    current = edit.current_key_id
    mine = {k["AccessKeyId"]: k for k in keys}
    in_place = current in mine
    if in_place and mine[current]["Status"] != "Active":
        raise UsageError(f"profile {profile} holds access key {mask(current)} of user {user}, but it is {mine[current]['Status']}: activate it in the IAM console, or delete it and run again")
    if not in_place:
        refuse_other_key(edit, files, None, force)
        if len(keys) >= 2:
            raise UsageError(
                f"user {user} already has {len(keys)} access keys ({', '.join(mask(k) for k in mine)}), AWS's limit, and profile {profile} "
                f"holds neither: delete the one you no longer use (IAM console, or `aws iam delete-access-key --user-name {user} "
                f"--access-key-id ID`), then run again"
            )
        # The secret is shown once, at creation: make sure it can be stored before asking for it.
        inifiles.probe([files.credentials, files.config])
    if console:
        report.warn(f"user {user} can sign in to the console (it has a password); awsprac's CLI user has none: remove it in the IAM console")

    if not exists:
        with translate("creating", f"IAM user {user}"):
            iam.create_user(UserName=user, Tags=tags.as_list(ctx.tags(user)))
        report.applied(f"created IAM user {user} (no console access)")
    if policy_arn not in attached:
        with translate("attaching", f"{ADMIN_POLICY} to IAM user {user}"):
            iam.attach_user_policy(UserName=user, PolicyArn=policy_arn)
        report.applied(f"attached {ADMIN_POLICY} to {user}")
    if in_place:
        written = inifiles.write_all(edit.put(AccessKey(current, edit.credentials.get(profile, "aws_secret_access_key") or ""), cfg.region))
        report.info(f"profile {profile} already holds {user}'s access key {mask(current)}")
        key = None
    else:
        with translate("creating", f"an access key for IAM user {user}"):
            created = iam.create_access_key(UserName=user)["AccessKey"]
        key = AccessKey(created["AccessKeyId"], created["SecretAccessKey"], user)
        try:
            written = inifiles.write_all(edit.put(key, cfg.region))
        except AwspracError:
            # Not stored: an unusable key would only count against the user's two.
            with translate("deleting", f"the unstored access key {key.masked}"):
                iam.delete_access_key(UserName=user, AccessKeyId=key.key_id)
            raise
        report.applied(f"created access key {key.masked} for {user}")
    _say_written(app, profile, written)
    identity = identity_of_profile(app, profile, budget=NEW_KEY_BUDGET if key else 0.0)
    _show_identity(app, profile, identity)


def check(app: App) -> None:
    """Profile resolves, its identity, the account against the env's pin, the region."""
    import os

    import botocore.session

    from awsprac.engine.aws import resolve_profile

    _refuse_sandbox(app)
    cfg, report = app.cfg, app.report
    # The README's precedence, as every other command has it: --profile > AWS_PROFILE > the env file's profile
    profile, source = resolve_profile(app.settings.profile, cfg.profile_name)
    if profile is None:  # the env's profile does not exist yet: that is what to report
        profile, source = cfg.profile_name, "the env file"
    files = inifiles.AwsFiles.locate()
    session = botocore.session.Session()
    if profile not in session.available_profiles:
        if source != "the env file":
            raise UsageError(f"profile {profile} (from {source}) not found in {files.credentials} or {files.config}: "
                             f"fix {source}, or leave it out to check the env's profile {cfg.profile_name}")
        raise UsageError(
            f"profile {profile} not found in {files.credentials} or {files.config}: run "
            f"`awsprac profile import --env {cfg.env} --csv FILE` or `awsprac profile create-user --env {cfg.env}`"
        )
    identity = identity_of_profile(app, profile, enforce_pin=False)
    region = session.full_config.get("profiles", {}).get(profile, {}).get("region")
    key_id = inifiles.Document.load(files.credentials).get(profile, "aws_access_key_id")
    wrong_account = bool(cfg.account_id) and identity.account != cfg.account_id
    if not cfg.account_id:
        account = f"{identity.account} (the env file pins no account)"
    else:
        account = f"{identity.account} ({'NOT ' if wrong_account else ''}the account {cfg.path} pins)"
    report.key_values({
        "profile": profile if source == "the env file" else f"{profile} (from {source})",
        "access key": mask(key_id) if key_id else "(not in the credentials file)",
        "account": account,
        "arn": identity.arn,
        "region": region or "(none)",
        "credentials file": str(files.credentials),
        "config file": str(files.config),
    }, f"Profile for env {cfg.env}")
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        report.warn("AWS_ACCESS_KEY_ID is set in this shell: it beats AWS_PROFILE for the AWS CLI and SDKs; unset it")
    if wrong_account:
        raise AccountMismatch(f"profile {profile} reaches account {identity.account}, but {cfg.path} pins env {cfg.env} to account {cfg.account_id}")
    if region != cfg.region:
        raise UsageError(f"profile {profile} has region {region or '(none)'} but env {cfg.env} uses {cfg.region}: `awsprac profile import` sets it, or edit {files.config}")
    report.info(f"profile {profile} is ready for env {cfg.env}")


# --- identity ---

AUTH_CODES = ("InvalidClientTokenId", "AuthFailure", "SignatureDoesNotMatch", "UnrecognizedClientException")


def _who(clients, what: str) -> Identity:
    from awsprac.engine.aws import translate

    with translate("checking", f"{what} (sts get-caller-identity)"):
        who = clients.client("sts").get_caller_identity()
    return Identity(who["Account"], who["Arn"])


def _pin(app: App, identity: Identity, whose: str, after: str = "") -> None:
    cfg = app.cfg
    if cfg.account_id and identity.account != cfg.account_id:
        raise AccountMismatch(
            f"{whose} belongs to account {identity.account} ({identity.arn}), but {cfg.path} pins env {cfg.env} "
            f"to account {cfg.account_id}{after}"
        )


def _identity_of_key(app: App, key: AccessKey, source: Path) -> Identity:
    """The key from the CSV, tried as it is, before it is stored anywhere."""
    import boto3

    from awsprac.engine import aws
    from awsprac.engine.errors import AwsError

    aws.quiet_sdk_loggers()
    session = boto3.Session(
        botocore_session=aws._botocore_session(), aws_access_key_id=key.key_id, aws_secret_access_key=key.secret, region_name=app.cfg.region,
    )
    clients = aws.Aws(session=session, region=app.cfg.region, profile=None)
    try:
        identity = _who(clients, f"the access key {key.masked} from {source}")
    except AwsError as exc:
        hint = "the key was deleted, deactivated, or the CSV is not the one just downloaded; " if exc.code in AUTH_CODES else ""
        raise AwsError(exc.doing, exc.resource, exc.code, exc.aws_message, hint + "nothing was written") from None
    _pin(app, identity, f"the access key {key.masked}", "; nothing was written")
    return identity


def identity_of_profile(app: App, profile: str, budget: float = 0.0, enforce_pin: bool = True) -> Identity:
    """`sts get-caller-identity` through the profile itself (an explicit profile beats environment keys)."""
    from awsprac.engine import aws, waiting
    from awsprac.engine.errors import AwsError

    clients, _ = aws.make(profile, "", app.cfg.region)

    def not_yet_valid(exc: Exception) -> bool:
        return isinstance(exc, AwsError) and exc.code in AUTH_CODES

    identity = waiting.retry_on(not_yet_valid, lambda: _who(clients, f"profile {profile}"), budget, app.report, "the new access key")
    if enforce_pin:
        _pin(app, identity, f"profile {profile}")
    return identity


def _say_written(app: App, profile: str, written: list[inifiles.Written]) -> None:
    if not written:
        app.report.info(f"profile {profile} already holds this key and the env's region: nothing written")
        return
    for w in written:
        backup = f" (previous version kept as {w.backup})" if w.backup else ""
        app.report.info(f"wrote {w.path}{backup}")


def _show_identity(app: App, profile: str, identity: Identity) -> None:
    app.report.key_values({"profile": profile, "account": identity.account, "arn": identity.arn}, f"Profile {profile} works")
