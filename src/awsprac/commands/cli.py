"""The command tree. Commands stay thin: parse, build the App, call plain functions.

The env's lifecycle (init, plan, up, step, status, outputs, destroy, unlock, sandbox) and the walkers
over every family (stop, start, cost, export terraform, doctor) are here; a family's own command group
(`nat`, `db`, `image`, `profile`) is found by name in the registry and imported only when it is run.
Nothing heavy is imported at module level (no boto3, no rich), so `--help` is instant.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from awsprac import steps
from awsprac.engine.app import Settings
from awsprac.engine.options import ENV_OPTION, JSON_OPTION, Group, app_for, global_options, shown_global_options


class _Root(Group):
    """The root group: its own commands, and the families' groups, imported only when run (their short
    help for `awsprac --help` comes from the registry, so listing them imports nothing)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *steps.COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        if name in steps.COMMANDS:
            return steps.command_group(name)
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        for name in self.list_commands(ctx):
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
            else:
                rows.append((name, click.Command(name, short_help=None, help=steps.COMMANDS[name][1]).get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="awsprac", message="awsprac %(version)s")
@shown_global_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Build a production-shaped AWS environment with one idempotent command, and keep it right.

    \b
    Start here, no AWS account needed:
      awsprac up --env stg --sandbox
    Against your account (see `awsprac profile import` for credentials):
      awsprac init                 write envs/stg.toml and envs/prd.toml
      awsprac plan --env stg       what would change, touching nothing
      awsprac up --env stg         build or repair everything, after asking
      awsprac status --env stg     every resource, in sync or drifted
      awsprac destroy --env stg    delete what this env owns, after asking
    """
    ctx.ensure_object(Settings)


@cli.command()
@click.option("--stg-account", default="", metavar="ID", help="Pin envs/stg.toml to this AWS account.")
@click.option("--prd-account", default="", metavar="ID", help="Pin envs/prd.toml to this AWS account.")
@click.option("--force", is_flag=True, help="Overwrite existing env files.")
@global_options
def init(stg_account: str, prd_account: str, force: bool) -> None:
    """Write envs/stg.toml and envs/prd.toml with the defaults of docs/reference.md, commented."""
    from awsprac.commands import lifecycle

    lifecycle.init(click.get_current_context().find_object(Settings), {"stg": stg_account, "prd": prd_account}, force)


@cli.command()
@ENV_OPTION
@JSON_OPTION
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when nothing would change, 2 when there are changes or drift, 1 on an error (Terraform's convention).")
@global_options
def plan(env: str, as_json: bool, detailed_exitcode: bool) -> None:
    """Show what `up` would create, change or report, touching nothing.

    Lines read `+` create, `~` update (or adopt a hand-made resource), `!` drift to fix by hand.
    """
    from awsprac.commands import lifecycle

    lifecycle.plan(app_for(env), as_json, detailed_exitcode)


UP_OPTIONS = [
    click.option("--prune", is_flag=True, help="Also remove rules a person added that the env file does not list."),
    click.option("--apply-immediately", is_flag=True, help="prd: apply RDS changes now, not at the next maintenance window."),
]


def up_options(fn):
    for option in reversed(UP_OPTIONS):
        fn = option(fn)
    return fn


@cli.command()
@ENV_OPTION
@up_options
@global_options
def up(env: str, **options) -> None:
    """Build or reconcile everything the env file describes, in dependency order.

    Shows the plan and asks first (--yes skips the question). Running it again changes nothing.
    """
    from awsprac.commands import lifecycle

    lifecycle.up(app_for(env), None, options)


@cli.command(help=(
    "Build or reconcile one step. Its prerequisites must exist already.\n\n"
    f"STEP, in dependency order: {', '.join(steps.ORDER)}."
))
@click.argument("name", metavar="STEP", type=click.Choice(steps.ORDER))
@ENV_OPTION
@up_options
@global_options
def step(name: str, env: str, **options) -> None:
    from awsprac.commands import lifecycle

    lifecycle.up(app_for(env), [name], options)


@cli.command()
@ENV_OPTION
@JSON_OPTION
@global_options
def status(env: str, as_json: bool) -> None:
    """Every resource of the env: name, id, state, and in sync / drifted / missing."""
    from awsprac.commands import lifecycle

    lifecycle.status(app_for(env), as_json)


@cli.command()
@ENV_OPTION
@JSON_OPTION
@global_options
def outputs(env: str, as_json: bool) -> None:
    """Ids of what was built (vpc_id, subnet ids by name, igw_id, ...), for scripts."""
    from awsprac.commands import lifecycle

    lifecycle.outputs(app_for(env), as_json)


@cli.command()
@ENV_OPTION
@click.option("--force", is_flag=True, help="Also delete a deletion-protected database, an ECR repository that holds images, and the API's log group.")
@click.option("--skip-final-snapshot", is_flag=True, help="Delete the database without a final snapshot (its data is gone).")
@click.option("--force-delete-secret", is_flag=True, help="Delete the secret at once, without the recovery window.")
@click.option("--include-ami", is_flag=True, help="Also deregister the baked NAT AMI (prd launches from it).")
@global_options
def destroy(env: str, **options) -> None:
    """Delete what this env owns, in reverse order, after showing it and asking.

    Only resources tagged awsprac:env=ENV are deleted; anything else is left alone. Safe to run again
    after a partial failure.
    """
    from awsprac.commands import lifecycle

    lifecycle.destroy(app_for(env), options)


@cli.command()
@ENV_OPTION
@global_options
def unlock(env: str) -> None:
    """Remove the env's run lock, left by a run that was killed on another machine.

    Runs on this machine that died are noticed and their lock taken over by themselves.
    """
    from awsprac.commands import lifecycle

    lifecycle.unlock(app_for(env))


@cli.command()
@ENV_OPTION
@global_options
def stop(env: str) -> None:
    """Park the env for cost: stop the DB, then the NAT instance (waits until both are stopped).

    Already stopped is fine; a busy DB (backing-up, modifying) is waited on. Prints when AWS starts the
    DB again by itself (7 days later) and when the weekly schedule next starts and stops it.
    """
    from awsprac.commands import park

    park.command(app_for(env), starting=False)


@cli.command()
@ENV_OPTION
@global_options
def start(env: str) -> None:
    """Start the NAT instance, then the DB (waits until both are up). Already running is fine."""
    from awsprac.commands import park

    park.command(app_for(env), starting=True)


@cli.command()
@ENV_OPTION
@JSON_OPTION
@click.option("--nat-gb", default=10.0, show_default=True, metavar="GB", type=click.FloatRange(min=0),
              help="Data through the NAT per month, for the NAT gateway's per-GB charge.")
@global_options
def cost(env: str, as_json: bool, nat_gb: float) -> None:
    """Monthly cost of what the env holds, running and parked (stopped), from list prices kept in awsprac.

    Also what the NAT gateway design would cost instead of the NAT instance. Not a quote: see the
    price table's date and source in the output.
    """
    from awsprac.commands import cost as costing

    costing.command(app_for(env), as_json, nat_gb)


@cli.group(cls=Group)
def export() -> None:
    """Hand the env over to other tools: Terraform import blocks and matching resources."""


@export.command("terraform")
@ENV_OPTION
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Folder to write.  [default: terraform/ENV]")
@click.option("--force", is_flag=True, help="Write into a folder that is not empty (overwrites the files of the same names).")
@click.option("--json", "as_json", is_flag=True, help="Print what would be written as JSON (addresses, import ids, attributes); write nothing.")
@global_options
def export_terraform(env: str, out: Path | None, force: bool, as_json: bool) -> None:
    """Write providers.tf and one file per area with Terraform 1.5+ `import` blocks for every resource
    awsprac built, and resource blocks that match them, so `terraform plan` replaces nothing.

    Read-only: it only observes the env. Nothing secret is written (the DB password stays in its secret).
    """
    from awsprac.commands import export as terraform

    terraform.export_command(app_for(env), out, force, as_json)


@cli.command()
@ENV_OPTION
@JSON_OPTION
@global_options
def doctor(env: str, as_json: bool) -> None:
    """Find what breaks runs, each with its exact fix; changes nothing. Exit 1 when something is wrong.

    Duplicate names, orphans (owned but unknown to every step), foreign instances and interfaces in the
    VPC (they block destroy), blackhole routes, a NAT instance with source/dest check on, the secret
    pending deletion, credentials of another account than the env's pin.
    """
    from awsprac.commands import doctor as doctoring

    doctoring.run(app_for(env), as_json)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script (commands, options, env names from envs/, step names).

    \b
      bash:  awsprac completion bash > ~/.local/share/bash-completion/completions/awsprac
      zsh:   awsprac completion zsh > "${fpath[1]}/_awsprac"
      fish:  awsprac completion fish > ~/.config/fish/completions/awsprac.fish
    """
    from awsprac.commands import completion as completing

    click.echo(completing.script(cli, shell))


@cli.command()
@click.option("--port", default=0, show_default="a free port", help="Port on 127.0.0.1.")
def sandbox(port: int) -> None:
    """Keep a local AWS emulation running in the foreground, for other terminals to use.

    It prints the AWS_ENDPOINT_URL to export; awsprac (and the AWS CLI) then talk to it.
    """
    from awsprac.commands import lifecycle

    lifecycle.sandbox(port)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line and an exit code for every known failure; no traceback unless --debug."""
    from awsprac.commands.completion import answer_if_asked
    from awsprac.engine.errors import AwspracError

    answer_if_asked(cli)
    settings = None
    args = list(sys.argv[1:] if argv is None else argv)
    # `plan --detailed-exitcode` keeps 2 for "changes": every error, bad input included, is then 1
    fail = _fail_detailed if "--detailed-exitcode" in args else _fail
    try:
        with cli.make_context("awsprac", args) as ctx:
            settings = ctx.find_object(Settings)
            cli.invoke(ctx)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `awsprac` (or `awsprac nat`): the usage, not an error
        click.echo(exc.ctx.get_help())
        sys.exit(0)
    except click.exceptions.Abort:
        fail("aborted, nothing changed", 1)
    except click.ClickException as exc:
        fail(_click_message(exc), exc.exit_code)
    except AwspracError as exc:
        if settings is not None and settings.debug:
            raise
        if str(exc):
            fail(str(exc), exc.exit_code)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted: run the same command again to finish (every step is safe to repeat)", 130)
    except Exception as exc:  # a bug: say so in one line, full traceback only on request
        if settings is not None and settings.debug:
            raise
        fail(f"unexpected {type(exc).__name__}: {exc} (run again with --debug for a traceback, and please report it)", 1)


def _click_message(exc: click.ClickException) -> str:
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        message += f" (see `{ctx.command_path} --help`)"
    return message


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _fail_detailed(message: str, code: int) -> None:
    _fail(message, 1 if code == 2 else code)
