"""The task definition `{project}-backend-{env}`: what a revision should hold, compared setting by setting.

Revisions are immutable: any difference registers a new one (tagged in the register call) and the
service moves to it. The DB credentials come as `secrets` (`<secret ARN>:<KEY>::`): ECS reads them at
task start; no value is ever in the task definition, a log or the plan.
"""

from __future__ import annotations

from awsprac.config import EnvConfig
from awsprac.engine.plan import FieldDiff
from awsprac.steps.app.common import CONTAINER, ecs_tags, names

KIND = "task definition"
STREAM_PREFIX = "api"


def role_arn(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def image_tag(image: str) -> str:
    """The tag of `<repository URI>:<tag>` ("" when it names none)."""
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def wanted(cfg: EnvConfig, account: str, image: str, secret_arn: str) -> dict:
    """register_task_definition's arguments (without tags)."""
    n, app = names(cfg), cfg.app
    return {
        "family": n.backend,
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": str(app.cpu),
        "memory": str(app.memory),
        "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},  # the image is built for amd64
        "executionRoleArn": role_arn(account, n.execution_role),
        "taskRoleArn": role_arn(account, n.backend),
        "containerDefinitions": [{
            "name": CONTAINER,
            "image": image,
            "essential": True,
            "portMappings": [{"containerPort": app.container_port, "protocol": "tcp"}],
            "secrets": [{"name": var, "valueFrom": f"{secret_arn}:{key}::"} for var, key in app.secrets],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": n.log_group, "awslogs-region": cfg.region, "awslogs-stream-prefix": STREAM_PREFIX}},
        }],
    }


def register_args(cfg: EnvConfig, want: dict, tag_dict: dict[str, str]) -> dict:
    return {**want, "tags": ecs_tags(tag_dict)}


def _container(td: dict) -> dict:
    return next((c for c in td.get("containerDefinitions", []) if c.get("name") == CONTAINER), {})


def _secrets_text(container: dict) -> str:
    # Names and where they come from (ARN and key), never a value: a task definition holds none.
    return ", ".join(f"{s['name']} <- {s['valueFrom'].split(':secret:')[-1]}" for s in sorted(container.get("secrets", []), key=lambda s: s["name"])) or "(none)"


def differences(have: dict, want: dict) -> list[FieldDiff]:
    """The settings of a registered revision that differ from what is wanted."""
    fields = []
    for key in ("cpu", "memory", "networkMode", "executionRoleArn", "taskRoleArn"):
        if str(have.get(key) or "") != str(want[key]):
            fields.append(FieldDiff(key, have.get(key), want[key]))
    if "FARGATE" not in (have.get("requiresCompatibilities") or []):
        fields.append(FieldDiff("compatibility", ", ".join(have.get("requiresCompatibilities") or []) or None, "FARGATE"))
    platform = have.get("runtimePlatform") or {}
    if (platform.get("cpuArchitecture"), platform.get("operatingSystemFamily")) != ("X86_64", "LINUX"):
        fields.append(FieldDiff("platform", f"{platform.get('operatingSystemFamily')}/{platform.get('cpuArchitecture')}", "LINUX/X86_64"))
    c, w = _container(have), want["containerDefinitions"][0]
    if not c:
        return fields + [FieldDiff("container", None, CONTAINER)]
    if c.get("image") != w["image"]:
        fields.append(FieldDiff("image", c.get("image"), w["image"]))
    ports = [(p.get("containerPort"), p.get("protocol", "tcp")) for p in c.get("portMappings", [])]
    if ports != [(w["portMappings"][0]["containerPort"], "tcp")]:
        fields.append(FieldDiff("port", ", ".join(str(p) for p, _ in ports) or None, w["portMappings"][0]["containerPort"]))
    if _secrets_text(c) != _secrets_text(w):
        fields.append(FieldDiff("secrets", _secrets_text(c), _secrets_text(w)))
    log = c.get("logConfiguration") or {}
    if log.get("logDriver") != "awslogs" or {k: v for k, v in (log.get("options") or {}).items()} != w["logConfiguration"]["options"]:
        fields.append(FieldDiff("logs", (log.get("options") or {}).get("awslogs-group"), w["logConfiguration"]["options"]["awslogs-group"]))
    return fields


def deregister_family(ecs, family: str) -> None:
    """Every ACTIVE revision of the family deregistered (AWS keeps them INACTIVE; nothing runs them)."""
    from awsprac.engine.reconcile import gone_is_fine

    arns = [a for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE") for a in page["taskDefinitionArns"]]
    for arn in arns:
        if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family:  # familyPrefix is a prefix: not another family's
            gone_is_fine(ecs.deregister_task_definition, taskDefinition=arn)
