"""Step `public-routes`: the public route table `{project}-rtb-public-{env}` (docs/reference.md section 4), with its
0.0.0.0/0 route to the internet gateway and its association with the public subnets.

Its own step, made before step `nat`: the NAT instance's user data installs packages at first boot and
runs only once, so the public subnet must already reach the internet when the instance is launched.
The code is step routes' (the family's __init__), for the public tier; its Terraform is in the family's export.py.
"""

from __future__ import annotations

from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.plan import Change
from awsprac.steps import routes  # the family's __init__: step routes

NAME = "public-routes"
REQUIRES = ("subnets", "igw")


def desired(cfg: EnvConfig) -> list[routes.RouteTableSpec]:
    return routes.specs(cfg, "public")


def observe(ctx: Context) -> routes.Observed:
    return routes.observe_tables(ctx, desired(ctx.cfg))


def diff(ctx: Context, want: list, have: routes.Observed) -> list[Change]:
    return routes.diff(ctx, want, have, NAME)


def apply(ctx: Context, change: Change) -> None:
    routes.apply(ctx, change)


def teardown(ctx: Context, have: routes.Observed) -> list[Change]:
    return routes.teardown(ctx, have, desired(ctx.cfg), NAME)
