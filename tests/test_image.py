"""`awsprac image ...` through a real process boundary: a stand-in `docker` executable on PATH records its
arguments and standard input (tests/stand_in_docker.py), and a real git repository gives the tag."""

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest


from conftest import ENVS, hook_every_session, is_write, run_cli as run

HERE = Path(__file__).resolve().parent
REGION = "ap-northeast-1"
REPO = "aws-practice-stg"
REGISTRY = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com"
URI = f"{REGISTRY}/{REPO}"
PARAMETER = "image-tag-aws-practice-stg"


class Docker:
    """The stand-in docker's record: one entry per call, {"argv": [...], "stdin": "..."}."""

    def __init__(self, folder: Path):
        self.bin = folder / "bin"
        self.bin.mkdir()
        exe = self.bin / "docker"
        exe.write_text(f"#!{sys.executable}\n" + (HERE / "stand_in_docker.py").read_text())
        exe.chmod(0o755)
        self.log = folder / "docker.log"

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def commands(self) -> list[str]:
        return [c["argv"][0] for c in self.calls()]


@pytest.fixture
def docker(tmp_path, monkeypatch):
    stand_in = Docker(tmp_path)
    monkeypatch.setenv("PATH", f"{stand_in.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STAND_IN_DOCKER_LOG", str(stand_in.log))
    return stand_in


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "init.defaultBranch=main", *args],
        cwd=folder, check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()


@pytest.fixture
def api(tmp_path):
    """A real git repository: README.md at the top, the API's Dockerfile in api/ (the build context)."""
    root = tmp_path / "app"
    (root / "api" / "src").mkdir(parents=True)
    (root / "README.md").write_text("# app\n")
    (root / "api" / "Dockerfile").write_text("FROM eclipse-temurin:21-jre\nCOPY build/libs/app.jar /app.jar\n")
    (root / "api" / "src" / "Main.kt").write_text("fun main() {}\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root / "api"


def head(folder: Path) -> str:
    return git(folder, "rev-parse", "--short", "HEAD")


def ecr(**kw):
    return boto3.client("ecr", region_name=REGION, **kw)


@pytest.fixture
def repository(mocked):
    ecr().create_repository(repositoryName=REPO, imageTagMutability="IMMUTABLE")


def put_image(tag: str, **kw):
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": f"sha256:{tag:0>64}"},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": f"sha256:{tag:f>64}"}],
    }
    ecr(**kw).put_image(repositoryName=REPO, imageManifest=json.dumps(manifest), imageTag=tag)


# --- end to end: the installed awsprac against a moto server, the stand-in docker pushing into it ---


@pytest.mark.e2e
def test_release_logs_in_builds_pushes_records_and_then_has_nothing_to_do(server, docker, api, tmp_path):
    exe = shutil.which("awsprac", path=str(Path(sys.executable).parent))
    work = tmp_path / "work"
    shutil.copytree(ENVS, work / "envs")
    env = {**os.environ, "AWS_ENDPOINT_URL": server.endpoint, "COLUMNS": "200", "NO_COLOR": "1"}

    def awsprac(*args):
        return subprocess.run([exe, *args], cwd=work, env=env, capture_output=True, text=True, timeout=120)

    assert awsprac("step", "ecr", "--env", "stg", "--yes").returncode == 0
    tag = head(api)
    ref = f"{URI}:{tag}"
    first = awsprac("image", "release", "--env", "stg", "--dockerfile-dir", str(api), "--record-tag")
    assert first.returncode == 0, first.stderr
    assert first.stdout == ref + "\n"

    token = ecr(endpoint_url=server.endpoint).get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().partition(":")[2]
    calls = docker.calls()
    assert [c["argv"] for c in calls] == [
        ["version", "--format", "{{.Server.Version}}"],
        ["login", "--username", "AWS", "--password-stdin", REGISTRY],
        ["build", "--platform", "linux/amd64", "-t", ref, str(api)],
        ["push", ref],
    ]
    assert calls[1]["stdin"] == password  # the password went by stdin ...
    assert all(password not in arg for c in calls for arg in c["argv"])  # ... and never into an argument list
    assert [c["stdin"] for c in calls if c["argv"][0] != "login"] == ["", "", ""]
    assert password not in first.stdout + first.stderr
    # progress: docker's own lines relayed as they come
    assert "Login Succeeded" in first.stderr and f"#8 naming to {ref} done" in first.stderr and f"{tag}: digest: sha256:" in first.stderr

    images = ecr(endpoint_url=server.endpoint).describe_images(repositoryName=REPO)["imageDetails"]
    assert [i["imageTags"] for i in images] == [[tag]]
    ssm = boto3.client("ssm", region_name=REGION, endpoint_url=server.endpoint)
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == tag
    parameter_arn = f"arn:aws:ssm:{REGION}:123456789012:parameter/{PARAMETER}"
    assert {t["Key"]: t["Value"] for t in ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=PARAMETER)["TagList"]} == {
        "Name": PARAMETER, "awsprac:project": "aws-practice", "awsprac:env": "stg",
    }, parameter_arn

    # again, same commit: the tag is there (tags are immutable), so nothing to build or push, nothing written
    server.start_recording()
    second = awsprac("image", "release", "--env", "stg", "--dockerfile-dir", str(api), "--record-tag")
    actions = server.recorded_actions()
    assert second.returncode == 0, second.stderr
    assert f"{ref} is already in the repository: nothing to build or push" in second.stderr
    assert second.stdout == ref + "\n"
    assert len(docker.calls()) == 4, "docker was run again"
    assert [a for a in actions if is_write(a)] == []

    uri = awsprac("image", "uri", "--env", "stg")
    assert uri.returncode == 0 and uri.stdout == ref + "\n"


