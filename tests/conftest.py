"""Shared fixtures: an env config, in-process moto (`mocked`), and a moto server for end-to-end runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENVS = REPO / "envs"
# Copies of ../shared/fixtures (AWS documentation example keys, not real credentials): the suite runs from any clone.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_sessionfinish(session, exitstatus):
    """The suite leaves no moto request dump in the working tree (moto's recorder writes `moto_recording`
    into the current folder when nothing says otherwise): a run that does fails."""
    left = [p for p in (REPO / "moto_recording", Path.cwd() / "moto_recording") if p.exists()]
    if left:
        session.exitstatus = 1
        sys.stderr.write(f"\nthe test run left a moto request dump behind: {left[0]} (see awsprac.engine.sandbox.record_outside_the_working_tree)\n")


@pytest.fixture(autouse=True)
def clean_aws_environment(monkeypatch, tmp_path_factory):
    """No test ever reaches a real account: fake keys, no profiles, no stray endpoint. And none runs in
    the checkout: a command that writes to the current folder (`profile import --direnv`'s ./.envrc)
    writes into a scratch folder, whatever folder pytest was started from."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    for key in list(os.environ):
        if key.startswith("AWS_") or key.startswith("MOTO_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
    monkeypatch.setenv("HOME", str(home))
    # The ~1,200 preloaded AMIs cost 1-2 s per test; NAT tests that need them turn this back on.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


def missing_capability(reason: str):
    """A test that needs what this machine lacks (root, iptables, chattr): skipped on a developer's
    machine, but under CI (CI=true, as .ci/run sets) a failure: CI must never silently drop a case."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true but this test cannot run here: {reason}", pytrace=False)
    pytest.skip(reason)


def run_cli(capsys, *args, stdin: str | None = None, monkeypatch=None, envs: Path = ENVS):
    """`awsprac ARGS` in this process, as main() runs it: (exit code, stdout, stderr)."""
    from awsprac.commands.cli import main

    if stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exit:
        main(["--envs-dir", str(envs), *args])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return exit.value.code or 0, out, err


def stub_commands(folder: Path, scripts: dict[str, str]) -> Path:
    """Executables named after commands (name -> script), in `folder`/bin: put it first on PATH."""
    stubs = folder / "bin"
    stubs.mkdir()
    for name, body in scripts.items():
        (stubs / name).write_text(body)
        (stubs / name).chmod(0o755)
    return stubs


def build(ctx, names=None):
    """Plan and apply the named steps (all when None) on `ctx`; every step must succeed. Returns the plan."""
    from awsprac.engine import runner

    steps = runner.resolve(names)
    planned = runner.plan(ctx, steps)
    outcome = runner.apply(ctx, steps, planned)
    assert outcome.ok, outcome.failed
    return planned


# What a full `up` of envs/stg.toml builds, counted by hand from what the environment is meant to hold
# (the guide's resources, one line per kind), not from the steps' own desired(): a step that forgot a
# resource, or grew one, must fail the tests that print "Plan: N".
STG_RESOURCES = {
    "vpc": 1,
    "subnets (public, private) x (1a, 1c)": 4,
    "internet gateway": 1,
    "NAT IAM role, instance profile": 2,
    "NAT security group, instance": 2,
    "route tables (public, private)": 2,
    "DB password secret": 1,
    "DB security group, subnet group, parameter group, instance": 4,
    "the DB group's rule from the NAT group (database.tunnel, on in stg)": 1,
    "ECR repository, lifecycle policy": 2,
    "scheduler IAM role, schedule group, start and stop schedules": 4,
}
STG_RESOURCE_COUNT = 24
assert sum(STG_RESOURCES.values()) == STG_RESOURCE_COUNT


@pytest.fixture
def cfg():
    from awsprac import config

    return config.load(ENVS, "stg")


from moto_policies import load_only_the_managed_policies_awsprac_uses as _load_only_the_managed_policies_awsprac_uses  # noqa: E402


@pytest.fixture
def mocked():
    """In-process moto for one test, with the AWS managed policies awsprac attaches, as on a real account."""
    from moto import mock_aws

    from awsprac.engine.sandbox import faithful_moto

    _load_only_the_managed_policies_awsprac_uses()
    faithful_moto()
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield


@pytest.fixture
def strict_aws(mocked):
    """The strict layer (strict_aws.py) on for one in-process test: AWS's refusals moto forgives, and its
    recorders (.gaps, .offline, .refused)."""
    import strict_aws as layer

    layer.install()
    layer.STRICT.reset()
    layer.STRICT.enabled = True
    yield layer.STRICT
    layer.STRICT.enabled = False
    layer.STRICT.reset()


@pytest.fixture
def make_ctx(mocked, cfg):
    """A Context against in-process moto; `hooks` are botocore (event, handler) pairs registered first."""
    from awsprac.engine import aws
    from awsprac.engine.context import Context, Options
    from awsprac.engine.report import Reporter

    def make(config=None, hooks=(), **options):
        clients, _ = aws.make(None, "", (config or cfg).region)
        for event, handler in hooks:
            clients.register(event, handler)
        return Context(config or cfg, clients, Reporter(), Options(**options))

    return make


@pytest.fixture
def ctx(make_ctx):
    return make_ctx()


class Calls:
    """Every AWS call a client makes, seen from botocore's before-call event (retries not counted)."""

    READ_PREFIXES = ("Describe", "Get", "List")

    def __init__(self):
        self.names: list[str] = []

    def __call__(self, model, **kwargs):
        self.names.append(model.name)

    @property
    def writes(self) -> list[str]:
        return [n for n in self.names if not n.startswith(self.READ_PREFIXES)]


@pytest.fixture
def calls():
    return Calls()


def hook_every_session(monkeypatch, hooks: list) -> list:
    """Register the (event, handler) pairs on every botocore session awsprac makes from now on, as
    the CLI in this process makes its own. The list is read as each session is made: pairs added to
    it later count for the sessions made after."""
    from awsprac.engine import aws

    original = aws._botocore_session

    def hooked():
        session = original()
        for event, handler in hooks:
            session.register(event, handler)
        return session

    monkeypatch.setattr(aws, "_botocore_session", hooked)
    return hooks


def aws_error(code: str, message: str = "", status: int = 400):
    """What a before-call hook returns to make botocore raise AWS's modeled error, sending nothing."""
    import botocore.awsrequest

    body = {"Error": {"Code": code, "Message": message or code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.awsrequest.AWSResponse("https://aws.invalid", status, {}, None), body


class FailFirst:
    """A before-call hook: the first `times` calls of `operation` fail with AWS's `code`; later ones go through."""

    def __init__(self, operation: str, code: str, times: int = 1, message: str = "", status: int = 400):
        self.operation, self.code, self.times, self.message, self.status = operation, code, times, message, status
        self.failed = 0
        self.passed = 0

    def __call__(self, model, **kwargs):
        if model.name != self.operation:
            return None
        if self.failed < self.times:
            self.failed += 1
            return aws_error(self.code, self.message, self.status)
        self.passed += 1
        return None

    @property
    def hook(self):
        return ("before-call.*.*", self)


class FakeClock:
    """Stands in for awsprac.engine.waiting.clock: pauses advance time without waiting."""

    def __init__(self):
        self.t = 0.0
        self.pauses: list[float] = []

    def now(self):
        return self.t

    def pause(self, seconds):
        self.pauses.append(seconds)
        self.t += seconds


@pytest.fixture
def clock(monkeypatch):
    from awsprac.engine import waiting

    fake = FakeClock()
    monkeypatch.setattr(waiting, "clock", fake)
    return fake


# --- end to end: the installed `awsprac` in a subprocess against a moto server on 127.0.0.1 ---


def readline_within(stream, seconds: float, what: str) -> str:
    """One line from a subprocess pipe, or an AssertionError after `seconds` (never a hung suite)."""
    import threading

    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    if not got:
        raise AssertionError(f"{what}: no line within {seconds:.0f} s")
    return got[0]


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """A moto server in its own process (never mixed with in-process mocks), with its request recorder:
    strict_server.py binds port 0 and prints the port it got, so no other process can take it first. It
    serves faithful_moto() (the same emulation `awsprac sandbox` serves: moto made to do what AWS does
    where it falls short, one request at a time) with the strict layer on top (what AWS refuses)."""
    folder = tmp_path_factory.mktemp("moto-server")
    env = {
        **os.environ,
        "STRICT_AWS_RECORD": str(folder / "strict.jsonl"),
        "STRICT_AWS_CONTROL": str(folder / "strict-nat-mode"),
        "MOTO_RECORDER_FILEPATH": str(folder / "recording.jsonl"),
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",  # 1,200 AMIs reloaded after every reset cost ~1 s
        "MOTO_ECS_SERVICE_RUNNING": "1",  # moto runs no tasks: the app's service says its one task runs
    }
    log = open(folder / "server.log", "w")
    # With the strict layer on (strict_server.py): AWS's refusals and the egress/offline recorders.
    server = Path(__file__).resolve().parent / "strict_server.py"
    proc = subprocess.Popen([sys.executable, str(server)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, text=True)
    try:
        port = int(readline_within(proc.stdout, 60, "moto server start").strip() or 0)
    except (AssertionError, ValueError):
        proc.kill()
        raise RuntimeError(f"moto server did not start: {(folder / 'server.log').read_text()}") from None
    endpoint = f"http://127.0.0.1:{port}"
    urllib.request.urlopen(endpoint + "/moto-api/", timeout=30).read()
    yield endpoint, folder
    proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
    log.close()


class Server:
    def __init__(self, endpoint: str, folder: Path):
        self.endpoint = endpoint
        self.strict_record = folder / "strict.jsonl"
        self.strict_control = folder / "strict-nat-mode"

    def nat_mode(self, mode: str) -> None:
        """Tell the strict layer the NAT mode the env file now says (mode none: no default route is meant)."""
        self.strict_control.write_text(mode)

    def strict(self):
        """What the strict layer recorded since the last reset: .gaps, .offline, .refused."""
        import strict_aws

        return strict_aws.read(self.strict_record)

    def post(self, path: str, data: bytes = b"") -> bytes:
        request = urllib.request.Request(self.endpoint + path, data=data, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.endpoint + path, timeout=30) as response:
            return response.read()

    def reset(self) -> None:
        self.post("/moto-api/reset")
        self.strict_record.write_text("")
        self.nat_mode("instance")

    def start_recording(self) -> None:
        self.post("/moto-api/recorder/reset-recording")
        self.post("/moto-api/recorder/start-recording")

    def recorded_actions(self) -> list[str]:
        """AWS actions the server received since start_recording, as 'Service.Action' or 'METHOD path'."""
        self.post("/moto-api/recorder/stop-recording")
        actions = []
        for line in self.get("/moto-api/recorder/download-recording").decode().splitlines():
            entry = json.loads(line)
            actions.append(_action(entry))
        return actions


def _action(entry: dict) -> str:
    import base64
    from urllib.parse import parse_qs

    headers = {k.lower(): v for k, v in entry["headers"].items()}
    if "x-amz-target" in headers:
        return headers["x-amz-target"]
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    action = parse_qs(body).get("Action")
    if action:
        return action[0]
    return f"{entry['method']} {entry['url']}"


def is_write(action: str) -> bool:
    name = action.split(".")[-1].split(" ")[0]
    if action.startswith(("GET ", "HEAD ")):
        return False
    return not name.startswith(("Describe", "Get", "List"))


@pytest.fixture
def server(moto_server):
    s = Server(*moto_server)
    s.reset()
    return s


@pytest.fixture
def awsprac(server, tmp_path):
    """Run the installed `awsprac` as a user would, against the moto server, in a scratch folder with envs/."""
    exe = shutil.which("awsprac", path=str(Path(sys.executable).parent)) or shutil.which("awsprac")
    assert exe, "awsprac is not installed (pip install -e '.[dev]')"
    shutil.copytree(ENVS, tmp_path / "envs")
    env = {k: v for k, v in os.environ.items()}
    env.update({"AWS_ENDPOINT_URL": server.endpoint, "COLUMNS": "200", "NO_COLOR": "1"})

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *args], cwd=tmp_path, env=env, input=input, capture_output=True, text=True, timeout=120)

    run.cwd = tmp_path
    return run
