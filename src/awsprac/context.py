"""What a step sees: the env's config, its AWS clients, the reporter, the flags, and what earlier steps observed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from awsprac.aws import Aws
from awsprac.config import EnvConfig
from awsprac.report import Reporter


@dataclass(frozen=True)
class Options:
    prune: bool = False  # remove rules/resources a person added that the env file does not list
    force: bool = False


@dataclass
class Context:
    cfg: EnvConfig
    aws: Aws
    report: Reporter
    options: Options = field(default_factory=Options)
    observed: dict[str, Any] = field(default_factory=dict)  # step name -> that step's Observed

    def tags(self, name: str) -> dict[str, str]:
        from awsprac import tags

        return tags.desired(name, self.cfg.project, self.cfg.env)

    def owns(self, found) -> bool:
        return found.owned_by(self.cfg.project, self.cfg.env)