# --- in-process awsprac (moto in-process), the stand-in docker still a separate process ---


def test_a_dirty_build_context_is_refused_unless_allowed(capsys, docker, api, repository):
    tag = head(api)
    (api / "Dockerfile").write_text("FROM scratch\n")
    code, out, err = run(capsys, "image", "release", "--env", "stg", "--dockerfile-dir", str(api))
    assert code == 2 and err.count("\n") == 1
    assert err == f"error: uncommitted changes in {api} (api/Dockerfile): the image would not be commit {tag}; commit them, or pass --allow-dirty to tag it {tag} anyway\n"
    git(api, "checkout", "--", "Dockerfile")
    (api / "src" / "New.kt").write_text("// untracked, but COPY would take it\n")
    code, out, err = run(capsys, "image", "release", "--env", "stg", "--dockerfile-dir", str(api))
    assert code == 2 and "(api/src/New.kt)" in err
    assert docker.calls() == []

    code, out, err = run(capsys, "image", "release", "--env", "stg", "--dockerfile-dir", str(api), "--allow-dirty")
    assert code == 0, err
    assert f"--allow-dirty: the image tagged {tag} includes 1 uncommitted change(s)" in err
    assert docker.commands() == ["version", "login", "build", "push"]


def test_changes_outside_the_build_context_do_not_count(capsys, docker, api, repository):
    (api.parent / "README.md").write_text("# app, edited\n")
    code, out, err = run(capsys, "image", "release", "--env", "stg", "--dockerfile-dir", str(api))
    assert code == 0, err
    assert out == f"{URI}:{head(api)}\n"


def test_a_tag_already_pushed_needs_no_docker_at_all(capsys, monkeypatch, tmp_path, api, repository):
    put_image(head(api))
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git"))
    monkeypatch.setenv("PATH", str(only_git))
    code, out, err = run(capsys, "image", "release", "--env", "stg", "--dockerfile-dir", str(api))
    assert code == 0, err
    assert f"{URI}:{head(api)} is already in the repository: nothing to build or push (tags are immutable)" in err


def test_docker_missing_is_one_line_exit_2(capsys, monkeypatch, tmp_path, api, repository):
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git"))
    monkeypatch.setenv("PATH", str(only_git))
    code, out, err = run(capsys, "image", "release", "--env", "stg", "--dockerfile-dir", str(api))
    assert code == 2
    assert err == "error: docker is not installed or not on PATH: install Docker (Desktop or Engine), then run again\n"


def test_docker_daemon_down_is_one_line_exit_1_before_any_login(capsys, monkeypatch, docker, api, repository):
    monkeypatch.setenv("STAND_IN_DOCKER_DAEMON", "down")
    code, out, err = run(capsys, "image", "release", "--env", "stg", "--dockerfile-dir", str(api))
    assert code == 1 and err.count("\n") == 1
    assert err == (
        "error: the Docker daemon is not running (Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
        "Is the docker daemon running?): start Docker, then run the same command again\n"
    )
    assert docker.commands() == ["version"]


def test_a_failed_build_says_what_docker_said_and_pushes_nothing(capsys, monkeypatch, docker, api, repository):
    monkeypatch.setenv("STAND_IN_DOCKER_BUILD", "fail")
    code, out, err = run(capsys, "image", "release", "--env", "stg", "--dockerfile-dir", str(api))
    ref = f"{URI}:{head(api)}"
    assert code == 1
    assert err.endswith(f"error: docker build of {ref} failed: ERROR: failed to solve: process \"/bin/sh -c ./gradlew bootJar\" did not complete successfully: exit code: 1\n")
    assert docker.commands() == ["version", "login", "build"]


