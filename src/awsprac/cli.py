"""The command tree. Commands stay thin: parse, build the App, call plain functions.

Nothing heavy is imported at module level (no boto3, no rich), so `--help` is instant.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from awsprac.app import Settings
from awsprac.steps import ORDER as STEP_NAMES


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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="awsprac", message="awsprac %(version)s")
@global_options
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


def _app(env: str):
    """The command's App; closed (its sandbox stopped) when the command ends, however it ends."""
    from awsprac.app import App

    ctx = click.get_current_context()
    app = App(ctx.find_object(Settings), env)
    ctx.call_on_close(app.close)
    return app


@cli.command()
@click.option("--stg-account", default="", metavar="ID", help="Pin envs/stg.toml to this AWS account.")
@click.option("--prd-account", default="", metavar="ID", help="Pin envs/prd.toml to this AWS account.")
@click.option("--force", is_flag=True, help="Overwrite existing env files.")
@global_options
def init(stg_account: str, prd_account: str, force: bool) -> None:
    """Write envs/stg.toml and envs/prd.toml with SPEC's defaults, commented."""
    from awsprac import commands

    commands.init(click.get_current_context().find_object(Settings), {"stg": stg_account, "prd": prd_account}, force)


@cli.command()
@ENV_OPTION
@JSON_OPTION
@global_options
def plan(env: str, as_json: bool) -> None:
    """Show what `up` would create, change or report, touching nothing.

    Lines read `+` create, `~` update (or adopt a hand-made resource), `!` drift to fix by hand.
    """
    from awsprac import commands

    commands.plan(_app(env), as_json)


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
    from awsprac import commands

    commands.up(_app(env), None, options)


@cli.command(help=(
    "Build or reconcile one step. Its prerequisites must exist already.\n\n"
    f"STEP, in dependency order: {', '.join(STEP_NAMES)}."
))
@click.argument("name", metavar="STEP", type=click.Choice(STEP_NAMES))
@ENV_OPTION
@up_options
@global_options
def step(name: str, env: str, **options) -> None:
    from awsprac import commands

    commands.up(_app(env), [name], options)


@cli.command()
@ENV_OPTION
@JSON_OPTION
@global_options
def status(env: str, as_json: bool) -> None:
    """Every resource of the env: name, id, state, and in sync / drifted / missing."""
    from awsprac import commands

    commands.status(_app(env), as_json)


@cli.command()
@ENV_OPTION
@JSON_OPTION
@global_options
def outputs(env: str, as_json: bool) -> None:
    """Ids of what was built (vpc_id, subnet ids by name, igw_id, ...), for scripts."""
    from awsprac import commands

    commands.outputs(_app(env), as_json)


@cli.command()
@ENV_OPTION
@click.option("--force", is_flag=True, help="Also delete a deletion-protected database and an ECR repository that holds images.")
@click.option("--skip-final-snapshot", is_flag=True, help="Delete the database without a final snapshot (its data is gone).")
@click.option("--force-delete-secret", is_flag=True, help="Delete the secret at once, without the recovery window.")
@click.option("--include-ami", is_flag=True, help="Also deregister the baked NAT AMI (prd launches from it).")
@global_options
def destroy(env: str, **options) -> None:
    """Delete what this env owns, in reverse order, after showing it and asking.

    Only resources tagged awsprac:env=ENV are deleted; anything else is left alone. Safe to run again
    after a partial failure.
    """
    from awsprac import commands

    commands.destroy(_app(env), options)


@cli.group()
@global_options
def profile() -> None:
    """The CLI user's access key in the named profile aws-practice-terraform-ENV (SPEC section 1).

    \b
      awsprac profile import --env stg --csv FILE [--direnv]   the key the IAM console downloaded
      awsprac profile create-user --env stg                   or: make user and key with admin credentials
      awsprac profile check --env stg                         profile, identity, account, region
    """


