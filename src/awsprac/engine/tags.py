"""Ownership tags: set at creation, compared explicitly, `aws:*` keys never touched."""

from __future__ import annotations

PROJECT_KEY = "awsprac:project"
ENV_KEY = "awsprac:env"


def ownership(project: str, env: str) -> dict[str, str]:
    return {PROJECT_KEY: project, ENV_KEY: env}


def desired(name: str, project: str, env: str) -> dict[str, str]:
    return {"Name": name, **ownership(project, env)}


def as_dict(tag_list: list[dict] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_list or []}


def as_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def specification(resource_type: str, tags: dict[str, str]) -> list[dict]:
    """EC2 TagSpecifications: tags applied atomically with the create."""
    return [{"ResourceType": resource_type, "Tags": as_list(tags)}]


def is_owned(tags: dict[str, str], project: str, env: str) -> bool:
    return tags.get(PROJECT_KEY) == project and tags.get(ENV_KEY) == env


def missing(have: dict[str, str], want: dict[str, str]) -> dict[str, str]:
    """Tags to add or correct. Extra tags a person added are kept, and `aws:*` keys are AWS's own."""
    return {k: v for k, v in want.items() if not k.startswith("aws:") and have.get(k) != v}
