"""`awsprac db tunnel` and `db psql`: Session Manager port forwarding to the private database through the
NAT instance (it has the SSM role already), the way the AWS CLI's `aws ssm start-session` does it.

boto3 starts the session (`ssm.start_session`); the `session-manager-plugin` executable carries it, given
the session's response (through AWS_SSM_START_SESSION_RESPONSE when the plugin is new enough), the region,
`StartSession`, the profile, the request as JSON and the SSM endpoint. The tunnel is ready when the plugin
prints "Waiting for connections"; its exit status is not trusted. Whatever ends the tunnel (Ctrl-C, an
error, psql quitting), the plugin is stopped and the session terminated (`ssm.terminate_session`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass
from typing import Iterator

from awsprac.engine.app import App
from awsprac.engine.aws import translate
from awsprac.engine.context import Context
from awsprac.engine.errors import AwspracError, UsageError

DOCUMENT = "AWS-StartPortForwardingSessionToRemoteHost"
PLUGIN = "session-manager-plugin"
READY = "Waiting for connections"
RESPONSE_ENV = "AWS_SSM_START_SESSION_RESPONSE"
# Plugins newer than this take the session response from RESPONSE_ENV instead of an argument (AWS CLI).
LAST_PLUGIN_WITHOUT_ENV = (1, 2, 497, 0)
READY_WAIT = 60.0  # seconds for the plugin to open the local port
DEFAULT_LOCAL_PORT = 15432
PLUGIN_HELP = (
    f"{PLUGIN} is not installed or not on PATH: install the Session Manager plugin "
    "(https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html), "
    "then run again"
)


@dataclass(frozen=True)
class Target:
    instance_id: str
    nat_name: str
    host: str  # the DB endpoint
    port: int


def find_plugin() -> str:
    """Checked before any session is started: a session without a plugin would idle on the instance."""
    path = shutil.which(PLUGIN)
    if path is None:
        raise UsageError(PLUGIN_HELP)
    return path


def check_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise UsageError(f"local port {port} is already in use on 127.0.0.1: pick another with --local-port") from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def target(ctx: Context) -> Target:
    """The NAT instance to go through and the DB endpoint to reach, or exit 2 saying what to run."""
    from awsprac.engine import lookup
    from awsprac.steps import nat, rds

    cfg, env = ctx.cfg, ctx.cfg.env
    if cfg.nat.mode != "instance":
        raise UsageError(
            f"nat.mode is {cfg.nat.mode} in {cfg.path}: the tunnel goes through the NAT instance; "
            f"set mode = \"instance\" under [nat] and run `awsprac up --env {env}`"
        )
    if not cfg.database.tunnel:
        raise UsageError(
            f"database.tunnel is off in {cfg.path}, so the DB security group does not let the NAT instance in: "
            f"set tunnel = true under [database] and run `awsprac up --env {env}`"
        )
    name = nat.names(cfg).instance
    with translate("looking up", f"NAT instance {name}"):
        instances = lookup.find_by_names(ctx.aws.ec2, lookup.INSTANCE, [name])
    instance = instances.get(name)
    if instance is None:
        raise UsageError(f"there is no NAT instance {name} in env {env}: run `awsprac up --env {env}`")
    if instance.state != "running":
        hint = f"`awsprac start --env {env}` starts it" if instance.state in ("stopped", "stopping") else "wait until it is running"
        raise UsageError(f"NAT instance {name} is {instance.state}: the tunnel needs it running; {hint}")
    db = rds.find(ctx)
    endpoint = (db or {}).get("Endpoint") or {}
    if not endpoint.get("Address"):
        state = f"is {db.get('DBInstanceStatus')} and has no endpoint yet" if db else "does not exist"
        raise UsageError(f"DB instance {rds.db_name(cfg)} {state}: run `awsprac up --env {env}` (or `awsprac start --env {env}`)")
    return Target(instance.id, name, endpoint["Address"], int(endpoint.get("Port") or cfg.database.port))


def request(t: Target, local_port: int) -> dict:
    return {
        "Target": t.instance_id,
        "DocumentName": DOCUMENT,
        "Parameters": {"host": [t.host], "portNumber": [str(t.port)], "localPortNumber": [str(local_port)]},
    }


def _takes_env(plugin: str) -> bool:
    """Does this plugin read the session response from RESPONSE_ENV? (the AWS CLI's version test)"""
    try:
        out = subprocess.run([plugin, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    version = re.sub(r"\s+", "", out)
    if not re.fullmatch(r"\d+(\.\d+){0,3}", version):
        return False
    parts = [int(p) for p in version.split(".")]
    return tuple(parts + [0] * (4 - len(parts))) > LAST_PLUGIN_WITHOUT_ENV


class Tunnel:
    """A running session: the plugin process and the session id."""

    def __init__(self, ctx: Context, plugin: str, t: Target, local_port: int):
        self.ctx, self.target, self.local_port = ctx, t, local_port
        self.ssm = ctx.aws.client("ssm")
        params = request(t, local_port)
        with translate("starting", f"a Session Manager session to {t.nat_name} ({t.instance_id})"):
            response = self.ssm.start_session(**params)
        self.session_id = response["SessionId"]
        self.process: subprocess.Popen | None = None
        try:
            self._run_plugin(plugin, response, params)
        except BaseException:
            self.close()
            raise

    def _run_plugin(self, plugin: str, response: dict, params: dict) -> None:
        session = json.dumps({k: response[k] for k in ("SessionId", "TokenValue", "StreamUrl")})
        env = dict(os.environ)
        if _takes_env(plugin):
            env[RESPONSE_ENV], session = session, RESPONSE_ENV
        profile = self.ctx.aws.profile or ""  # the plugin reads the same credentials
        args = [plugin, session, self.ctx.cfg.region, "StartSession", profile, json.dumps(params), self.ssm.meta.endpoint_url]
        # Its own session: a Ctrl-C reaches awsprac, which then stops the plugin and terminates the session.
        self.process = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, start_new_session=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_pump, args=(self.process.stdout, lines), daemon=True).start()
        seen: list[str] = []
        while True:
            try:
                line = lines.get(timeout=READY_WAIT)
            except queue.Empty:
                raise AwspracError(f"{PLUGIN} did not open local port {self.local_port} within {int(READY_WAIT)}s; the session was terminated") from None
            if line is None:
                said = next((s for s in reversed(seen) if s.strip()), "no output")
                raise AwspracError(f"{PLUGIN} ended before the tunnel was open ({said.strip()}); the session was terminated: run again")
            seen.append(line)
            if READY in line:
                return

    def wait(self) -> None:
        """Until the plugin ends (the session closed on AWS's side) or Ctrl-C."""
        if self.process is not None:
            self.process.wait()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with translate("terminating", f"Session Manager session {self.session_id}"):
            self.ssm.terminate_session(SessionId=self.session_id)


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def opened(ctx: Context, local_port: int | None = None) -> Iterator[Tunnel]:
    """A tunnel for the time of the block; closed (plugin stopped, session terminated) however it ends."""
    plugin = find_plugin()
    t = target(ctx)
    port = local_port or free_port()
    check_port(port)
    tunnel = Tunnel(ctx, plugin, t, port)
    try:
        yield tunnel
    finally:
        tunnel.close()


@contextlib.contextmanager
def user_signals_to_child() -> Iterator[None]:
    """While psql runs in the foreground, Ctrl-C is psql's (it cancels a query), not awsprac's. A handler
    that does nothing, not SIG_IGN: handlers are reset in the child at exec, an ignored signal is not."""
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def tunnel_command(app: App, local_port: int) -> None:
    ctx = app.context()
    cfg = ctx.cfg
    find_plugin()
    check_port(local_port)
    session = None
    try:  # Ctrl-C is how a tunnel ends: whenever it comes, the plugin is stopped and the session terminated
        with opened(ctx, local_port) as tunnel:
            session, t = tunnel.session_id, tunnel.target
            app.report.line(f"tunnel open: 127.0.0.1:{local_port} -> {t.host}:{t.port} through {t.nat_name} ({t.instance_id})")
            app.report.line(
                f"connect: psql -h 127.0.0.1 -p {local_port} -U <user> -d {cfg.database.db_name}  "
                f"(or `awsprac db psql --env {cfg.env}`); the password is in Secrets Manager, never shown here"
            )
            app.report.line("Ctrl-C closes the tunnel")
            tunnel.wait()
    except KeyboardInterrupt:
        pass
    app.report.info("tunnel closed" + (f"; session {session} terminated" if session else ""))


def psql_command(app: App, as_app: bool) -> int:
    """psql through a tunnel, as the master (or the app user): the password reaches psql through its
    environment (PGPASSWORD), never its arguments. Returns psql's exit status."""
    psql = shutil.which("psql")
    if psql is None:
        raise UsageError("psql is not installed or not on PATH: install the PostgreSQL client (e.g. `apt install postgresql-client`), then run again")
    ctx = app.context()
    find_plugin()
    creds = app_credentials(ctx) if as_app else master_credentials(ctx)
    with opened(ctx) as tunnel:
        env = {**os.environ, "PGPASSWORD": creds.password.reveal()}
        args = [psql, "-h", "127.0.0.1", "-p", str(tunnel.local_port), "-U", creds.user, "-d", creds.database]
        app.report.info(f"psql as {creds.user} through {tunnel.target.nat_name} (password from secret {creds.secret})")
        with user_signals_to_child():
            code = subprocess.run(args, env=env).returncode
        del env
    return code


@dataclass(frozen=True)
class Credentials:
    user: str
    password: object  # dbsecret.Password
    database: str
    secret: str


def master_credentials(ctx: Context) -> Credentials:
    """The master: from rds-master-{env} once it exists, else from rds-main-{env}."""
    from awsprac.steps.rds import dbsecret

    state = dbsecret.master_state(ctx)
    if state is None:
        state = _usable(ctx, dbsecret.find(ctx), dbsecret.secret_name(ctx.cfg))
        if state.values.get("DB_USER_NAME") == ctx.cfg.database.app_username:
            raise AwspracError(
                f"secret {state.found.name} holds the app user and there is no {dbsecret.master_secret_name(ctx.cfg)}: "
                f"`awsprac db reset-password --env {ctx.cfg.env}` sets a new master password and stores it"
            )
    return _credentials(ctx, state, ctx.cfg.database.master_username)


def app_credentials(ctx: Context) -> Credentials:
    from awsprac.steps.rds import dbsecret

    state = _usable(ctx, dbsecret.find(ctx), dbsecret.secret_name(ctx.cfg))
    if state.values.get("DB_USER_NAME") != ctx.cfg.database.app_username:
        raise UsageError(
            f"secret {state.found.name} still holds the master user, there is no app user yet: "
            f"`awsprac db create-app-user --env {ctx.cfg.env}` makes it"
        )
    return _credentials(ctx, state, ctx.cfg.database.app_username)


def _usable(ctx: Context, state, name: str):
    if state is None or state.pending_deletion or state.password is None:
        why = "does not exist" if state is None else (state.problem or "is unusable")
        raise AwspracError(f"secret {name} {why}: run `awsprac up --env {ctx.cfg.env}`")
    return state


def _credentials(ctx: Context, state, default_user: str) -> Credentials:
    values = state.values
    return Credentials(str(values.get("DB_USER_NAME") or default_user), state.password,
                       str(values.get("DB_NAME") or ctx.cfg.database.db_name), state.found.name)
