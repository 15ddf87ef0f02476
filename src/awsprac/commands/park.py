"""`awsprac stop` / `awsprac start`: park what can be parked when unused (docs/reference.md section 10).

A walker over the families' `park_target` facets (the NAT instance, the DB, the app's ECS service). Stop goes in
reverse registry order (the DB first, then the NAT instance), start in registry order (the NAT instance
first, then the DB), as destroy and up do. Each is state-aware (engine/park.py): already there is
success; a busy resource is waited on; every wait is time-boxed and resumable, so running the command
again picks up where it stopped. Nothing is written when everything is already as asked (no lock taken
either).
"""

from __future__ import annotations

from awsprac.engine.aws import translate
from awsprac.engine.context import Context
from awsprac.engine.park import settle


def stop(ctx: Context) -> dict:
    """Returns what happened, by label (for tests and messages)."""
    return _run(ctx, starting=False)


def start(ctx: Context) -> dict:
    return _run(ctx, starting=True)


def _run(ctx: Context, starting: bool) -> dict:
    from awsprac import steps
    from awsprac.engine import lock

    verb = "start" if starting else "stop"
    cfg = ctx.cfg
    families = [step for step in steps.all_steps() if hasattr(step, "park_target")]
    said = list(reversed(families))  # looked at and spoken of in stop order: the DB, then the NAT instance
    with translate("looking up", f"the {' and '.join(f.PARK_LABEL[0] for f in said)} of env {cfg.env}"):
        parked = {f.NAME: f.park_target(ctx, starting) for f in said}
    # A family with nothing in this env (its part switched off) answers None: not spoken of at all.
    families = [f for f in families if parked[f.NAME] is not None]
    said = list(reversed(families))
    order = [parked[f.NAME] for f in (families if starting else said)]
    outcome: dict[str, str] = {}
    if all(p.state is None for p in order):
        nothing = " and ".join(f"no {f.PARK_LABEL[1]}" for f in said)
        ctx.report.info(f"nothing to {verb} in env {cfg.env}: {nothing}" + "".join(parked[f.NAME].note for f in said)
                        + f"; `awsprac up --env {cfg.env}` builds them")
        return outcome
    for p in order:
        if p.target is not None and p.state in p.target.done:
            outcome[p.target.label] = "already"
            ctx.report.info(f"{p.target.label} is already {p.state}")
    for f in said:
        if parked[f.NAME].state is None and parked[f.NAME].absent:
            ctx.report.info(parked[f.NAME].absent.format(verb=verb))
    todo = [p for p in order if p.target is not None and p.state not in p.target.done]
    if todo:
        with lock.held(ctx, verb):
            for p in todo:
                with translate("starting" if starting else "stopping", p.target.label):
                    settle(ctx, p.target, verb, p.state)
                outcome[p.target.label] = "started" if starting else "stopped"
                ctx.report.applied(f"{'started' if starting else 'stopped'} {p.target.label}")
    for f in families:
        parked[f.NAME].advise(outcome)
    return outcome


def command(app, starting: bool) -> None:
    """`awsprac start|stop --env ENV`: behind the account guard, like every command."""
    ctx = app.context()
    (start if starting else stop)(ctx)
