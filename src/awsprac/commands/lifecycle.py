"""What each command does, as plain functions the CLI calls and tests can call directly."""

from __future__ import annotations

import click

from awsprac.engine.app import App, Settings, ask
from awsprac.engine.errors import Aborted, AwspracError


def init(settings: Settings, accounts: dict[str, str], force: bool) -> None:
    from awsprac import config
    from awsprac.engine import envfiles

    for env, account in accounts.items():
        if account and not config.ACCOUNT.match(account):
            raise click.BadParameter(f"{account!r} must be 12 digits", param_hint=f"--{env}-account")
    if settings.region:
        from awsprac.engine.app import check_region_flag

        check_region_flag(settings.region)
    for path, what in envfiles.write_defaults(settings.envs_dir, accounts, force, settings.region or ""):
        click.echo(f"{path}: {what}")


def plan(app: App, as_json: bool, detailed_exitcode: bool = False) -> None:
    from awsprac.engine import runner

    ctx = app.context(all_clients=True)
    planned = runner.plan(ctx, runner.resolve(None))
    if as_json:
        app.report.json({"env": app.cfg.env, "changes": [_change_json(c) for c in planned.changes], "summary": planned.counts()})
    else:
        app.report.plan(planned, f"Plan for {app.title}")
        _say_parked(app, ctx)
    if detailed_exitcode and planned.changes:
        raise click.exceptions.Exit(2)


def up(app: App, step_names: list[str] | None, options: dict | None = None) -> None:
    from awsprac.engine import lock, runner

    steps = runner.resolve(step_names)  # an unknown step is refused before anything is sent
    ctx = app.context(all_clients=True, **(options or {}))
    planned = runner.plan(ctx, steps)
    verb = f"step {', '.join(step_names)}" if step_names else "up"
    if step_names:
        for step in steps:
            runner.require_prerequisites(ctx, step)
        app.report.plan(planned, f"Plan for {verb} of {app.title}", f"step {', '.join(step_names)} is in sync")
    else:
        app.report.plan(planned, f"Plan for {app.title}")
    _say_parked(app, ctx)
    if not planned.actionable:
        if planned.changes:
            app.report.info(f"{verb} done: nothing awsprac can change; {_drift_left(planned)}.")
        return
    app.confirm(f"Apply {len(planned.actionable)} change(s) to env {app.cfg.env}?")
    # The plan was observed without the lock (a converged `up` writes nothing, not even a lock): under
    # it, each step is observed again just before its first write, and stops if it would do more than
    # the plan showed. That is a second plan, but pipelined into the apply instead of in front of it.
    with lock.held(ctx, "up"):
        outcome = runner.apply(ctx, steps, planned, confirmed=True)
    _finish(app, outcome, verb, planned)
    if app.sandbox is not None:
        app.report.status(runner.status(ctx, steps), f"Built in the sandbox ({app.title})")


def status(app: App, as_json: bool) -> None:
    from awsprac.engine import runner

    ctx = app.context(all_clients=True)
    rows = runner.status(ctx, runner.resolve(None))
    if as_json:
        app.report.json({"env": app.cfg.env, "resources": [row.__dict__ for row in rows]})
    else:
        app.report.status(rows, f"Status of {app.title}")
        _left_behind(app, ctx)
        _say_parked(app, ctx)


def outputs(app: App, as_json: bool) -> None:
    from awsprac.engine import runner

    values = runner.outputs(app.context(all_clients=True), runner.resolve(None))
    if as_json:
        app.report.json({"env": app.cfg.env, "outputs": values})
    elif values:
        app.report.key_values(values, f"Outputs of {app.title}")
    else:
        app.report.info(f"nothing built yet in env {app.cfg.env}: run `awsprac up --env {app.cfg.env}`")


