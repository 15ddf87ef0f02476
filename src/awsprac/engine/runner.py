"""Step order, plan, apply, verify, and destroy in reverse: no per-step code lives here.

Every step is observed (read-only) to build the plan. Apply walks the steps in dependency
order; a step is observed again only when it or a prerequisite changed, so a converged
`up` makes no read twice. After applying a step the runner observes it again and fails
unless there is nothing left to do: a cheap, always-on proof of convergence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import ModuleType

from awsprac.engine.batched import Reads
from awsprac.engine.context import Context
from awsprac.engine.errors import EnvChanged, MissingPrerequisite, NotConverged, UsageError
from awsprac.engine.plan import Action, Change, Plan, StatusRow
from awsprac.engine import dag
from awsprac import steps as step_registry


def ordered(steps: list[ModuleType]) -> list[ModuleType]:
    """Topological order by REQUIRES; ties keep the registry's order. Missing prerequisites are pulled in."""
    by_name = {s.NAME: s for s in step_registry.all_steps()}
    by_name.update({s.NAME: s for s in steps})
    result: list[ModuleType] = []
    visiting: set[str] = set()

    def visit(step: ModuleType) -> None:
        if step in result:
            return
        if step.NAME in visiting:
            raise RuntimeError(f"steps form a cycle at {step.NAME}")
        visiting.add(step.NAME)
        for req in step.REQUIRES:
            visit(by_name[req])
        visiting.discard(step.NAME)
        result.append(step)

    for step in sorted(steps, key=lambda s: step_registry.ORDER.index(s.NAME)):
        visit(step)
    return result


def resolve(names: list[str] | None) -> list[ModuleType]:
    if not names:
        return step_registry.all_steps()
    unknown = [n for n in names if n not in step_registry.ORDER]
    if unknown:
        raise UsageError(f"unknown step {unknown[0]!r} (steps: {', '.join(step_registry.ORDER)})")
    return [step_registry.load(n) for n in names]


def observe(ctx: Context, step: ModuleType, fresh: bool = False) -> None:
    """`fresh`: after a write, so the reads steps share are made again, not taken from the last look."""
    view = dataclasses.replace(ctx, reads=Reads()) if fresh else ctx
    ctx.observed[step.NAME] = step.observe(view)


def changes_for(ctx: Context, step: ModuleType) -> list[Change]:
    return step.diff(ctx, step.desired(ctx.cfg), ctx.observed[step.NAME])


def _walk(ctx: Context, steps: list[ModuleType], work, reverse: bool = False, looking: bool = False) -> dag.Walk:
    """Run `work(step)` over the steps' graph, independent steps at the same time. `looking`: only
    observing, so a step waits only for the steps whose observation its observe() reads (OBSERVES_AFTER)."""
    nodes = ordered(steps)
    if reverse:
        # A step goes once everything that needs it, or points at it (POINTS_AT), is gone.
        deps = {s: tuple(d for d in nodes if s.NAME in d.REQUIRES or s.NAME in getattr(d, "POINTS_AT", ())) for s in nodes}
    else:
        by_name = {s.NAME: s for s in nodes}
        deps = {s: tuple(by_name[r] for r in (getattr(s, "OBSERVES_AFTER", s.REQUIRES) if looking else s.REQUIRES)) for s in nodes}
    return dag.walk(nodes, deps, work)


def _raise_first(walk: dag.Walk, steps: list[ModuleType]) -> None:
    for step in ordered(steps):
        if step in walk.failed:
            raise walk.failed[step]


def observe_all(ctx: Context, steps: list[ModuleType]) -> None:
    """Observe the steps and their prerequisites, each as soon as its prerequisites are observed.
    One look: the reads steps share are made once for all of them."""
    ctx.reads = Reads()
    _raise_first(_walk(ctx, steps, lambda step: observe(ctx, step), looking=True), steps)


def plan(ctx: Context, steps: list[ModuleType]) -> Plan:
    """Observe every step (prerequisites first) and collect what up would change. Read-only."""
    observe_all(ctx, steps)
    result = Plan()
    for step in ordered(steps):
        if step in steps:
            result.changes.extend(changes_for(ctx, step))
    return result


def require_prerequisites(ctx: Context, step: ModuleType) -> None:
    """For `awsprac step NAME`: every prerequisite (theirs too) must exist already; all missing ones are
    named at once, in the order to build them."""
    env = ctx.cfg.env
    missing = [s.NAME for s in ordered([step]) if s is not step and not ctx.observed[s.NAME].ready]
    if len(missing) == 1:
        raise MissingPrerequisite(
            f"step {step.NAME} needs step {missing[0]}, which is not built yet: "
            f"run `awsprac step {missing[0]} --env {env}` first (or `awsprac up --env {env}`)"
        )
    if missing:
        runs = ", then ".join(f"`awsprac step {name} --env {env}`" for name in missing)
        raise MissingPrerequisite(
            f"step {step.NAME} needs steps {', '.join(missing)}, which are not built yet: run {runs} first (or `awsprac up --env {env}`)"
        )


