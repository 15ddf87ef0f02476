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