def destroy(app: App, options: dict | None = None) -> None:
    from awsprac.engine import lock, runner

    ctx = app.context(all_clients=True, **(options or {}))
    steps = runner.resolve(None)
    planned = runner.teardown_plan(ctx, steps)
    app.report.plan(planned, f"Destroy plan for {app.title}")
    blockers = runner.destroy_blockers(ctx, steps)
    if blockers:
        raise AwspracError("destroy refused, nothing was deleted: " + "; ".join(blockers))
    if not planned.actionable:
        left = len(planned.changes)
        if left:
            app.report.info(f"nothing to delete: {left} resource(s) left alone, as the plan above says why")
        else:
            app.report.info(f"nothing owned by env {app.cfg.env} is left to delete")
        _left_behind(app, ctx)
        return
    if not (app.settings.yes or app.settings.sandbox):
        typed = ask(f"Type the env name ({app.cfg.env}) to delete these {len(planned.actionable)} resource(s)")
        if typed != app.cfg.env:
            raise Aborted("destroy cancelled: the env name was not typed; nothing was deleted")
    with lock.held(ctx, "destroy"):
        outcome = runner.destroy(ctx, steps, planned, confirmed=True)
    _finish(app, outcome, "destroy", planned)
    _left_behind(app, ctx)


def _left_behind(app: App, ctx) -> None:
    """What earlier destroys left (a database's final snapshots): billed until deleted."""
    from awsprac.engine import runner

    for note in runner.left_behind(ctx, runner.resolve(None)):
        app.report.info(note)


def unlock(app: App) -> None:
    from awsprac.engine import lock

    ctx = app.context()
    held = lock.holder(ctx)
    if held is None:  # nothing to ask about
        app.report.info(f"env {app.cfg.env} is not locked: nothing to remove")
        return
    seen, who = held
    app.confirm(f"Remove env {app.cfg.env}'s run lock, held by {who}, even if that run is still going?")
    holder = lock.unlock(ctx, seen)
    app.report.info(f"removed the lock held by {holder}")


def sandbox(port: int) -> None:
    import threading

    from awsprac.engine.sandbox import SANDBOX_ENV, Sandbox

    box = Sandbox.start(port=port, set_env=False)
    exports = " ".join(f"{k}={v}" for k, v in {**SANDBOX_ENV, "AWS_ENDPOINT_URL": box.endpoint}.items() if k.startswith("AWS_"))
    click.echo(f"Sandbox (local AWS emulation) listening on {box.endpoint}. In another terminal:\n\n  export {exports}\n  awsprac up --env stg\n\nCtrl-C stops it; everything in it is then gone.", err=True)
    click.echo(box.endpoint)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        box.stop()


def _finish(app: App, outcome, verb: str, planned) -> None:
    for step, blocked in outcome.skipped.items():
        app.report.warn(f"step {step} not attempted: step {blocked} did not finish")
    if outcome.failed:
        for step, exc in outcome.failed.items():
            text = str(exc) if isinstance(exc, AwspracError) else f"unexpected {type(exc).__name__}: {exc} (please report it)"
            app.report.error(f"step {step}: {text}")
        first = next(iter(outcome.failed.values()))
        raise _Reported(first.exit_code)
    left = f"; {_drift_left(planned)}" if verb != "destroy" and planned.counts()["drift"] else ""
    app.report.info(f"{verb} done: {len(outcome.applied)} change(s) applied to env {app.cfg.env}{left}.")


def _say_parked(app: App, ctx) -> None:
    from awsprac.engine import runner

    stopped = runner.parked(ctx)
    if stopped:
        app.report.info(f"env {app.cfg.env} is parked ({', '.join(stopped)} stopped): "
                        f"`awsprac start --env {app.cfg.env}` brings it back")


def _drift_left(planned) -> str:
    return f"{planned.counts()['drift']} drift item(s) marked ! above are left as they are: resolve them as each one says"


class _Reported(AwspracError):
    """Failures already printed one per line; only the exit code is left to give."""

    def __init__(self, exit_code: int):
        super().__init__("")
        self.exit_code = exit_code


def _change_json(c) -> dict:
    return {
        "action": c.action.value, "step": c.step, "kind": c.kind, "name": c.name, "id": c.id,
        "fields": [{"field": f.field, "have": f.have, "want": f.want} for f in c.fields], "note": c.note,
    }
