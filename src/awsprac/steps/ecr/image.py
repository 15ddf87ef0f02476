"""`awsprac image login | build | push | release | uri`: the guide's Makefile for the API image (docs/reference.md section 7).

The tag is the short commit hash of the Dockerfile folder's git repository, so a dirty build
context is refused (the tag would lie) unless --allow-dirty. Immutable tags make a second push
of a tag fail: a tag already in the repository means there is nothing to build or push.
Docker is an external program, run as a child process: the registry password goes to
`docker login --password-stdin`, never into an argument list (visible to every user in `ps`).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from awsprac.engine.app import App
from awsprac.engine.errors import AwspracError, MissingPrerequisite, UsageError

DAEMON_DOWN = ("Cannot connect to the Docker daemon", "Is the docker daemon running", "error during connect")


class DockerError(AwspracError):
    """A docker command failed (exit 1): which one, and the last thing docker said."""


@dataclass(frozen=True)
class Source:
    folder: Path
    tag: str
    dirty: list[str]


@dataclass(frozen=True)
class Target:
    repository: str
    uri: str  # <registry>/<repository>

    def ref(self, tag: str) -> str:
        return f"{self.uri}:{tag}"


def parameter_name(app: App) -> str:
    return app.cfg.name("image-tag-{project}-{env}")


# --- git: the tag and the dirty check ---


def source(folder: Path, allow_dirty: bool, report) -> Source:
    folder = folder.expanduser()
    if not folder.is_dir():
        raise UsageError(f"--dockerfile-dir {folder}: no such folder")
    if not (folder / "Dockerfile").is_file():
        raise UsageError(f"--dockerfile-dir {folder}: no Dockerfile in it")
    if shutil.which("git") is None:
        raise UsageError("git is not installed or not on PATH: the image tag is the commit hash (`git rev-parse --short HEAD`)")
    inside = _git(folder, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0:
        raise UsageError(
            f"{folder} is not in a git repository ({_last_line(inside.stderr) or 'git rev-parse failed'}): "
            "the image tag is its commit hash (`git rev-parse --short HEAD`)"
        )
    head = _git(folder, "rev-parse", "--short", "HEAD")
    if head.returncode != 0:
        raise UsageError(f"{folder}: its git repository has no commit yet: commit, then run again (the image tag is the commit hash)")
    tag = head.stdout.strip()
    # The build context is the folder: only changes inside it can make the image differ from the commit.
    status = _git(folder, "status", "--porcelain", "--untracked-files=all", "--", ".")
    if status.returncode != 0:
        raise UsageError(f"{folder}: `git status` failed: {_last_line(status.stderr)}")
    dirty = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    if dirty and not allow_dirty:
        shown = ", ".join(dirty[:3]) + (f" and {len(dirty) - 3} more" if len(dirty) > 3 else "")
        raise UsageError(
            f"uncommitted changes in {folder} ({shown}): the image would not be commit {tag}; "
            f"commit them, or pass --allow-dirty to tag it {tag} anyway"
        )
    if dirty:
        report.warn(f"--allow-dirty: the image tagged {tag} includes {len(dirty)} uncommitted change(s) in {folder}")
    return Source(folder, tag, dirty)


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True)


# --- AWS: the repository, the tag, the token, the recorded tag ---


def target(app: App) -> Target:
    from awsprac.engine.aws import translate
    from awsprac.steps import ecr

    ctx = app.context()
    name = ecr.repository_name(app.cfg)
    with translate("looking up", f"ECR repository {name}"):
        repo = ecr.find_repository(ctx.aws.client("ecr"), name)
    if repo is None:
        raise MissingPrerequisite(f"ECR repository {name} does not exist: run `awsprac step ecr --env {app.cfg.env}` first (or `awsprac up`)")
    return Target(name, repo["repositoryUri"])


def tag_exists(app: App, where: Target, tag: str) -> bool:
    from awsprac.engine.aws import error_code, translate

    ecr = app.context().aws.client("ecr")
    with translate("looking up", f"image {where.ref(tag)}"):
        try:
            ecr.describe_images(repositoryName=where.repository, imageIds=[{"imageTag": tag}])
        except Exception as exc:
            if error_code(exc) == "ImageNotFoundException":
                return False
            raise
    return True


def login(app: App, docker: "Docker | None" = None) -> str:
    """`docker login` to the env's registry with an ECR authorization token (valid 12 hours). Returns the registry."""
    from awsprac.engine.aws import translate

    docker = docker or Docker.ready(app.report)
    ecr = app.context().aws.client("ecr")
    with translate("getting", "an ECR authorization token"):
        (data,) = ecr.get_authorization_token()["authorizationData"]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    registry = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://").rstrip("/")
    docker.run(["login", "--username", user, "--password-stdin", registry], f"docker login to {registry}", stdin=password)
    app.report.applied(f"docker logged in to {registry} (for 12 hours)")
    return registry


def build(app: App, where: Target, src: Source, platform: str, docker: "Docker | None" = None) -> str:
    ref = where.ref(src.tag)
    docker = docker or Docker.ready(app.report)
    app.report.info(f"building {ref} for {platform} from {src.folder}")
    docker.run(["build", "--platform", platform, "-t", ref, str(src.folder)], f"docker build of {ref}")
    app.report.applied(f"built {ref}")
    return ref


