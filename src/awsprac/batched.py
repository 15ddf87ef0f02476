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


def env_names(cfg, kind: str) -> list[str]:
    """Every name of this kind the env file describes, whichever step wants it."""
    from awsprac import steps

    return sorted({spec.name for step in steps.all_steps() for spec in step.desired(cfg) if spec.kind == kind})


def security_groups(ctx, vpc_id: str | None, names: list[str]) -> dict:
    """{name: Found} of the security groups asked for, in the VPC. The first asker reads every group
    the env file describes at once: by Name tag, and by group name for those without the tag (made in
    the console by following the guide). A name outside that batch (a group another mode left) is
    read on its own."""
    from awsprac import lookup
    from awsprac.aws import translate

    kind = lookup.SECURITY_GROUP
    if not vpc_id:
        return {}

    def read(batch: list[str]) -> dict:
        ec2 = ctx.aws.ec2
        with translate("looking up", f"the security groups {', '.join(batch)}"):
            found = lookup.find_by_names(ec2, kind, batch, vpc_id)
            untagged = [n for n in batch if n not in found]
            if untagged:
                items = ec2.describe_security_groups(Filters=[
                    {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": untagged},
                ])["SecurityGroups"]
                for item in items:
                    found[item["GroupName"]] = dataclasses.replace(lookup.to_found(kind, item), name=item["GroupName"])
        return found

    known = ctx.reads.once(("security groups", vpc_id), lambda: _Batch())
    with known.lock:
        missing = [n for n in names if n not in known.names]
        if missing:
            batch = sorted(set(missing) | (set() if known.names else set(env_names(ctx.cfg, kind.kind))))
            known.found.update(read(batch))
            known.names.update(batch)
        return {n: known.found[n] for n in names if n in known.found}


@dataclasses.dataclass
class _Batch:
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    names: set = dataclasses.field(default_factory=set)
    found: dict = dataclasses.field(default_factory=dict)


def iam_roles(ctx) -> dict[str, dict]:
    """{role name: RoleDetail}: every role of the account with its trust policy, inline and attached
    policies, tags and instance profiles, in one paginated read (GetAccountAuthorizationDetails) instead
    of four reads per role."""
    from awsprac.aws import translate

    def load() -> dict[str, dict]:
        iam = ctx.aws.client("iam")
        with translate("looking up", "the account's IAM roles"):
            pages = iam.get_paginator("get_account_authorization_details").paginate(Filter=["Role"], PaginationConfig={"PageSize": 1000})
            return {role["RoleName"]: role for page in pages for role in page.get("RoleDetailList", [])}

    return ctx.reads.once("iam roles", load)
