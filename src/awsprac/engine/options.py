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


def _global_options(hidden: bool) -> list:
    return [
        click.option("--envs-dir", type=click.Path(file_okay=False, path_type=Path), default=None, expose_value=False, hidden=hidden,
                     callback=_set("envs_dir"), help="Folder with <env>.toml files.  [default: ./envs]"),
        click.option("--profile", default=None, expose_value=False, hidden=hidden, callback=_set("profile"),
                     help="AWS profile (beats AWS_PROFILE and the env file's profile)."),
        click.option("--region", default=None, expose_value=False, hidden=hidden, callback=_set("region"),
                     help="AWS region (beats the env file's region)."),
        click.option("--yes", "-y", is_flag=True, default=False, expose_value=False, hidden=hidden, callback=_set("yes"),
                     help="Do not ask before changing anything."),
        click.option("--verbose", "-v", is_flag=True, default=False, expose_value=False, hidden=hidden, callback=_set("verbose"),
                     help="Say more about what happens (never secrets: AWS SDK logs stay quiet)."),
        click.option("--debug", is_flag=True, default=False, expose_value=False, hidden=hidden, callback=_set("debug"),
                     help="Show a traceback on unexpected errors."),
        click.option("--sandbox", is_flag=True, default=False, expose_value=False, hidden=hidden, callback=_set("sandbox"),
                     help="Run against a local AWS emulation (moto) on 127.0.0.1: no account needed, nothing real touched."),
    ]


def global_options(fn):
    """The global options on a subcommand: accepted after the command name too, shown only on `awsprac --help`."""
    for option in reversed(_global_options(hidden=True)):
        fn = option(fn)
    return fn


def shown_global_options(fn):
    """The global options on the root group, where `awsprac --help` lists them (once)."""
    for option in reversed(_global_options(hidden=False)):
        fn = option(fn)
    return fn


class Command(click.Command):
    """A subcommand whose help points at the global options it takes but does not list."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        formatter.write_paragraph()
        formatter.write_text("Global options (--profile, --region, --envs-dir, --yes, --verbose, --debug, --sandbox) "
                             "go before or after the command: see `awsprac --help`.")


class Group(click.Group):
    """Every command group (the root and each family's `cls=Group`): its commands are Command, its groups Group."""

    command_class = Command
    group_class = type


def _complete_env(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Env names for shell completion: the <env>.toml files in the envs folder (--envs-dir if given)."""
    settings = ctx.find_object(Settings) or Settings()
    try:
        return sorted(p.stem for p in Path(settings.envs_dir).glob("*.toml") if p.stem.startswith(incomplete))
    except OSError:
        return []


ENV_OPTION = click.option("--env", "-e", "env", required=True, metavar="ENV", shell_complete=_complete_env,
                          help="Environment: reads ENVS_DIR/ENV.toml (stg, prd).")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")


def app_for(env: str):
    """The command's App; closed (its sandbox stopped) when the command ends, however it ends."""
    from awsprac.engine.app import App

    ctx = click.get_current_context()
    app = App(ctx.find_object(Settings), env)
    ctx.call_on_close(app.close)
    return app
