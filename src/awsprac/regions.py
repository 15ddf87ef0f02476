"""Which regions exist, from the SDK's own endpoint data (no request), and default zones for a new env file."""

from __future__ import annotations

from awsprac.errors import UsageError

# AZ names whose `b` is missing or closed to new accounts; everywhere else the first two letters exist.
FIRST_TWO_ZONES = {"ap-northeast-1": ("a", "c"), "us-west-1": ("b", "c")}


def known(region: str) -> bool:
    import botocore.session

    session = botocore.session.get_session()
    return any(region in session.get_available_regions("ec2", partition_name=p) for p in session.get_available_partitions())


def check(region: str, where: str) -> None:
    """`where` names what gave the region (a flag, a file's key): exit 2 when AWS has no such region."""
    if not known(region):
        raise UsageError(f"{where}: unknown region {region!r}: AWS has no region by that name (like ap-northeast-1, us-east-1)")


def default_zones(region: str) -> tuple[str, str]:
    return tuple(f"{region}{letter}" for letter in FIRST_TWO_ZONES.get(region, ("a", "b")))  # type: ignore[return-value]
