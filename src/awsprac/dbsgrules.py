"""The DB security group's inbound rules: PostgreSQL from the security groups allowed to reach the
database (SPEC section 5), each one a `Source`. Today the NAT instance's group when `database.tunnel`
is on (`awsprac db tunnel`, the guide's bastion rule); the app tier's backend group is one more Source.

A rule on the DB port from a source's group is awsprac's: `up` adds it while its setting asks for it,
and removes it once it does not (a NAT mode switch, the setting turned off). Any other inbound rule is
"added by hand" (reported, and removed only by `up --prune`).
"""

from __future__ import annotations

from dataclasses import dataclass

from awsprac.context import Context
from awsprac.plan import FieldDiff

SOURCE_WAIT = 300.0  # seconds: step nat makes its group at the same time as step rds makes the DB's


@dataclass(frozen=True)
class Source:
    group: str  # the security group let in, by name
    description: str  # the rule's description
    setting: str  # what asks for it
    step: str  # the step that makes the group


def all_sources(cfg) -> list[Source]:
    """Every source awsprac manages a rule for, wanted or not."""
    from awsprac.steps import nat

    return [Source(nat.names(cfg).sg, "db tunnel", "database.tunnel", "nat")]


def wanted(cfg) -> list[Source]:
    on = {"database.tunnel": bool(cfg.database.tunnel) and cfg.nat.mode == "instance"}
    return [s for s in all_sources(cfg) if on.get(s.setting)]


def peers(ctx: Context, vpc_id: str | None) -> dict:
    """{group name: Found} of the sources' groups that exist: the same one read as the DB's own group."""
    from awsprac import batched

    return batched.security_groups(ctx, vpc_id, [s.group for s in all_sources(ctx.cfg)])


def _is_db_port(permission: dict, port: int) -> bool:
    return permission.get("IpProtocol") == "tcp" and permission.get("FromPort") == port and permission.get("ToPort") == port


def split(inbound: list[dict], port: int, source_ids: set[str]) -> tuple[dict[str, str], list[dict]]:
    """({id: rule description} of the source groups let in on the port, every other inbound permission)."""
    managed: dict[str, str] = {}
    others: list[dict] = []
    for permission in inbound:
        pairs = permission.get("UserIdGroupPairs", [])
        mine = [p for p in pairs if p.get("GroupId") in source_ids] if _is_db_port(permission, port) else []
        managed.update({p["GroupId"]: p.get("Description", "") for p in mine})
        rest = [p for p in pairs if p not in mine]
        if rest or any(permission.get(k) for k in ("IpRanges", "Ipv6Ranges", "PrefixListIds")):
            others.append({**permission, "UserIdGroupPairs": rest})
    return managed, others


@dataclass(frozen=True)
class Gaps:
    add: tuple[Source, ...]  # wanted, not there (the group may not exist yet)
    remove: tuple[tuple[str, str, str], ...]  # (group id, group name, description) there, not wanted
    others: tuple[dict, ...]  # inbound permissions awsprac does not manage

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


def coming(ctx: Context) -> set[str]:
    """Names of the wanted sources' groups that do not exist yet but a step of this run makes (a step is
    part of the run when it was observed). A group no step of the run makes is let in by the `up` that
    makes it: `awsprac step rds` alone does not wait for step nat's group."""
    return {s.group for s in wanted(ctx.cfg) if s.step in ctx.observed}


def gaps(cfg, inbound: list[dict], peer_found: dict, pending: set[str] = frozenset()) -> Gaps:
    """`pending`: groups not there yet that this run makes (coming()); other missing groups are no gap."""
    ids = {found.id: name for name, found in peer_found.items()}
    managed, others = split(inbound, cfg.database.port, set(ids))
    want = [s for s in wanted(cfg) if s.group in peer_found or s.group in pending]
    add = tuple(s for s in want if s.group not in peer_found or peer_found[s.group].id not in managed)
    wanted_names = {s.group for s in want}
    remove = tuple((gid, ids[gid], managed[gid]) for gid in sorted(managed) if ids[gid] not in wanted_names)
    return Gaps(add, remove, tuple(others))


def text(cfg, sources) -> str:
    return "; ".join(f"tcp {cfg.database.port} from {s.group} ({s.description})" for s in sources) or "(none)"