@dataclass
class Outcome:
    applied: list[Change] = field(default_factory=list)
    failed: dict[str, Exception] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # step -> the prerequisite that did not finish

    @property
    def ok(self) -> bool:
        return not self.failed

    @classmethod
    def of(cls, walk: dag.Walk, applied: list[Change]) -> "Outcome":
        return cls(
            applied,
            {s.NAME: e for s, e in walk.failed.items()},
            {s.NAME: b.NAME for s, b in walk.skipped.items()},
        )


def apply(ctx: Context, steps: list[ModuleType], planned: Plan, confirmed: bool = False) -> Outcome:
    """Carry out the plan; independent steps run at the same time, dependents of a failure are skipped.

    `confirmed`: the plan was observed before the run lock was taken and a person agreed to it. Then
    each step is observed again (under the lock) right before its first write, and a step that would
    do anything the plan did not show is not applied (EnvChanged): re-planning under the lock,
    pipelined into the walk instead of a second full plan before it."""
    changed: set[str] = set()
    applied: list[Change] = []
    planned_steps = {c.step for c in planned.actionable}
    agreed = {_key(c) for c in planned.actionable}

    # Under the lock, the planned steps and what they build on are observed again (what a step
    # builds on could have changed too); the rest was not going to be touched.
    needed = _with_requirements(planned_steps) if confirmed else set()

    def work(step: ModuleType) -> None:
        stale = any(r in changed for r in step.REQUIRES)
        if stale or step.NAME in needed:
            observe(ctx, step, fresh=True)
        if step not in steps or not (stale or step.NAME in planned_steps or step.NAME in needed):
            return
        todo = [c for c in changes_for(ctx, step) if c.action is not Action.REPORT]
        if confirmed:
            _still_as_agreed(step, todo, agreed)

        def carry_out(change: Change) -> None:
            step.apply(ctx, change)
            applied.append(change)
            ctx.report.applied(f"{_past(change)} {change.kind} {change.name}" + (f" ({change.id})" if change.id else ""))

        _each(step, todo, carry_out)
        if todo:
            changed.add(step.NAME)
            observe(ctx, step, fresh=True)
            left = [c for c in changes_for(ctx, step) if c.action is not Action.REPORT]
            if left:
                raise NotConverged(
                    f"step {step.NAME} did not converge; still to do after applying: " + "; ".join(c.describe() for c in left)
                )

    return Outcome.of(_walk(ctx, steps, work), applied)


def teardown_plan(ctx: Context, steps: list[ModuleType]) -> Plan:
    """Observe everything, then list deletes in reverse dependency order. Read-only."""
    observe_all(ctx, steps)
    result = Plan()
    for step in reversed(ordered(steps)):
        if step in steps:
            result.changes.extend(step.teardown(ctx, ctx.observed[step.NAME]))
    return result


def destroy_blockers(ctx: Context, steps: list[ModuleType]) -> list[str]:
    """After teardown_plan: why the destroy must not start (something it keeps would strand what it
    deletes). Steps say so with their destroy_blockers(ctx, have) facet."""
    return [why for step in ordered(steps) if step in steps and hasattr(step, "destroy_blockers")
            for why in step.destroy_blockers(ctx, ctx.observed[step.NAME])]


def left_behind(ctx: Context, steps: list[ModuleType]) -> list[str]:
    """What earlier destroys left that still costs money (each step's left_behind(ctx) facet), with how to remove it."""
    return [line for step in ordered(steps) if step in steps and hasattr(step, "left_behind") for line in step.left_behind(ctx)]


def destroy(ctx: Context, steps: list[ModuleType], planned: Plan, confirmed: bool = False) -> Outcome:
    """Delete in reverse dependency order: a step goes once everything that needs it is gone.
    `confirmed`: as for apply(), each step is observed again right before its deletes."""
    applied: list[Change] = []
    agreed = {_key(c) for c in planned.actionable}

    def work(step: ModuleType) -> None:
        def carry_out(change: Change) -> None:
            step.apply(ctx, change)
            applied.append(change)
            ctx.report.applied(f"deleted {change.kind} {change.name} ({change.id})")

        todo = [c for c in planned.changes if c.step == step.NAME and c.action is Action.DELETE]
        if confirmed and step in steps and todo:
            observe(ctx, step, fresh=True)
            todo = [c for c in step.teardown(ctx, ctx.observed[step.NAME]) if c.action is Action.DELETE]
            _still_as_agreed(step, todo, agreed)
        _each(step, todo, carry_out)

    return Outcome.of(_walk(ctx, steps, work, reverse=True), applied)


