"""`awsprac nat ...`: bake the NAT instance's AMI, verify it forwards."""

from __future__ import annotations

import click

from awsprac.engine.options import ENV_OPTION, Group, app_for, global_options


@click.group("nat", cls=Group)
def group() -> None:
    """The NAT instance: bake its AMI so other envs (prd) launch from it; verify it forwards."""


@group.command("bake-ami")
@ENV_OPTION
@click.option("--share-with", default="", metavar="ACCOUNT", help="Also let this AWS account (the prd account) launch it.")
@click.option("--no-reboot", is_flag=True, help="Do not reboot the instance first (no egress gap; the image may miss unwritten disk data).")
@global_options
def bake_ami(env: str, share_with: str, no_reboot: bool) -> None:
    """Bake the AMI {project}-nat-instance from the env's NAT instance (8 GiB gp3; reused if it exists).

    Reboots the instance unless --no-reboot (asks first). Then, in envs/prd.toml under [nat]:
    ami = "{project}-nat-instance" and ami_owner = this account.
    """
    from awsprac import config
    from awsprac.steps.nat import ami

    if share_with and not config.ACCOUNT.match(share_with):
        raise click.BadParameter(f"{share_with!r} must be a 12-digit AWS account id", param_hint="--share-with")
    ami.bake(app_for(env), share_with, no_reboot)


@group.command("verify")
@ENV_OPTION
@global_options
def nat_verify(env: str) -> None:
    """Prove the NAT instance forwards, from inside (SSM Run Command): IP forwarding, the MASQUERADE rule,
    iptables enabled at boot, and outbound HTTPS. Exit 1 when a check fails. Changes nothing.
    """
    from awsprac.steps.nat import verify

    verify.run(app_for(env))
