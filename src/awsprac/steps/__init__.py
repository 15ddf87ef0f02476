"""One module per step. Each exposes the same names, so the runner needs no per-step code:

    NAME, REQUIRES                        identity and prerequisites
    desired(cfg) -> list[spec]            pure, from the env file; each spec has .kind and .name
    observe(ctx) -> Observed              read-only, batched; Observed has .ready, .resources(), .outputs()
    diff(ctx, want, have) -> [Change]     pure given what was observed: idempotence lives here
    apply(ctx, change) -> None            the only writer; returns once the resource is usable
    teardown(ctx, have) -> [Change]       deletes for what observe found and this env owns
and, optionally:
    INDEPENDENT_CHANGES = True            the runner may apply the step's changes at the same time
    CHANGES_AFTER = {kind: (kinds,)}      or as soon as the changes of those kinds are done (deletes: reversed)
    POINTS_AT = (step names,)             refers to their resources by name without needing them built:
                                          no wait on `up`; on destroy this step goes first
    OBSERVES_AFTER = (step names,)        whose observation observe() reads, when fewer than REQUIRES:
                                          a look at the env need not wait for the others
    status_states(ctx, have) -> {(kind, name): state}   reads only `status` needs, kept out of `up`
"""

from __future__ import annotations

import importlib
from types import ModuleType

# The order docs/reference.md lists the steps in; the runner orders by REQUIRES, this only breaks ties.
ORDER = ("profile", "vpc", "subnets", "igw", "nat-iam", "nat", "routes", "secrets", "rds", "ecr", "scheduler")


def load(name: str) -> ModuleType:
    return importlib.import_module(f"awsprac.steps.{name.replace('-', '_')}")


def all_steps() -> list[ModuleType]:
    return [load(name) for name in ORDER]
