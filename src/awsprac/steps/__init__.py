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

# The order steps are listed in SPEC; the runner orders by REQUIRES, this only breaks ties.
ORDER = ("profile", "vpc", "subnets", "igw", "nat-iam", "nat", "routes", "secrets", "rds", "ecr", "scheduler")


# A family's own command group: its name under `awsprac`, the family package holding it in commands.py
# (as `group`), and its one-line help for `awsprac --help` (listing it must not import the family).
COMMANDS = {
    "db": ("rds", "The database's credentials (kept in Secrets Manager, never printed)."),
    "image": ("ecr", "Build and push the API's container image to the env's ECR repository (the guide's Makefile)."),
    "nat": ("nat", "The NAT instance: bake its AMI so other envs (prd) launch from it; verify it forwards."),
    "profile": ("profile", "The CLI user's access key in the named profile aws-practice-terraform-ENV (SPEC section 1)."),
}


def command_group(name: str):
    family, _ = COMMANDS[name]
    return importlib.import_module(f"awsprac.steps.{family}.commands").group


# A family folder may hold more than one step: where a step lives when not at awsprac.steps.<name>.
MODULES = {"nat-iam": "nat.iam"}


def load(name: str) -> ModuleType:
    return importlib.import_module(f"awsprac.steps.{MODULES.get(name, name.replace('-', '_'))}")


def all_steps() -> list[ModuleType]:
    return [load(name) for name in ORDER]
