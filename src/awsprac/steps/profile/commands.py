"""`awsprac profile ...`: the CLI user's access key in its named profile."""

from __future__ import annotations

from pathlib import Path

import click

from awsprac.engine.options import ENV_OPTION, Group, app_for, global_options


@click.group("profile", cls=Group)
@global_options
def group() -> None:
    """The CLI user's access key in the named profile aws-practice-terraform-ENV (docs/reference.md section 1).

    \b
      awsprac profile import --env stg --csv FILE [--direnv]   the key the IAM console downloaded
      awsprac profile create-user --env stg                   or: make user and key with admin credentials
      awsprac profile check --env stg                         profile, identity, account, region
    """


@group.command("import", short_help="Put the key from the console's access-key CSV into the profile.")
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
    from awsprac.steps.profile import keys

    keys.import_csv(app_for(env), csv_path, direnv, force)


@group.command("create-user", short_help="Create the IAM user and its key with admin credentials, into the profile.")
@ENV_OPTION
@click.option("--force", is_flag=True, help="Replace a different key already in the profile (a backup is kept).")
@global_options
def profile_create_user(env: str, force: bool) -> None:
    """With administrator credentials (--profile): the IAM user aws-practice-terraform-ENV, no console access,
    AdministratorAccess, and an access key written straight into the profile (no CSV on disk).

    Safe to run again: an existing user and a key already in the profile are kept.
    """
    from awsprac.steps.profile import keys

    keys.create_user(app_for(env), force)


@group.command("check", short_help="Check the profile: identity, account pin, region.")
@ENV_OPTION
@global_options
def profile_check(env: str) -> None:
    """The env's profile (or --profile): it resolves, whose it is, the account pin, the region."""
    from awsprac.steps.profile import keys

    keys.check(app_for(env))
