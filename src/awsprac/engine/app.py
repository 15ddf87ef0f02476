"""What a command needs, made once: the env's config, AWS clients behind the account guard, the reporter."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from awsprac.engine.errors import AccountMismatch, Aborted


@dataclass
class Settings:
    """Global flags, given before or after the command name."""

    envs_dir: Path = Path("envs")
    profile: str | None = None
    region: str | None = None
    yes: bool = False
    verbose: bool = False
    debug: bool = False
    sandbox: bool = False


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str


class App:
    def __init__(self, settings: Settings, env: str):
        self.settings = settings
        from awsprac import config  # here, not at the top: `awsprac --help` never parses an env file

        cfg = config.load(settings.envs_dir, env)
        if settings.region:
            check_region_flag(settings.region, cfg)
        if settings.region and settings.region != cfg.region:
            cfg = dataclasses.replace(cfg, region=settings.region)
            config.validate(cfg)
        self.cfg = cfg
        from awsprac.engine.report import Reporter

        self.report = Reporter(verbose=settings.verbose)
        self.sandbox = None
        self._ctx = None
        self.identity: Identity | None = None

    def context(self, all_clients: bool = False, **options):
        """Clients made, identity checked against the env's account pin: only then may anything be sent.
        `all_clients`: for commands that look at every step, every service's client is made before the
        first request (CPU work better done before a run's round trips than between them); the others
        make only the clients they use, when they use them."""
        if self._ctx is not None:
            return self._ctx
        from awsprac.engine import aws
        from awsprac.engine.context import Context, Options

        if self.settings.sandbox:
            from awsprac.engine.sandbox import Sandbox

            self.sandbox = Sandbox.start(account_id=self.cfg.account_id or None)
            self.report.banner(f" SANDBOX: local AWS emulation at {self.sandbox.endpoint}, nothing real is touched ")
        profile = None if self.settings.sandbox else self.settings.profile
        env_profile = "" if self.settings.sandbox else self.cfg.profile_name
        clients, warning = aws.make(profile, env_profile, self.cfg.region)
        if warning:
            self.report.warn(warning)
        if all_clients:
            clients.prepare(aws.SERVICES + (aws.APP_SERVICES if self.cfg.app.enabled else ()))
        self.identity = check_account(clients, self.cfg)
        self.report.debug(f"account {self.identity.account} as {self.identity.arn}, region {self.cfg.region}")
        self._ctx = Context(self.cfg, clients, self.report, Options(**options), identity={"Account": self.identity.account, "Arn": self.identity.arn})
        return self._ctx

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None

    def confirm(self, question: str) -> None:
        """Ask before a change (--yes and the sandbox skip the question); no yes: nothing changed."""
        if self.settings.yes or self.settings.sandbox:
            return
        answer = ask(f"{question} [y/N]")
        if answer.lower() not in ("y", "yes"):
            raise Aborted("cancelled: nothing was changed")

    @property
    def title(self) -> str:
        account = f" · account {self.identity.account}" if self.identity else ""
        return f"env {self.cfg.env}{account} · {self.cfg.region}"


def check_region_flag(region: str, cfg=None) -> None:
    """--region is checked as the flag it is: the message names the flag, not the env file. It beats the
    env file's region, but the file's zones stay: when they do not fit, the flag is the problem too."""
    from awsprac import known
    from awsprac.engine.errors import UsageError

    why = known.region_problem(region)
    if why:
        raise UsageError(f"--region: {why}")
    if cfg is None:
        return
    zones = [*cfg.network.azs, cfg.database.availability_zone]
    if any(not zone.startswith(region) for zone in zones):
        raise UsageError(
            f"--region {region} does not fit env {cfg.env}: {cfg.path} builds in {cfg.region} (zones {', '.join(cfg.network.azs)}); "
            f"leave --region out, or change region, network.azs and database.availability_zone in the env file together"
        )


def check_account(clients, cfg) -> Identity:
    """`sts get-caller-identity` needs no permission: the guard before any change."""
    from awsprac.engine.aws import translate

    with translate("checking", "the caller identity (sts get-caller-identity)"):
        who = clients.client("sts").get_caller_identity()
    identity = Identity(who["Account"], who["Arn"])
    if cfg.account_id and identity.account != cfg.account_id:
        raise AccountMismatch(
            f"refusing to touch account {identity.account}: {cfg.path} pins env {cfg.env} to account "
            f"{cfg.account_id} (credentials: {identity.arn}); use the env's profile (--profile {cfg.profile_name})"
        )
    return identity


def ask(prompt: str) -> str:
    import sys

    import click

    click.echo(f"{prompt}: ", nl=False, err=True)
    line = sys.stdin.readline()
    if not line:
        click.echo("", err=True)
        raise Aborted("no answer (standard input is closed): nothing was changed; pass --yes to skip the question")
    return line.strip()