@profile.command("import", short_help="Put the key from the console's access-key CSV into the profile.")
@ENV_OPTION
@click.option("--csv", "csv_path", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="The access-key CSV the IAM console downloaded (with or without a User name column).")
@click.option("--direnv", is_flag=True, help="Also write `export AWS_PROFILE=...` (never keys) to ./.envrc.")
@click.option("--force", is_flag=True, help="Replace a different key already in the profile (a backup is kept).")
@global_options
def profile_import(env: str, csv_path: Path, direnv: bool, force: bool) -> None:
    """Write the CSV's key into ~/.aws/credentials and ~/.aws/config, keeping everything else as it is.

    The key is checked with AWS (sts get-caller-identity, and the env's account pin) before anything is
    written. Files are replaced atomically, mode 0600, with a timestamped backup.
    """
    from awsprac import profiles

    profiles.import_csv(_app(env), csv_path, direnv, force)


@profile.command("create-user", short_help="Create the IAM user and its key with admin credentials, into the profile.")
@ENV_OPTION
@click.option("--force", is_flag=True, help="Replace a different key already in the profile (a backup is kept).")
@global_options
def profile_create_user(env: str, force: bool) -> None:
    """With administrator credentials (--profile): the IAM user aws-practice-terraform-ENV, no console access,
    AdministratorAccess, and an access key written straight into the profile (no CSV on disk).

    Safe to run again: an existing user and a key already in the profile are kept.
    """
    from awsprac import profiles

    profiles.create_user(_app(env), force)


@profile.command("check", short_help="Check the profile: identity, account pin, region.")
@ENV_OPTION
@global_options
def profile_check(env: str) -> None:
    """The env's profile (or --profile): it resolves, whose it is, the account pin, the region."""
    from awsprac import profiles

    profiles.check(_app(env))


@cli.group()
@global_options
def image() -> None:
    """Build and push the API's container image to the env's ECR repository (the guide's Makefile).

    \b
      awsprac image release --env stg --dockerfile-dir ./api [--record-tag]   login, build, push
      awsprac image uri --env stg                                             URI:tag recorded in SSM

    The tag is `git rev-parse --short HEAD` of the Dockerfile folder's repository.
    """


DOCKERFILE_DIR = click.option("--dockerfile-dir", "folder", type=click.Path(path_type=Path), default=Path("."), show_default=True,
                              metavar="DIR", help="Folder with the Dockerfile: the build context, in a git repository.")
ALLOW_DIRTY = click.option("--allow-dirty", is_flag=True, help="Use the commit hash as the tag even with uncommitted changes in DIR.")
PLATFORM = click.option("--platform", default="linux/amd64", show_default=True, help="Target platform of the image.")
RECORD_TAG = click.option("--record-tag", "record", is_flag=True, help="Store the tag in SSM parameter image-tag-{project}-{env}.")


@image.command("release")
@ENV_OPTION
@DOCKERFILE_DIR
@ALLOW_DIRTY
@PLATFORM
@RECORD_TAG
@global_options
def image_release(env: str, folder: Path, allow_dirty: bool, platform: str, record: bool) -> None:
    """Log in, build and push URI:<commit>; nothing to do when that tag is in the repository already."""
    from awsprac import image as images

    images.release(_app(env), folder, platform, allow_dirty, record)


@image.command("login")
@ENV_OPTION
@global_options
def image_login(env: str) -> None:
    """Log docker in to the env's registry (an ECR token, given on stdin; valid 12 hours)."""
    from awsprac import image as images

    images.login_command(_app(env))


@image.command("build")
@ENV_OPTION
@DOCKERFILE_DIR
@ALLOW_DIRTY
@PLATFORM
@global_options
def image_build(env: str, folder: Path, allow_dirty: bool, platform: str) -> None:
    """docker build --platform PLATFORM -t URI:<commit> DIR."""
    from awsprac import image as images

    images.build_command(_app(env), folder, platform, allow_dirty)


