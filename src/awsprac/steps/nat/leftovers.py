"""Step `nat-leftovers`: what another NAT mode left (and this env owns), removed only once the private
route points at the new way out.

A mode switch (instance, gateway, none, in any direction) runs: step `nat` builds the new mode's
resources, step `routes` moves the private subnets' default route to them (or removes it, for none),
then this step deletes the old mode's instance, gateway, addresses, group and IAM role. Deleting them
first would leave the route a blackhole for as long as the switch takes, and for good if a delete failed.
What is left is found by step `nat`'s look at the env (one read for both); looked at again after a
write, it is read afresh.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from awsprac.engine.context import Context
from awsprac.engine.plan import Change, RemovesOnly
from awsprac.steps import nat

NAME = "nat-leftovers"
REQUIRES = ("routes",)
OBSERVES_AFTER = ("nat",)


def desired(cfg) -> list:
    return []  # nothing of its own: it only removes


@dataclass(frozen=True)
class Observed(RemovesOnly):
    nat: nat.Observed
    base: nat.Observed | None = None  # step nat's look this one started from


def observe(ctx: Context) -> Observed:
    base = ctx.observed[nat.NAME]
    earlier = ctx.observed.get(NAME)
    if earlier is not None and earlier.base is base:
        # Step nat has not looked again since this step last did: read afresh (after this step's
        # deletes, or after step routes moved the route).
        return Observed(nat.observe(ctx), base)
    return Observed(base, base)


def diff(ctx: Context, want: list, have: Observed) -> list[Change]:
    return [dataclasses.replace(c, step=NAME) for c in nat.leftover_changes(ctx, nat.desired(ctx.cfg), have.nat)]


def apply(ctx: Context, change: Change) -> None:
    nat.apply(ctx, change)


def teardown(ctx: Context, have: Observed) -> list[Change]:
    return []  # destroy: step nat deletes whatever NAT there is
