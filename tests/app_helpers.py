"""Shared by the app tier's tests: an env with `[app] enabled = true`, an image in ECR, moto clients."""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest

REGION = "ap-northeast-1"
ACCOUNT = "123456789012"
OWNED = {"awsprac:project": "aws-practice", "awsprac:env": "stg"}
BACKEND = "aws-practice-backend-stg"
ALB = "aws-practice-alb-stg"
EXEC_ROLE = "ecs-task-execution-stg"
POLICY = "secrets-manager-read-stg"
LOGS = "/ecs/aws-practice-backend-stg"
REPO = "aws-practice-stg"
PARAMETER = "image-tag-aws-practice-stg"


def client(service: str):
    return boto3.client(service, region_name=REGION)


def app_cfg(cfg, **settings):
    return dataclasses.replace(cfg, app=dataclasses.replace(cfg.app, enabled=True, **settings))


def push_image(tag: str, record: bool = True) -> None:
    """An image tagged `tag` in the env's repository (made if missing), and the tag recorded in SSM."""
    ecr = client("ecr")
    try:
        ecr.create_repository(repositoryName=REPO)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"digest": f"sha256:{tag:0<64}"[:71], "size": 1, "mediaType": "application/vnd.docker.container.image.v1+json"}, "layers": []}
    ecr.put_image(repositoryName=REPO, imageManifest=json.dumps(manifest), imageTag=tag)
    if record:
        record_tag(tag)


def record_tag(tag: str) -> None:
    client("ssm").put_parameter(Name=PARAMETER, Value=tag, Type="String", Overwrite=True)


@pytest.fixture
def app_env(make_ctx, cfg, monkeypatch):
    """make(**options) -> a Context for stg with the app tier on (account known, as after the account guard)."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")  # moto runs no tasks: the rollout completes at once

    def make(hooks=(), config=None, **options):
        ctx = make_ctx(config=config or app_cfg(cfg), hooks=hooks, **options)
        ctx.identity = {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/test"}
        return ctx

    return make


TIER = ["vpc", "subnets", "secrets", "ecr", "app-iam", "app-network", "app-alb", "app"]


@pytest.fixture(scope="module")
def shared_tier(tmp_path_factory):
    """The tier built once for a module whose tests only read it (~10 s saved per test):
    make(hooks=(), **options) -> a Context on it. Such a test must not ask for `mocked` (or `app_env`,
    `make_ctx`, `ctx`): a second mock_aws would start empty. A test that writes builds its own."""
    from moto import mock_aws

    from awsprac import config
    from awsprac.engine import aws, waiting
    from awsprac.engine.context import Context, Options
    from awsprac.engine.report import Reporter
    from awsprac.engine.sandbox import faithful_moto
    from conftest import ENVS, FakeClock, _load_only_the_managed_policies_awsprac_uses, build

    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "HOME": str(home),
                           "AWS_CONFIG_FILE": str(home / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
                           "MOTO_EC2_LOAD_DEFAULT_AMIS": "false", "MOTO_ECS_SERVICE_RUNNING": "1"}.items():
            mp.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
            mp.delenv(key, raising=False)
        mp.setattr(waiting, "clock", FakeClock())
        _load_only_the_managed_policies_awsprac_uses()
        faithful_moto()
        cfg = app_cfg(config.load(ENVS, "stg"))

        def make(hooks=(), **options):
            clients, _ = aws.make(None, "", cfg.region)
            for event, handler in hooks:
                clients.register(event, handler)
            ctx = Context(cfg, clients, Reporter(), Options(**options))
            ctx.identity = {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/test"}
            return ctx

        with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
            push_image("abc1234")
            build(make(), TIER)
            yield make