@image.command("push")
@ENV_OPTION
@DOCKERFILE_DIR
@ALLOW_DIRTY
@RECORD_TAG
@global_options
def image_push(env: str, folder: Path, allow_dirty: bool, record: bool) -> None:
    """docker push URI:<commit> (after `image login` and `image build`), unless the tag is there already."""
    from awsprac import image as images

    images.push_command(_app(env), folder, allow_dirty, record)


@image.command("uri")
@ENV_OPTION
@global_options
def image_uri(env: str) -> None:
    """Print URI:tag of the image recorded in SSM (for deploy scripts)."""
    from awsprac import image as images

    images.uri_command(_app(env))


@cli.command()
@ENV_OPTION
@global_options
def unlock(env: str) -> None:
    """Remove the env's run lock, left by a run that was killed on another machine.

    Runs on this machine that died are noticed and their lock taken over by themselves.
    """
    from awsprac import commands

    commands.unlock(_app(env))


@cli.command()
@ENV_OPTION
@global_options
def stop(env: str) -> None:
    """Park the env for cost: stop the DB, then the NAT instance (waits until both are stopped).

    Already stopped is fine; a busy DB (backing-up, modifying) is waited on. Prints when AWS starts the
    DB again by itself (7 days later) and when the weekly schedule next starts and stops it.
    """
    from awsprac import operate

    operate.command(_app(env), starting=False)


@cli.command()
@ENV_OPTION
@global_options
def start(env: str) -> None:
    """Start the NAT instance, then the DB (waits until both are up). Already running is fine."""
    from awsprac import operate

    operate.command(_app(env), starting=True)


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
    from awsprac import cost as costs

    costs.command(_app(env), as_json, nat_gb)


@cli.group()
def db() -> None:
    """Reach the private database, and its credentials (kept in Secrets Manager, never printed).

    \b
      awsprac db tunnel --env stg            127.0.0.1:15432 -> the DB, through the NAT instance (Ctrl-C closes)
      awsprac db psql --env stg [--app]      psql through a tunnel, as the master (or the app user)
      awsprac db create-app-user --env stg   the app's own login role; rds-main-ENV then holds it
      awsprac db reset-password --env stg    a new master password, stored first
    """


@db.command("tunnel")
@ENV_OPTION
@click.option("--local-port", default=15432, show_default=True, type=click.IntRange(1, 65535), metavar="PORT", help="Port on 127.0.0.1.")
@global_options
def db_tunnel(env: str, local_port: int) -> None:
    """Session Manager port forwarding from 127.0.0.1:PORT to the DB endpoint through the NAT instance, until Ctrl-C.

    Needs the session-manager-plugin and `database.tunnel = true` (the DB security group then lets the
    NAT instance in). No password is shown: `awsprac db psql` connects with the stored one.
    """
    from awsprac import dbtunnel

    dbtunnel.tunnel_command(_app(env), local_port)


@db.command("psql")
@ENV_OPTION
@click.option("--app", "as_app", is_flag=True, help="Connect as the app user (`db create-app-user`), not the master.")
@global_options
def db_psql(env: str, as_app: bool) -> None:
    """psql through a tunnel, as the master user (or --app: the app user). The password goes to psql
    through its environment (PGPASSWORD), never on a command line. Exits with psql's status."""
    from awsprac import dbtunnel

    code = dbtunnel.psql_command(_app(env), as_app)
    if code:
        sys.exit(code)


@db.command("create-app-user")
@ENV_OPTION
@click.option("--through", default=None, metavar="HOST:PORT", help="Connect there (an open tunnel) instead of opening a tunnel.")
@click.option("--rotate", is_flag=True, help="Give the app user a new password (stored first, then set).")
@global_options
def db_create_app_user(env: str, through: str | None, rotate: bool) -> None:
    """The app's own login role (database.app_username, default aws_practice) with the guide's grants:
    CONNECT on the database, USAGE on schema public, all on its tables, USAGE on its sequences, and the
    same on what the master creates later; no SUPERUSER, CREATEROLE, CREATEDB.

    \b
    Its password is generated by Secrets Manager and stored in rds-main-ENV (the app reads it) before the
    role gets it; the master credentials move to rds-master-ENV, written first. Safe to run again.
    """
    from awsprac import dbappuser

    address = dbappuser.parse_through(through) if through else None
    dbappuser.command(_app(env), address, rotate)


