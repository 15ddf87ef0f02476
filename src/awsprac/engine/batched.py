"""Reads more than one step needs, made once per look at the env and shared between the steps.

Steps `nat` and `rds` both look for a security group, steps `nat-iam` and `scheduler` both for an
IAM role: one batched read serves them all instead of one read per step (a converged `up` is
bounded by its reads). A `Reads` lives for one look: `plan` makes one for every step, and the
runner gives the look after applying a step a fresh one, so what was just written is read again,
not remembered.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable


class Reads:
    """One answer per key for the life of this object; concurrent askers wait for the first one's read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[Any, _Slot] = {}

    def once(self, key: Any, load: Callable[[], Any]) -> Any:
        with self._lock:
            slot = self._slots.setdefault(key, _Slot())
        with slot.lock:
            if not slot.done:  # a failed read is not remembered: the next asker tries again
                slot.value = load()
                slot.done = True
            return slot.value


@dataclasses.dataclass
class _Slot:
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    done: bool = False
    value: Any = None


def security_groups(ctx, vpc_id: str | None, names: list[str]) -> dict:
    """{name: Found} of the security groups asked for, in the VPC. One read of all the VPC's groups
    (a handful) serves every step: a group is matched by its Name tag, else by its group name (made
    in the console by following the guide, it often has no Name tag)."""
    from awsprac.engine import lookup
    from awsprac.engine.aws import translate

    kind = lookup.SECURITY_GROUP
    if not vpc_id:
        return {}

    def load() -> list:
        with translate("looking up", f"the security groups of {vpc_id}"):
            return [lookup.to_found(kind, item) for item in lookup.describe(ctx.aws.ec2, kind, [{"Name": "vpc-id", "Values": [vpc_id]}])]

    groups = ctx.reads.once(("security groups", vpc_id), load)
    found = {}
    for name in names:
        tagged = [g for g in groups if g.name == name]
        if tagged:
            found[name] = lookup.single(kind, name, tagged)
            continue
        named = [g for g in groups if g.raw.get("GroupName") == name]
        if named:
            found[name] = dataclasses.replace(named[0], name=name)
    return found


def iam_role(ctx, name: str) -> dict | None:
    """One role as GetAccountAuthorizationDetails describes it (RoleDetail), or None. A role that read
    does not list is asked for by name: IAM is eventually consistent, and a role made moments ago (the
    look that checks a run's work) may not be listed yet."""
    from awsprac.engine.aws import is_not_found, translate
    from awsprac.engine.dag import concurrently

    role = iam_roles(ctx).get(name)
    iam = ctx.aws.client("iam")
    if role is not None:
        if "Tags" not in role:  # a listing that leaves the tags out: whose the role is, read by name
            with translate("looking up", f"IAM role {name}"):
                role = {**role, "Tags": iam.get_role(RoleName=name)["Role"].get("Tags", [])}
        return role
    with translate("looking up", f"IAM role {name}"):
        try:
            raw = iam.get_role(RoleName=name)["Role"]
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

        def each(operation: str, key: str) -> list:
            return [item for page in iam.get_paginator(operation).paginate(RoleName=name) for item in page[key]]

        inline, attached, profiles = concurrently(
            lambda: [{"PolicyName": n, "PolicyDocument": iam.get_role_policy(RoleName=name, PolicyName=n)["PolicyDocument"]}
                     for n in each("list_role_policies", "PolicyNames")],
            lambda: each("list_attached_role_policies", "AttachedPolicies"),
            lambda: each("list_instance_profiles_for_role", "InstanceProfiles"),
        )
    return {**raw, "RolePolicyList": inline, "AttachedManagedPolicies": attached, "InstanceProfileList": profiles}


def iam_roles(ctx) -> dict[str, dict]:
    """{role name: RoleDetail}: every role of the account with its trust policy, inline and attached
    policies, tags and instance profiles, in one paginated read (GetAccountAuthorizationDetails) instead
    of four reads per role."""
    return _iam_details(ctx)["roles"]


def iam_policies(ctx) -> dict[str, dict]:
    """{policy name: ManagedPolicyDetail} of the account's customer-managed policies (with every version's
    document), from the same read as the roles: asked for only when the app tier is on."""
    return _iam_details(ctx)["policies"]


def _iam_details(ctx) -> dict:
    from awsprac.engine.aws import translate

    kinds = ["Role"] + (["LocalManagedPolicy"] if ctx.cfg.app.enabled else [])

    def load() -> dict:
        iam = ctx.aws.client("iam")
        with translate("looking up", "the account's IAM roles"):
            pages = list(iam.get_paginator("get_account_authorization_details").paginate(Filter=kinds, PaginationConfig={"PageSize": 1000}))
        return {
            "roles": {role["RoleName"]: role for page in pages for role in page.get("RoleDetailList", [])},
            # moto leaves PolicyName out: the ARN ends with it (the path before it)
            "policies": {p.get("PolicyName") or p["Arn"].rsplit("/", 1)[-1]: p for page in pages for p in page.get("Policies", [])},
        }

    # By what it lists: a look at a tier switched off but still standing (step app-off) asks for the policies too.
    return ctx.reads.once(("iam roles", *kinds), load)