def _with_requirements(names: set[str]) -> set[str]:
    result: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in result:
            result.add(name)
            todo.extend(step_registry.load(name).REQUIRES)
    return result


def _key(change: Change) -> tuple:
    return (change.step, change.action, change.kind, change.name)


def _still_as_agreed(step: ModuleType, todo: list[Change], agreed: set) -> None:
    """What is applied must be what the person said yes to (or less, if another run did some of it)."""
    new = [c for c in todo if _key(c) not in agreed]
    if new:
        raise EnvChanged(
            "the env changed since the plan was shown (" + "; ".join(c.describe() for c in new[:3])
            + f"): step {step.NAME} was not applied; run the same command again to see the new plan"
        )


def _each(step: ModuleType, changes: list[Change], carry_out) -> None:
    """A step's changes in order; at the same time when the step declares them independent
    (INDEPENDENT_CHANGES = True, e.g. four subnets), or as soon as the kinds they wait for are done
    (CHANGES_AFTER = {kind: kinds it waits for}; deletes wait the other way round). The first failure
    is raised after all finish."""
    after: dict = getattr(step, "CHANGES_AFTER", {})
    if len(changes) < 2 or not (after or getattr(step, "INDEPENDENT_CHANGES", False)):
        for change in changes:
            carry_out(change)
        return

    def waits_for(change: Change) -> tuple:
        if change.action is Action.DELETE:
            return tuple(c for c in changes if change.kind in after.get(c.kind, ()))
        return tuple(c for c in changes if c.kind in after.get(change.kind, ()))

    walk = dag.walk(changes, {c: waits_for(c) for c in changes}, carry_out)
    for change in changes:
        if change in walk.failed:
            raise walk.failed[change]


def status(ctx: Context, steps: list[ModuleType]) -> list[StatusRow]:
    """Every resource the env file describes: found or missing, in sync or drifted. Read-only."""
    planned = plan(ctx, steps)
    rows = []
    for step in ordered(steps):
        if step not in steps:
            continue
        found = {(f.kind, f.name): f for f in ctx.observed[step.NAME].resources()}
        # Reads only status wants (an ECR repository's image count) stay out of observe(), so `up` skips them.
        states = step.status_states(ctx, ctx.observed[step.NAME]) if hasattr(step, "status_states") else {}
        for spec in step.desired(ctx.cfg):
            f = found.get((spec.kind, spec.name))
            mine = [c for c in planned.changes if c.step == step.NAME and c.kind == spec.kind and c.name == spec.name]
            if f is None:
                rows.append(StatusRow(step.NAME, spec.kind, spec.name, None, "", "missing"))
                continue
            detail = "; ".join(str(x) for c in mine for x in c.fields) or "; ".join(c.note for c in mine if c.note)
            sync = "drifted" if mine else "in sync"
            if f.state in getattr(step, "PARKED_STATES", ()) and not mine:
                sync, detail = "parked", f"`awsprac start --env {ctx.cfg.env}` starts it"
            if not ctx.owns(f) and not mine:
                sync = "not owned"
            rows.append(StatusRow(step.NAME, spec.kind, spec.name, f.id, states.get((f.kind, f.name), f.state) or "exists", sync, detail))
        # What the env file no longer describes but still stands (a part switched off, another NAT
        # mode's leftovers): `up` removes it, and status says so.
        described = {(spec.kind, spec.name) for spec in step.desired(ctx.cfg)}
        rows += [StatusRow(step.NAME, c.kind, c.name, c.id, "exists", "to be removed", c.note) for c in planned.changes
                 if c.step == step.NAME and c.action is Action.DELETE and (c.kind, c.name) not in described]
    return rows


def parked(ctx: Context) -> list[str]:
    """What the last look (plan or status) found parked, as `kind name`: in one of the PARKED_STATES a
    parkable family names (what `awsprac stop` leaves: a state the user chose, not drift)."""
    found = []
    for step in step_registry.all_steps():  # the registry's order, not the order the looks finished in
        states = getattr(step, "PARKED_STATES", ())
        if states and step.NAME in ctx.observed:
            found += [f"{f.kind} {f.name}" for f in ctx.observed[step.NAME].resources() if f.state in states]
    return found


def outputs(ctx: Context, steps: list[ModuleType]) -> dict:
    observe_all(ctx, steps)
    result: dict = {}
    for step in ordered(steps):
        result.update(ctx.observed[step.NAME].outputs())
    return result


def _past(change: Change) -> str:
    return {Action.CREATE: "created", Action.UPDATE: "updated", Action.ADOPT: "adopted", Action.DELETE: "deleted"}[change.action]