@db.command("reset-password")
@ENV_OPTION
@global_options
def reset_password(env: str) -> None:
    """Set a new master password on the DB instance and store it in its secret.

    The fix when the instance exists but its secret `rds-main-ENV` is gone or holds no password.
    The password is generated by Secrets Manager, stored first, then set; it is never shown.
    """
    from awsprac import dbadmin

    dbadmin.reset_password(_app(env))


@cli.group()
def nat() -> None:
    """The NAT instance: bake its AMI so other envs (prd) launch from it; verify it forwards."""


@nat.command("bake-ami")
@ENV_OPTION
@click.option("--share-with", default="", metavar="ACCOUNT", help="Also let this AWS account (the prd account) launch it.")
@click.option("--no-reboot", is_flag=True, help="Do not reboot the instance first (no egress gap; the image may miss unwritten disk data).")
@global_options
def bake_ami(env: str, share_with: str, no_reboot: bool) -> None:
    """Bake the AMI {project}-nat-instance from the env's NAT instance (8 GiB gp3; reused if it exists).

    Reboots the instance unless --no-reboot (asks first). Then, in envs/prd.toml under [nat]:
    ami = "{project}-nat-instance" and ami_owner = this account.
    """
    from awsprac import config, nat_ami

    if share_with and not config.ACCOUNT.match(share_with):
        raise click.BadParameter(f"{share_with!r} must be a 12-digit AWS account id", param_hint="--share-with")
    nat_ami.bake(_app(env), share_with, no_reboot)


@cli.group()
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
    from awsprac import terraform

    terraform.export_command(_app(env), out, force, as_json)


@nat.command("verify")
@ENV_OPTION
@global_options
def nat_verify(env: str) -> None:
    """Prove the NAT instance forwards, from inside (SSM Run Command): IP forwarding, the MASQUERADE rule,
    iptables enabled at boot, and outbound HTTPS. Exit 1 when a check fails. Changes nothing.
    """
    from awsprac import natverify

    natverify.run(_app(env))


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
    from awsprac import doctor as doctoring

    doctoring.run(_app(env), as_json)


@cli.command()
@click.option("--port", default=0, show_default="a free port", help="Port on 127.0.0.1.")
def sandbox(port: int) -> None:
    """Keep a local AWS emulation running in the foreground, for other terminals to use.

    It prints the AWS_ENDPOINT_URL to export; awsprac (and the AWS CLI) then talk to it.
    """
    from awsprac import commands

    commands.sandbox(port)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line and an exit code for every known failure; no traceback unless --debug."""
    from awsprac.errors import AwspracError

    settings = None
    try:
        with cli.make_context("awsprac", list(sys.argv[1:] if argv is None else argv)) as ctx:
            settings = ctx.find_object(Settings)
            cli.invoke(ctx)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted, nothing changed", 1)
    except click.ClickException as exc:
        _fail(_click_message(exc), exc.exit_code)
    except AwspracError as exc:
        if settings is not None and settings.debug:
            raise
        if str(exc):
            _fail(str(exc), exc.exit_code)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted: run the same command again to finish (every step is safe to repeat)", 130)
    except Exception as exc:  # a bug: say so in one line, full traceback only on request
        if settings is not None and settings.debug:
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (run again with --debug for a traceback, and please report it)", 1)


def _click_message(exc: click.ClickException) -> str:
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        message += f" (see `{ctx.command_path} --help`)"
    return message


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