def field(cfg, inbound: list[dict] | None, peer_found: dict, pending: set[str]) -> FieldDiff | None:
    """The plan's line for the managed rules: None when they are as wanted."""
    want = [s for s in wanted(cfg) if s.group in peer_found or s.group in pending]
    if inbound is None:
        return FieldDiff("inbound", None, text(cfg, want))
    g = gaps(cfg, inbound, peer_found, pending)
    if not g:
        return None
    ids = {f.id for f in peer_found.values()}
    managed, _ = split(inbound, cfg.database.port, ids)
    have = [s for s in all_sources(cfg) if s.group in peer_found and peer_found[s.group].id in managed]
    return FieldDiff("inbound", text(cfg, have), text(cfg, want))


def reconcile(ctx: Context, group_id: str, inbound: list[dict], vpc_id: str) -> None:
    """Authorize the wanted sources' rules that are missing, revoke the managed ones no longer wanted."""
    from awsprac.aws import error_code

    ec2, cfg = ctx.aws.ec2, ctx.cfg
    found = _peers_now(ctx, vpc_id)
    g = gaps(cfg, inbound, found, coming(ctx))
    for source in g.add:
        source_id = found[source.group].id if source.group in found else _wait_for_group(ctx, source, vpc_id)
        try:
            ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[_permission(cfg, source_id, source.description)])
        except Exception as exc:
            if error_code(exc) != "InvalidPermission.Duplicate":
                raise
    if g.remove:
        from awsprac.reconcile import gone_is_fine

        # As described: moto matches the description on revoke (AWS does not need it).
        permissions = [_permission(cfg, gid, description) for gid, _, description in g.remove]
        gone_is_fine(ec2.revoke_security_group_ingress, GroupId=group_id, IpPermissions=permissions)


def revokes(cfg, inbound: list[dict], peer_found: dict) -> list[tuple[str, str, str]]:
    """(group id, group name, description) of every managed rule there: what a destroy revokes first."""
    ids = {found.id: name for name, found in peer_found.items()}
    managed, _ = split(inbound, cfg.database.port, set(ids))
    return [(gid, ids[gid], managed[gid]) for gid in sorted(managed)]


def revoke(ctx: Context, group_id: str, rule: tuple[str, str]) -> None:
    """`rule`: (source group id, description)."""
    from awsprac.reconcile import gone_is_fine

    gone_is_fine(ctx.aws.ec2.revoke_security_group_ingress, GroupId=group_id, IpPermissions=[_permission(ctx.cfg, *rule)])


def _permission(cfg, source_id: str, description: str = "") -> dict:
    pair = {"GroupId": source_id, **({"Description": description} if description else {})}
    return {"IpProtocol": "tcp", "FromPort": cfg.database.port, "ToPort": cfg.database.port, "UserIdGroupPairs": [pair]}


def _peers_now(ctx: Context, vpc_id: str) -> dict:
    """The sources' groups read now (a run's earlier look is from before this apply)."""
    from awsprac import lookup

    names = [s.group for s in all_sources(ctx.cfg)]
    return lookup.find_by_names(ctx.aws.ec2, lookup.SECURITY_GROUP, names, vpc_id)


def _wait_for_group(ctx: Context, source: Source, vpc_id: str) -> str:
    """A wanted source's group that does not exist yet: another step of this run makes it (step nat
    makes its group at the same time as step rds makes the DB's)."""
    from awsprac import lookup, waiting

    made = ctx.made.get((lookup.SECURITY_GROUP.kind, source.group))
    if made:
        return made
    seen: dict = {}

    from awsprac import runner
    from awsprac.errors import AwspracError

    needed = runner.with_requirements({source.step})

    def check() -> tuple[bool, str]:
        failed = sorted(needed & ctx.failed)
        if failed:  # the group will not come in this run
            raise AwspracError(
                f"security group {source.group} was not made (step {failed[0]} failed), so the DB cannot let it in yet "
                f"({source.setting}): run `awsprac up --env {ctx.cfg.env}` again once that is fixed"
            )
        seen.update(_peers_now(ctx, vpc_id))
        return source.group in seen, "not there yet" if source.group not in seen else "there"

    try:
        waiting.wait_for(ctx.report, f"security group {source.group} ({source.setting})", check, timeout=SOURCE_WAIT, interval=5)
    except waiting.WaitTimeout:
        raise AwspracError(
            f"security group {source.group} does not exist, so the DB cannot let it in ({source.setting}): "
            f"run `awsprac up --env {ctx.cfg.env}` (step nat makes it)"
        ) from None
    return seen[source.group].id