def push(app: App, ref: str, docker: "Docker | None" = None) -> None:
    docker = docker or Docker.ready(app.report)
    app.report.info(f"pushing {ref}")
    docker.run(["push", ref], f"docker push of {ref}", hint=f"if docker is not logged in to the registry: `awsprac image login --env {app.cfg.env}`")
    app.report.applied(f"pushed {ref}")


def record_tag(app: App, tag: str) -> None:
    """The tag in SSM parameter image-tag-{project}-{env} (the Makefile's update-image-tag), written only when it differs."""
    from awsprac.engine import tags
    from awsprac.engine.aws import error_code, translate

    ctx = app.context()
    ssm, name = ctx.aws.client("ssm"), parameter_name(app)
    with translate("recording", f"the image tag in SSM parameter {name}"):
        try:
            current = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except Exception as exc:
            if error_code(exc) != "ParameterNotFound":
                raise
            current = None
        if current == tag:
            app.report.info(f"SSM parameter {name} already records tag {tag}")
            return
        if current is None:
            # Tags at creation; AWS refuses Tags together with Overwrite.
            ssm.put_parameter(Name=name, Value=tag, Type="String", Tags=tags.as_list(ctx.tags(name)))
        else:
            ssm.put_parameter(Name=name, Value=tag, Type="String", Overwrite=True)
    app.report.applied(f"recorded tag {tag} in SSM parameter {name}" + (f" (was {current})" if current else ""))


def recorded_ref(app: App) -> str:
    from awsprac.engine.aws import error_code, translate

    where = target(app)
    name = parameter_name(app)
    with translate("reading", f"SSM parameter {name}"):
        try:
            tag = app.context().aws.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
        except Exception as exc:
            if error_code(exc) != "ParameterNotFound":
                raise
            raise MissingPrerequisite(
                f"no image tag recorded for env {app.cfg.env} (SSM parameter {name}): "
                f"run `awsprac image release --env {app.cfg.env} --dockerfile-dir DIR --record-tag`"
            ) from None
    return where.ref(tag)


# --- commands ---


def release(app: App, folder: Path, platform: str, allow_dirty: bool, record: bool) -> None:
    src = source(folder, allow_dirty, app.report)  # bad input is refused before anything reaches AWS
    where = target(app)
    ref = where.ref(src.tag)
    if tag_exists(app, where, src.tag):
        app.report.info(f"{ref} is already in the repository: nothing to build or push (tags are immutable)")
    else:
        docker = Docker.ready(app.report)
        login(app, docker)
        build(app, where, src, platform, docker)
        push(app, ref, docker)
    if record:
        record_tag(app, src.tag)
    app.report.line(ref)


def login_command(app: App) -> None:
    target(app)  # the env's repository must exist to be worth logging in to
    login(app)


def build_command(app: App, folder: Path, platform: str, allow_dirty: bool) -> None:
    src = source(folder, allow_dirty, app.report)
    ref = build(app, target(app), src, platform)
    app.report.line(ref)


def push_command(app: App, folder: Path, allow_dirty: bool, record: bool) -> None:
    src = source(folder, allow_dirty, app.report)
    where = target(app)
    ref = where.ref(src.tag)
    if tag_exists(app, where, src.tag):
        app.report.info(f"{ref} is already in the repository: nothing to push (tags are immutable)")
    else:
        push(app, ref)
    if record:
        record_tag(app, src.tag)
    app.report.line(ref)


def uri_command(app: App) -> None:
    app.report.line(recorded_ref(app))


# --- docker, as a child process ---


class Docker:
    def __init__(self, report):
        self.report = report
        self.exe = shutil.which("docker")
        if self.exe is None:
            raise UsageError("docker is not installed or not on PATH: install Docker (Desktop or Engine), then run again")

    @classmethod
    def ready(cls, report) -> "Docker":
        docker = cls(report)
        docker.require_daemon()
        return docker

    def require_daemon(self) -> None:
        """`docker version` reaches the daemon: a stopped daemon is one clear line before anything else runs."""
        proc = subprocess.run([self.exe, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode == 0:
            return
        said = _last_line(proc.stderr) or _last_line(proc.stdout)
        if any(marker in proc.stderr + proc.stdout for marker in DAEMON_DOWN):
            raise DockerError(f"the Docker daemon is not running ({said}): start Docker, then run the same command again")
        raise DockerError(f"docker cannot reach its daemon: {said}")

    def run(self, args: list[str], what: str, stdin: str | None = None, hint: str = "") -> None:
        """Run docker, relaying its output line by line as progress; stdin, when given, is the only way a secret goes in."""
        self.report.debug(f"$ docker {' '.join(args)}")
        proc = subprocess.Popen(
            [self.exe, *args], stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=os.environ.copy(),
        )
        if stdin is not None:
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        tail: deque[str] = deque(maxlen=20)
        for line in proc.stdout:
            line = line.rstrip("\r\n")
            if line.strip():
                tail.append(line)
                self.report.info(f"  {line}")
        code = proc.wait()
        if code != 0:
            said = next((l for l in reversed(tail) if l.strip()), f"exit code {code}")
            if any(marker in "\n".join(tail) for marker in DAEMON_DOWN):
                raise DockerError(f"{what} failed: the Docker daemon is not running ({said.strip()}): start Docker, then run again")
            raise DockerError(f"{what} failed: {said.strip()}" + (f" ({hint})" if hint else ""))


def _last_line(text: str) -> str:
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
