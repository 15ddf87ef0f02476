"""envs/<env>.toml -> frozen dataclasses, validated before anything talks to AWS.

Every error names the file, the key and the value, in one line (exit code 2).
Resource names are derived here from `project` and `env`, in one place.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from awsprac.engine.errors import ConfigError, UsageError

ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
PROJECT_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
ACCOUNT = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class Network:
    vpc_cidr: str = "10.0.0.0/16"
    azs: tuple[str, ...] = ("ap-northeast-1a", "ap-northeast-1c")
    instance_tenancy: str = "default"
    dns_support: bool = True
    dns_hostnames: bool = True


@dataclass(frozen=True)
class Nat:
    mode: str = "instance"  # instance | gateway | none
    instance_type: str = "t2.micro"
    ami: str = ""  # empty: latest Amazon Linux 2023 from the public SSM parameter
    ami_owner: str = ""  # account that owns a baked `ami` given by name
    elastic_ip: bool = False


@dataclass(frozen=True)
class Database:
    engine: str = "postgres"
    engine_major: str = "17"
    instance_class: str = "db.t4g.micro"
    storage_type: str = "gp3"
    allocated_storage: int = 20
    max_allocated_storage: int = 1000
    master_username: str = "postgres"
    db_name: str = "aws_practice"
    port: int = 5432
    availability_zone: str = "ap-northeast-1a"
    multi_az: bool = False
    publicly_accessible: bool = False
    backup_retention_days: int = 1
    backup_window: str = "16:00-19:00"
    # Weekly, UTC; AWS refuses one that overlaps the backup window, and picks one at random if none is sent.
    maintenance_window: str = "tue:20:00-tue:20:30"
    copy_tags_to_snapshot: bool = True
    storage_encrypted: bool = True
    performance_insights: bool = True
    performance_insights_retention_days: int = 7
    auto_minor_version_upgrade: bool = True
    deletion_protection: bool = False
    # Modifications now, or at the next maintenance window (`up --apply-immediately` overrides).
    apply_immediately: bool = True
    # `awsprac db tunnel`: the DB security group lets the NAT instance in on the port (the guide's bastion
    # rule). Unset in the env file: on, except in env prd (tunnel_default).
    tunnel: bool = True
    # `awsprac db create-app-user`: the app's own login role, instead of the master user.
    app_username: str = "aws_practice"


@dataclass(frozen=True)
class Secrets:
    recovery_window_days: int = 7


@dataclass(frozen=True)
class Ecr:
    tag_mutability: str = "IMMUTABLE"
    encryption: str = "AES256"
    keep_images: int = 3


@dataclass(frozen=True)
class Scheduler:
    enabled: bool = True
    timezone: str = "Asia/Tokyo"
    # Weekly start then stop 30 minutes later, clear of the backup window (01:00-04:00 JST).
    start_expression: str = "cron(0 5 ? * SUN *)"
    stop_expression: str = "cron(30 5 ? * SUN *)"


# The keys of the DB secret rds-main-{env} (docs/reference.md, section 6).
DB_SECRET_KEYS = ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER_NAME", "DB_PASSWORD")
# The API reads DB_USERNAME; the secret's key is DB_USER_NAME (the guide's own mismatch).
DEFAULT_APP_SECRETS = (
    ("DB_HOST", "DB_HOST"), ("DB_PORT", "DB_PORT"), ("DB_NAME", "DB_NAME"),
    ("DB_USERNAME", "DB_USER_NAME"), ("DB_PASSWORD", "DB_PASSWORD"),
)


@dataclass(frozen=True)
class App:
    """The API on ECS Fargate behind an ALB (the README's "Run the API"); off by default (an ALB alone is ~$18/month)."""

    enabled: bool = False
    cpu: int = 256
    memory: int = 512
    desired_count: int = 1
    container_port: int = 8080
    health_check_path: str = "/"
    certificate_arn: str = ""  # ACM, same region: HTTPS 443; empty: HTTP 80
    health_check_grace_period: int = 60  # seconds the service ignores failing health checks after a task starts
    deregistration_delay: int = 30  # seconds (AWS's default 300 makes every deploy slow)
    log_retention_days: int = 7
    # container env var <- key of the DB secret rds-main-{env}
    secrets: tuple[tuple[str, str], ...] = DEFAULT_APP_SECRETS


@dataclass(frozen=True)
class EnvConfig:
    env: str
    path: Path
    project: str = "aws-practice"
    region: str = "ap-northeast-1"
    account_id: str = ""  # when set, every command refuses any other account
    profile: str = ""  # empty: aws-practice-terraform-<env>
    network: Network = field(default_factory=Network)
    nat: Nat = field(default_factory=Nat)
    database: Database = field(default_factory=Database)
    secrets: Secrets = field(default_factory=Secrets)
    ecr: Ecr = field(default_factory=Ecr)
    scheduler: Scheduler = field(default_factory=Scheduler)
    app: App = field(default_factory=App)

    @property
    def profile_name(self) -> str:
        return self.profile or f"{self.project}-terraform-{self.env}"

    @property
    def vpc_name(self) -> str:
        return f"{self.project}-{self.env}"

    @property
    def igw_name(self) -> str:
        return f"{self.project}-igw-{self.env}"

    def name(self, template: str) -> str:
        """Expand a name pattern of docs/reference.md such as '{project}-nat-{env}'."""
        return template.format(project=self.project, env=self.env)


SECTIONS = {"network": Network, "nat": Nat, "database": Database, "secrets": Secrets, "ecr": Ecr, "scheduler": Scheduler, "app": App}
TOP_LEVEL = ("project", "region", "account_id", "profile")


def env_path(envs_dir: Path, env: str) -> Path:
    return envs_dir / f"{env}.toml"


def load(envs_dir: Path, env: str) -> EnvConfig:
    """Read and validate envs/<env>.toml. Raises UsageError / ConfigError (exit 2)."""
    if not ENV_NAME.match(env):
        raise UsageError(f"bad env name {env!r}: lower-case letters, digits and '-', starting with a letter")
    path = env_path(envs_dir, env)
    if not path.is_file():
        known = sorted(p.stem for p in envs_dir.glob("*.toml")) if envs_dir.is_dir() else []
        hint = f"known envs in {envs_dir}: {', '.join(known)}" if known else "run `awsprac init` to write envs/stg.toml and envs/prd.toml"
        raise UsageError(f"unknown env {env!r}: {path} does not exist ({hint})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read: {exc}") from None
    return parse(raw, path, env)


def parse(raw: dict, path: Path, env: str) -> EnvConfig:
    top: dict = {}
    sections: dict = {}
    for key, value in raw.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(path, key, f"must be a table [{key}], got {value!r}")
            if key == "app":
                value = _app_secrets(value, path)
            sections[key] = _build(SECTIONS[key], value, path, key)
        elif key in TOP_LEVEL:
            top[key] = _coerce(str, value, path, key)
        elif key == "env":
            if value != env:
                raise ConfigError(path, "env", f"says {value!r} but the file is for env {env!r}")
        else:
            raise ConfigError(path, key, f"unknown key (known: {', '.join((*TOP_LEVEL, *SECTIONS))})")
    cfg = EnvConfig(env=env, path=path, **top, **sections)
    if "tunnel" not in (raw.get("database") or {}) and cfg.database.tunnel != tunnel_default(env):
        cfg = dataclasses.replace(cfg, database=dataclasses.replace(cfg.database, tunnel=tunnel_default(env)))
    validate(cfg)
    return cfg


def _app_secrets(values: dict, path: Path) -> dict:
    """[app.secrets] is a table ENV_VAR = "SECRET_KEY": kept as pairs, in the file's order."""
    table = values.get("secrets")
    if table is None:
        return values
    if not isinstance(table, dict):
        raise ConfigError(path, "app.secrets", f"must be a table [app.secrets] of ENV_VAR = \"SECRET_KEY\", got {table!r}")
    for var, key in table.items():
        if not isinstance(key, str):
            raise ConfigError(path, f"app.secrets.{var}", f"must be a key of the DB secret (a string), got {key!r}")
    return {**values, "secrets": [[var, key] for var, key in table.items()]}


def tunnel_default(env: str) -> bool:
    """`database.tunnel` when the env file does not say: the bastion rule stays out of production."""
    return env != "prd"


def _build(cls, values: dict, path: Path, section: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(path, f"{section}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
        kwargs[key] = _coerce(hints[key], value, path, f"{section}.{key}")
    return cls(**kwargs)


def _coerce(hint, value, path: Path, key: str):
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if not isinstance(value, list):
            raise ConfigError(path, key, f"must be a list, got {value!r}")
        return tuple(_coerce(item, v, path, key) for v in value)
    if origin in (types.UnionType, typing.Union):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    # bool is a subclass of int in Python; TOML keeps them apart, and so do we.
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(path, key, f"must be an integer, got {value!r}")
    if not isinstance(value, hint):
        raise ConfigError(path, key, f"must be a {hint.__name__}, got {value!r}")
    return value


def _fail(cfg: EnvConfig, key: str, message: str):
    raise ConfigError(cfg.path, key, message)


def validate(cfg: EnvConfig) -> None:
    """Checks that need more than one value, or more than a type."""
    if not PROJECT_NAME.match(cfg.project):
        _fail(cfg, "project", f"{cfg.project!r} must be 3-32 lower-case letters, digits and '-'")
    from awsprac import known  # local: keeps config import light

    why = known.region_problem(cfg.region)
    if why:
        _fail(cfg, "region", why)
    if cfg.account_id and not ACCOUNT.match(cfg.account_id):
        _fail(cfg, "account_id", f"{cfg.account_id!r} must be 12 digits")
    validate_network(cfg)
    nat = cfg.nat
    if nat.mode not in ("instance", "gateway", "none"):
        _fail(cfg, "nat.mode", f"{nat.mode!r} must be one of instance, gateway, none")
    if nat.ami_owner and not ACCOUNT.match(nat.ami_owner):
        _fail(cfg, "nat.ami_owner", f"{nat.ami_owner!r} must be 12 digits")
    db = cfg.database
    validate_database(cfg)
    if db.availability_zone not in cfg.network.azs:
        _fail(cfg, "database.availability_zone", f"{db.availability_zone!r} is not one of network.azs {list(cfg.network.azs)}")
    if not 20 <= db.allocated_storage <= 65536:
        _fail(cfg, "database.allocated_storage", f"{db.allocated_storage} must be 20..65536 GiB")
    if db.max_allocated_storage and db.max_allocated_storage <= db.allocated_storage:
        _fail(cfg, "database.max_allocated_storage", f"{db.max_allocated_storage} must exceed allocated_storage ({db.allocated_storage}), or be 0 for no autoscaling")
    if not 0 <= db.backup_retention_days <= 35:
        _fail(cfg, "database.backup_retention_days", f"{db.backup_retention_days} must be 0..35")
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", db.backup_window):
        _fail(cfg, "database.backup_window", f"{db.backup_window!r} must look like 16:00-19:00 (UTC)")
    _check_maintenance_window(cfg)
    pi = db.performance_insights_retention_days
    if pi not in (7, 731) and not (pi % 31 == 0 and 31 <= pi <= 713):
        _fail(cfg, "database.performance_insights_retention_days", f"{pi} must be 7, a multiple of 31 up to 713, or 731")
    if not 1 <= db.port <= 65535:
        _fail(cfg, "database.port", f"{db.port} is not a port")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,62}", db.db_name):
        _fail(cfg, "database.db_name", f"{db.db_name!r} must start with a letter: letters, digits, '_'")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", db.app_username):
        _fail(cfg, "database.app_username", f"{db.app_username!r} must be lower-case letters, digits and '_', starting with a letter or '_'")
    if db.app_username == db.master_username:
        _fail(cfg, "database.app_username", f"{db.app_username!r} is the master user: the app needs a role of its own")
    if not 0 <= cfg.secrets.recovery_window_days <= 30 or cfg.secrets.recovery_window_days in range(1, 7):
        _fail(cfg, "secrets.recovery_window_days", f"{cfg.secrets.recovery_window_days} must be 7..30 (or 0 for immediate deletion)")
    if cfg.ecr.tag_mutability not in ("IMMUTABLE", "MUTABLE"):
        _fail(cfg, "ecr.tag_mutability", f"{cfg.ecr.tag_mutability!r} must be IMMUTABLE or MUTABLE")
    if cfg.ecr.encryption not in ("AES256", "KMS"):
        _fail(cfg, "ecr.encryption", f"{cfg.ecr.encryption!r} must be AES256 or KMS")
    if cfg.ecr.keep_images < 1:
        _fail(cfg, "ecr.keep_images", f"{cfg.ecr.keep_images} must be at least 1")
    validate_scheduler(cfg)
    validate_app(cfg)


def validate_database(cfg: EnvConfig) -> None:
    from awsprac import known

    db = cfg.database
    why = known.engine_problem(db.engine)
    if why:
        _fail(cfg, "database.engine", why)
    why = known.engine_major_problem(db.engine, db.engine_major)
    if why:
        _fail(cfg, "database.engine_major", why)
    if not re.fullmatch(r"db\.[a-z0-9-]+\.[a-z0-9-]+", db.instance_class):
        _fail(cfg, "database.instance_class", f"{db.instance_class!r} is not an RDS instance class: they look like db.t4g.micro (with the db. prefix)")


def validate_scheduler(cfg: EnvConfig) -> None:
    """What EventBridge Scheduler would refuse, refused here (checked even while the schedules are off)."""
    import zoneinfo

    from awsprac import known

    s = cfg.scheduler
    # The tz database's own files that are not zone names (listing every zone costs ~0.2 s: not done).
    known_zone = not s.timezone.startswith(("posix/", "right/")) and s.timezone not in ("localtime", "Factory", "posixrules")
    try:
        zoneinfo.ZoneInfo(s.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # not found, not a key, not a zone file
        known_zone = False
    if not known_zone:
        _fail(cfg, "scheduler.timezone", f"{s.timezone!r} is not an IANA time zone name (like Asia/Tokyo or UTC)")
    for key in ("start_expression", "stop_expression"):
        value = getattr(s, key)
        why = known.expression_problem(value)
        if why:
            _fail(cfg, f"scheduler.{key}", f"{value!r}: {why}")


# Fargate's cpu units and the memory (MiB) each allows.
FARGATE_SIZES = {
    256: (512, 1024, 2048), 512: tuple(range(1024, 4097, 1024)), 1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)), 4096: tuple(range(8192, 30721, 1024)),
}


def validate_app(cfg: EnvConfig) -> None:
    app = cfg.app
    if app.cpu not in FARGATE_SIZES:
        _fail(cfg, "app.cpu", f"{app.cpu} must be one of Fargate's {', '.join(map(str, FARGATE_SIZES))}")
    if app.memory not in FARGATE_SIZES[app.cpu]:
        _fail(cfg, "app.memory", f"{app.memory} MiB does not go with cpu {app.cpu} on Fargate ({', '.join(map(str, FARGATE_SIZES[app.cpu]))})")
    if not 0 <= app.desired_count <= 100:
        _fail(cfg, "app.desired_count", f"{app.desired_count} must be 0..100")
    if not 1 <= app.container_port <= 65535:
        _fail(cfg, "app.container_port", f"{app.container_port} is not a port")
    if not app.health_check_path.startswith("/") or len(app.health_check_path) > 1024:
        _fail(cfg, "app.health_check_path", f"{app.health_check_path!r} must be a path starting with '/'")
    if app.certificate_arn and not re.fullmatch(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+", app.certificate_arn):
        _fail(cfg, "app.certificate_arn", f"{app.certificate_arn!r} is not an ACM certificate ARN")
    if app.certificate_arn and app.certificate_arn.split(":")[3] != cfg.region:
        _fail(cfg, "app.certificate_arn", f"the certificate must be in the env's region {cfg.region}, not {app.certificate_arn.split(':')[3]}")
    if not 0 <= app.health_check_grace_period <= 2147483647:
        _fail(cfg, "app.health_check_grace_period", f"{app.health_check_grace_period} must be 0 or more seconds")
    if not 0 <= app.deregistration_delay <= 3600:
        _fail(cfg, "app.deregistration_delay", f"{app.deregistration_delay} must be 0..3600 seconds")
    retention = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
    if app.log_retention_days not in retention:
        _fail(cfg, "app.log_retention_days", f"{app.log_retention_days} is not a CloudWatch Logs retention (1, 3, 5, 7, 14, 30, 60, 90, ...)")
    for var, key in app.secrets:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
            _fail(cfg, f"app.secrets.{var}", f"{var!r} is not an environment variable name")
        if key not in DB_SECRET_KEYS:
            _fail(cfg, f"app.secrets.{var}", f"{key!r} is not a key of the DB secret ({', '.join(DB_SECRET_KEYS)})")


def validate_network(cfg: EnvConfig) -> None:
    net = cfg.network
    try:
        vpc = ipaddress.IPv4Network(net.vpc_cidr)
    except ValueError as exc:
        _fail(cfg, "network.vpc_cidr", f"{net.vpc_cidr!r} is not an IPv4 CIDR block ({exc})")
    if not 16 <= vpc.prefixlen <= 28:
        _fail(cfg, "network.vpc_cidr", f"{net.vpc_cidr!r}: AWS allows VPC blocks from /16 to /28")
    if not net.azs:
        _fail(cfg, "network.azs", "must list at least one availability zone")
    if len(set(net.azs)) != len(net.azs):
        _fail(cfg, "network.azs", f"{list(net.azs)} lists a zone twice")
    for az in net.azs:
        if not (az.startswith(cfg.region) and re.fullmatch(r"[a-z]", az[len(cfg.region):])):
            _fail(cfg, "network.azs", f"{az!r} is not a zone of region {cfg.region!r} (like {cfg.region}a)")
    if net.instance_tenancy not in ("default", "dedicated"):
        _fail(cfg, "network.instance_tenancy", f"{net.instance_tenancy!r} must be default or dedicated")
    from awsprac.engine.cidr import SubnetSplitError, split  # local: keeps config import light

    try:
        split(net.vpc_cidr, len(net.azs) * 2)
    except SubnetSplitError as exc:
        _fail(cfg, "network.vpc_cidr", f"{net.vpc_cidr!r}: {exc}")


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEK = 7 * 24 * 60


def _check_maintenance_window(cfg: EnvConfig) -> None:
    db, key = cfg.database, "database.maintenance_window"
    match = re.fullmatch(r"(\w{3}):([01]\d|2[0-3]):([0-5]\d)-(\w{3}):([01]\d|2[0-3]):([0-5]\d)", db.maintenance_window.lower())
    if not match or match.group(1) not in DAYS or match.group(4) not in DAYS:
        _fail(cfg, key, f"{db.maintenance_window!r} must look like tue:20:00-tue:20:30 (weekly, UTC)")
    d0, h0, m0, d1, h1, m1 = match.groups()
    start = DAYS.index(d0) * 1440 + int(h0) * 60 + int(m0)
    end = DAYS.index(d1) * 1440 + int(h1) * 60 + int(m1)
    end += WEEK if end <= start else 0
    if end - start < 30:
        _fail(cfg, key, f"{db.maintenance_window!r} must last at least 30 minutes")
    if windows_overlap(db.backup_window, start, end):
        _fail(cfg, key, f"{db.maintenance_window!r} overlaps database.backup_window {db.backup_window} (AWS refuses windows that overlap): move one of them")


def windows_overlap(backup: str, start: int, end: int) -> bool:
    """The daily backup window 'hh:mm-hh:mm' against a weekly window [start, end) in minutes from Monday 00:00 UTC."""
    b0, b1 = (int(t[:2]) * 60 + int(t[3:]) for t in backup.split("-"))
    b1 += 1440 if b1 <= b0 else 0
    return any(day * 1440 + b0 < end + shift and start + shift < day * 1440 + b1 for day in range(-1, 8) for shift in (-WEEK, 0, WEEK))
