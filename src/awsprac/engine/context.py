"""What a step sees: the env's config, its AWS clients, the reporter, the flags, and what earlier steps observed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from awsprac.engine.aws import Aws
from awsprac.engine.batched import Reads
from awsprac.config import EnvConfig
from awsprac.engine.report import Reporter


@dataclass(frozen=True)
class Options:
    """Flags of `up` and `destroy` that steps honour."""

    prune: bool = False  # up: remove rules a person added that the env file does not list
    apply_immediately: bool = False  # up: RDS changes now, not at the next maintenance window (always in stg)
    force: bool = False  # destroy: a deletion-protected DB, an ECR repository still holding images
    skip_final_snapshot: bool = False  # destroy: no final DB snapshot
    force_delete_secret: bool = False  # destroy: no recovery window for the secret
    include_ami: bool = False  # destroy: the baked NAT AMI too (prd launches from it)


@dataclass
class Context:
    cfg: EnvConfig
    aws: Aws
    report: Reporter
    options: Options = field(default_factory=Options)
    observed: dict[str, Any] = field(default_factory=dict)  # step name -> that step's Observed
    identity: dict | None = None  # sts get-caller-identity's answer, once the account guard has checked it
    reads: Reads = field(default_factory=Reads)  # reads shared by the steps during one look at the env
    # Ids this run's creates returned, by (kind, name): a later change of the same run uses them instead of
    # looking the resource up again. Only apply code reads it; observe() always asks AWS.
    made: dict[tuple[str, str], str] = field(default_factory=dict)

    def tags(self, name: str) -> dict[str, str]:
        from awsprac.engine import tags

        return tags.desired(name, self.cfg.project, self.cfg.env)

    def arn(self, service: str, resource: str) -> str | None:
        """This env's ARN of a resource (e.g. "rds", "pg:name"), once the account guard knows the account."""
        account = (self.identity or {}).get("Account")
        if not account:
            return None
        partition = self.aws.session.get_partition_for_region(self.cfg.region)
        return f"arn:{partition}:{service}:{self.cfg.region}:{account}:{resource}"

    def owns(self, found) -> bool:
        return found.owned_by(self.cfg.project, self.cfg.env)
