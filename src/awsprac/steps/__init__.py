"""The families, and the one place that knows them by name.

A family is everything about one kind of resource: a module (vpc.py, subnets.py, igw.py, secrets.py)
or, past ~400 lines or with more than one step, a package (nat/, rds/, ecr/, scheduler/, profile/,
routes/, app/) whose __init__ is the build facet and whose other modules hold its helpers, its other facets and its commands. Code
outside steps/ never imports a family: it walks the registry below and asks each step for a facet
with getattr(step, "facet", None); a family with nothing to say for a facet does not define it.

The build facet (every step; the runner needs no per-step code):
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

The other facets, each walked by one command in the registry's order (all read ctx.observed):
    export_terraform(ctx, out)            `export terraform`: add resources (engine.terraform.Resource,
                                          with import ids) to out.file(name, comment); refer to an
                                          earlier family's by out.ref(type, import_id) / out.named(...)
    cost_lines(ctx, prices, nat_gb) -> ([engine.prices.Line], [notes])              `cost`
    cost_comparison(prices, nat_gb, lines) -> {key: {...}}, cost_comparison_text(result) -> str
                                          another design priced next to this one (`cost`)
    park_target(ctx, starting) -> engine.park.Parked | None, PARK_LABEL = (short, long)
                                          `stop` / `start`: started in registry order, stopped in reverse;
                                          None: nothing of the family in this env (its part switched off)
    PARKED_STATES = frozenset(states)     what `stop` leaves: `status` and `plan` say parked, not drift
    doctor_checks = (check(scan) -> [engine.doctor.Finding], ...)                   `doctor`
    doctor_names(cfg) -> {kind: {names}}  names it may own in another setting (not orphans)
    destroy_blockers(ctx, have) -> [str]  `destroy`: why it must not start at all (what it would keep would
                                          strand what it deletes); any line refuses before the first write
    left_behind(ctx) -> [str]             `status`, `destroy`: what this env left that is still billed
                                          (e.g. a database's final snapshots), each with how to remove it
and a command group of its own, listed in COMMANDS below (`group` in the family's commands.py; only
imported when run, so `awsprac --help` stays instant).
"""

from __future__ import annotations

import importlib
from types import ModuleType

# The order docs/reference.md lists the steps in; the runner orders by REQUIRES, this only breaks ties.
ORDER = ("profile", "vpc", "subnets", "igw", "public-routes", "nat-iam", "nat", "routes", "nat-leftovers", "secrets",
         "app-network", "rds", "db-ingress", "ecr", "scheduler", "app-iam", "app-alb", "app", "app-off")


# A family's own command group: its name under `awsprac`, the family package holding it in commands.py
# (as `group`), and its one-line help for `awsprac --help` (listing it must not import the family).
COMMANDS = {
    "app": ("app", "The API on ECS behind the load balancer: deploy, url, logs, exec."),
    "db": ("rds", "Reach the private database (tunnel, psql, the app's own user) and its credentials (never printed)."),
    "image": ("ecr", "Build and push the API's container image to the env's ECR repository (the guide's Makefile)."),
    "nat": ("nat", "The NAT instance: bake its AMI so other envs (prd) launch from it; verify it forwards."),
    "profile": ("profile", "The CLI user's access key in the named profile aws-practice-terraform-ENV (docs/reference.md section 1)."),
}


def command_group(name: str):
    """The family's click group, from its commands.py alone: that module imports only click and the
    engine's options, while the family's __init__ (its build facet) pulls in boto3. So `awsprac nat
    --help` stays instant; running a command imports the rest of the family when it needs it."""
    import sys
    from importlib import util
    from pathlib import Path

    family, _ = COMMANDS[name]
    module_name = f"awsprac.steps.{family}.commands"
    module = sys.modules.get(module_name)
    if module is None:
        spec = util.spec_from_file_location(module_name, Path(__file__).parent / family / "commands.py")
        module = util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return module.group


# A family folder may hold more than one step: where a step lives when not at awsprac.steps.<name>.
MODULES = {"nat-iam": "nat.iam", "nat-leftovers": "nat.leftovers", "public-routes": "routes.public", "db-ingress": "rds.ingress",
           "app-iam": "app.iam", "app-network": "app.network", "app-alb": "app.alb", "app": "app.service",
           "app-off": "app.off"}


def load(name: str) -> ModuleType:
    return importlib.import_module(f"awsprac.steps.{MODULES.get(name, name.replace('-', '_'))}")


def all_steps() -> list[ModuleType]:
    return [load(name) for name in ORDER]
