"""Step `profile`: who awsprac acts as, checked, never changed (docs/reference.md section 1).

Read-only on purpose. The CLI user and its key are made by `awsprac profile create-user` or
`awsprac profile import`, which need administrator credentials or a downloaded CSV: neither fits
an unattended `up`, and `destroy` must never delete the credentials it runs with. By the time any
step runs, the account guard has passed (sts get-caller-identity against the env's pin); this step
records that identity for `outputs` and, when awsprac runs with the env's profile, reports as drift a
region in ~/.aws/config that differs from the env file's (`awsprac profile import` repairs it). It
manages no AWS resource, so it lists none: plan, status and the resource counts are unchanged by it.
"""

from __future__ import annotations

from dataclasses import dataclass

from awsprac.engine.aws import translate
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.plan import Action, Change, FieldDiff

NAME = "profile"
REQUIRES: tuple[str, ...] = ()
KIND = "AWS CLI profile"


@dataclass(frozen=True)
class Observed:
    account: str
    arn: str
    using: str | None  # the profile the clients use; None: environment keys or the default chain
    env_profile_region: str | None  # region of the env's profile in ~/.aws/config, when awsprac runs with it
    env_profile_exists: bool = False

    @property
    def ready(self) -> bool:
        return bool(self.account)

    def resources(self) -> list:
        return []

    def outputs(self) -> dict:
        return {"account_id": self.account, "caller_arn": self.arn, "aws_profile": self.using or "(environment / default chain)"}


def desired(cfg: EnvConfig) -> list:
    return []


def observe(ctx: Context) -> Observed:
    import botocore.session

    who = ctx.identity
    if who is None:  # the App checks the identity before any step; a step run on its own asks here
        with translate("checking", "the caller identity (sts get-caller-identity)"):
            who = ctx.aws.client("sts").get_caller_identity()
    name, region, exists = ctx.cfg.profile_name, None, False
    if ctx.aws.profile == name:
        # Only the env's profile in use is checked: with environment keys (CI, --sandbox) or another
        # profile, what the files say about this one does not describe this run.
        session = botocore.session.Session()
        exists = name in session.available_profiles
        region = session.full_config.get("profiles", {}).get(name, {}).get("region")
    return Observed(who["Account"], who["Arn"], ctx.aws.profile, region, exists)


def diff(ctx: Context, want: list, have: Observed) -> list[Change]:
    cfg = ctx.cfg
    if have.env_profile_exists and have.env_profile_region != cfg.region:
        return [Change(
            NAME, Action.REPORT, KIND, cfg.profile_name, fields=(FieldDiff("region", have.env_profile_region, cfg.region),),
            note=f"awsprac uses {cfg.region} whatever the profile says; the AWS CLI does not: `awsprac profile import --env {cfg.env} --csv FILE` or edit [profile {cfg.profile_name}]",
        )]
    return []


def apply(ctx: Context, change: Change) -> None:
    raise RuntimeError(f"step {NAME} is read-only; it has nothing to apply ({change.describe()})")


def teardown(ctx: Context, have: Observed) -> list[Change]:
    return []  # destroy never removes the credentials it runs with
