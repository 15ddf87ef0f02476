"""The app family's names (the one place they are made: steps, facets and commands read them here) and
small helpers its steps share."""

from __future__ import annotations

from dataclasses import dataclass

from awsprac.config import EnvConfig

CONTAINER = "api"  # the container's name in the task definition, and the target of the load balancer


@dataclass(frozen=True)
class Names:
    backend: str  # cluster, service, task definition family, target group, backend SG, task role
    alb: str  # load balancer and its security group
    execution_role: str
    secrets_policy: str
    log_group: str

    # the cluster, the service and the task definition family all bear the backend's name
    @property
    def cluster(self) -> str:
        return self.backend

    @property
    def service(self) -> str:
        return self.backend

    @property
    def family(self) -> str:
        return self.backend


def names(cfg: EnvConfig) -> Names:
    backend = cfg.name("{project}-backend-{env}")
    return Names(
        backend=backend,
        alb=cfg.name("{project}-alb-{env}"),
        execution_role=cfg.name("ecs-task-execution-{env}"),
        secrets_policy=cfg.name("secrets-manager-read-{env}"),
        log_group=f"/ecs/{backend}",
    )


def listener_port(cfg: EnvConfig) -> int:
    """HTTPS 443 with a certificate, else HTTP 80."""
    return 443 if cfg.app.certificate_arn else 80


def ecs_tags(wanted: dict[str, str]) -> list[dict[str, str]]:
    """ECS spells its tags in lower case."""
    return [{"key": k, "value": v} for k, v in wanted.items()]


def from_ecs_tags(tag_list: list[dict] | None) -> dict[str, str]:
    return {t["key"]: t["value"] for t in tag_list or []}