def test_the_platform_can_be_changed(capsys, docker, api, repository):
    code, out, err = run(capsys, "image", "build", "--env", "stg", "--dockerfile-dir", str(api), "--platform", "linux/arm64")
    assert code == 0, err
    ref = f"{URI}:{head(api)}"
    assert docker.calls()[-1]["argv"] == ["build", "--platform", "linux/arm64", "-t", ref, str(api)]
    assert out == ref + "\n"


def test_sub_commands_login_build_push_and_uri(capsys, docker, api, repository):
    ref = f"{URI}:{head(api)}"
    code, out, err = run(capsys, "image", "push", "--env", "stg", "--dockerfile-dir", str(api))
    assert code == 1 and f"docker push of {ref} failed: An image does not exist locally" in err
    assert run(capsys, "image", "build", "--env", "stg", "--dockerfile-dir", str(api))[0] == 0
    code, out, err = run(capsys, "image", "push", "--env", "stg", "--dockerfile-dir", str(api))
    assert code == 1 and err.endswith("failed: no basic auth credentials (if docker is not logged in to the registry: `awsprac image login --env stg`)\n")
    code, out, err = run(capsys, "image", "login", "--env", "stg")
    assert code == 0 and f"docker logged in to {REGISTRY}" in err
    login = docker.calls()[-1]
    assert login["argv"] == ["login", "--username", "AWS", "--password-stdin", REGISTRY] and login["stdin"]
    code, out, err = run(capsys, "image", "uri", "--env", "stg")
    assert code == 2 and err == (
        f"error: no image tag recorded for env stg (SSM parameter {PARAMETER}): "
        "run `awsprac image release --env stg --dockerfile-dir DIR --record-tag`\n"
    )
    code, out, err = run(capsys, "image", "push", "--env", "stg", "--dockerfile-dir", str(api), "--record-tag")
    assert code == 0 and out == ref + "\n"
    assert run(capsys, "image", "uri", "--env", "stg")[1] == ref + "\n"


def test_a_new_commit_moves_the_recorded_tag(capsys, docker, api, repository):
    first = head(api)
    assert run(capsys, "image", "release", "--env", "stg", "--dockerfile-dir", str(api), "--record-tag")[0] == 0
    (api / "src" / "Main.kt").write_text("fun main() { println(1) }\n")
    git(api, "commit", "-q", "-am", "second")
    second = head(api)
    code, out, err = run(capsys, "image", "release", "--env", "stg", "--dockerfile-dir", str(api), "--record-tag")
    assert code == 0, err
    assert f"recorded tag {second} in SSM parameter {PARAMETER} (was {first})" in err
    assert run(capsys, "image", "uri", "--env", "stg")[1] == f"{URI}:{second}\n"


def test_bad_sources_are_one_line_exit_2_before_anything_reaches_aws(capsys, monkeypatch, docker, tmp_path, repository):
    sent = []
    hook_every_session(monkeypatch, [("before-call.*.*", lambda model, **kw: sent.append(model.name))])
    plain = tmp_path / "plain"
    plain.mkdir()
    cases = [
        (tmp_path / "nope", f"--dockerfile-dir {tmp_path / 'nope'}: no such folder"),
        (plain, f"--dockerfile-dir {plain}: no Dockerfile in it"),
    ]
    (tmp_path / "nogit").mkdir()
    (tmp_path / "nogit" / "Dockerfile").write_text("FROM scratch\n")
    cases.append((tmp_path / "nogit", f"{tmp_path / 'nogit'} is not in a git repository"))
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "Dockerfile").write_text("FROM scratch\n")
    git(tmp_path / "fresh", "init", "-q")
    cases.append((tmp_path / "fresh", "its git repository has no commit yet"))
    for folder, message in cases:
        code, out, err = run(capsys, "image", "release", "--env", "stg", "--dockerfile-dir", str(folder))
        assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert docker.calls() == [] and sent == []


def test_no_repository_says_which_step_to_run(capsys, docker, api, mocked):
    code, out, err = run(capsys, "image", "release", "--env", "stg", "--dockerfile-dir", str(api))
    assert code == 2
    assert err == "error: ECR repository aws-practice-stg does not exist: run `awsprac step ecr --env stg` first (or `awsprac up`)\n"
    assert docker.calls() == []
