"""The click options every command shares, and the App a command runs with.

Here and not in commands/ because the families' own command groups (`nat`, `db`, `image`, `profile`)
use them too. Imports only click: `awsprac --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import click

from awsprac.engine.app import Settings


def _set(field: str):
    def callback(ctx: click.Context, param: click.Parameter, value):
        # A flag given after the command name overrides the same flag given before it.
        if value is not None and value is not False:
            setattr(ctx.ensure_object(Settings), field, value)
        return value

    return callback


GLOBAL_OPTIONS = [
    click.option("--envs-dir", type=click.Path(file_okay=False, path_type=Path), default=None, expose_value=False,
                 callback=_set("envs_dir"), help="Folder with <env>.toml files.  [default: ./envs]"),
    click.option("--profile", default=None, expose_value=False, callback=_set("profile"),
                 help="AWS profile (beats AWS_PROFILE and the env file's profile)."),
    click.option("--region", default=None, expose_value=False, callback=_set("region"),
                 help="AWS region (beats the env file's region)."),
    click.option("--yes", "-y", is_flag=True, default=False, expose_value=False, callback=_set("yes"),
                 help="Do not ask before changing anything."),
    click.option("--verbose", "-v", is_flag=True, default=False, expose_value=False, callback=_set("verbose"),
                 help="Say more about what happens (never secrets: AWS SDK logs stay quiet)."),
    click.option("--debug", is_flag=True, default=False, expose_value=False, callback=_set("debug"),
                 help="Show a traceback on unexpected errors."),
    click.option("--sandbox", is_flag=True, default=False, expose_value=False, callback=_set("sandbox"),
                 help="Run against a local AWS emulation (moto) on 127.0.0.1: no account needed, nothing real touched."),
]


def global_options(fn):
    for option in reversed(GLOBAL_OPTIONS):
        fn = option(fn)
    return fn


ENV_OPTION = click.option("--env", "-e", "env", required=True, metavar="ENV", help="Environment: reads ENVS_DIR/ENV.toml (stg, prd).")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")


def app_for(env: str):
    """The command's App; closed (its sandbox stopped) when the command ends, however it ends."""
    from awsprac.engine.app import App

    ctx = click.get_current_context()
    app = App(ctx.find_object(Settings), env)
    ctx.call_on_close(app.close)
    return app
