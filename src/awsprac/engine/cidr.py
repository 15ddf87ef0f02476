"""Subnet CIDRs are computed from the VPC block, never typed (docs/reference.md section 2)."""

from __future__ import annotations

import ipaddress
import math

# AWS's smallest subnet is a /28 (16 addresses, 5 of them reserved).
SMALLEST_SUBNET_PREFIX = 28


class SubnetSplitError(ValueError):
    pass


def split(vpc_cidr: str, count: int) -> list[str]:
    """Split the VPC block into 2^ceil(log2(count)) equal blocks; return the first `count`, in order."""
    if count < 1:
        raise SubnetSplitError("needs at least one subnet")
    vpc = ipaddress.IPv4Network(vpc_cidr)
    extra_bits = math.ceil(math.log2(count)) if count > 1 else 0
    prefix = vpc.prefixlen + extra_bits
    if prefix > SMALLEST_SUBNET_PREFIX:
        raise SubnetSplitError(
            f"too small for {count} subnets: each would be a /{prefix}, and AWS's smallest subnet is a /{SMALLEST_SUBNET_PREFIX}"
        )
    return [str(block) for block in list(vpc.subnets(prefixlen_diff=extra_bits))[:count]]
