"""Step `db-ingress`: the DB security group's inbound rules from other security groups, PostgreSQL's
port only, each one a `Source`: the NAT instance's group while `database.tunnel` is on and the NAT is
an instance (`awsprac db tunnel`, the guide's bastion rule), and the API's tasks' (backend) group while
`[app] enabled` (the README's "Run the API"). One list, one home for every rule of the DB group.

A step of its own, after the steps that make the groups (REQUIRES): the rule is added once both groups
exist, and neither the DB instance's create nor the NAT instance's waits for the other. On destroy it
goes first (a rule naming the NAT's group keeps that group from being deleted).

A rule on the DB port from a source's group is awsprac's: `up` adds it while its setting asks for it,
and removes it once it does not (a NAT mode switch, the setting turned off). A source whose whole part
of the env goes when its setting is off (Source.removed_with: the app tier, step app-off) loses its rule
in that step's order instead: the API's rule is revoked once the service that uses it is gone, not
before. Any other inbound rule is step rds's "added by hand" (reported, and removed only by `up
--prune`, which keeps these).
"""

from __future__ import annotations

from dataclasses import dataclass

from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.errors import AwspracError
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import applying, gone_is_fine

NAME = "db-ingress"
REQUIRES = ("vpc", "nat", "app-network", "rds")  # the steps that make the source groups and the DB's own group
OBSERVES_AFTER = ("vpc",)  # observe() needs only the VPC's id
INDEPENDENT_CHANGES = True

RULE = "security group rule"


@dataclass(frozen=True)
class Source:
    group: str  # the security group let in, by name
    description: str  # the rule's description
    setting: str  # what asks for it
    # The step that takes the source's part of the env down once the setting is off (the group being
    # this env's): it revokes this rule too, in its own order (the rule goes only when nothing uses it).
    removed_with: str = ""


@dataclass(frozen=True)
class RuleSpec:
    name: str  # "<DB group> from <source group>"
    source: Source
    kind: str = RULE


def all_sources(cfg: EnvConfig) -> list[Source]:
    """Every source awsprac manages a rule for, wanted or not."""
    from awsprac.steps import nat
    from awsprac.steps.app.common import names as app_names

    return [Source(nat.names(cfg).sg, "db tunnel", "database.tunnel"),
            Source(app_names(cfg).backend, "the API's tasks", "app.enabled", removed_with="app-off")]


def _on(cfg: EnvConfig) -> dict[str, bool]:
    return {"database.tunnel": bool(cfg.database.tunnel) and cfg.nat.mode == "instance", "app.enabled": bool(cfg.app.enabled)}


def wanted(cfg: EnvConfig) -> list[Source]:
    on = _on(cfg)
    return [s for s in all_sources(cfg) if on.get(s.setting)]


def _taken(ctx: Context, have: Observed, source: Source) -> bool:
    """The rule is left to the step named by source.removed_with: its setting is off and the source's
    group (which that step deletes) is this env's."""
    group = have.peers.get(source.group)
    return bool(source.removed_with) and not _on(ctx.cfg).get(source.setting) and group is not None and ctx.owns(group)


def db_group_name(cfg: EnvConfig) -> str:
    from awsprac.steps import rds

    return rds.desired(cfg)[0].name


def rule_name(cfg: EnvConfig, source: str) -> str:
    return f"{db_group_name(cfg)} from {source}"


def desired(cfg: EnvConfig) -> list[RuleSpec]:
    return [RuleSpec(rule_name(cfg, s.group), s) for s in wanted(cfg)]


def peers(ctx: Context, vpc_id: str | None) -> dict:
    """{group name: Found} of the sources' groups that exist: the same one read as the DB's own group."""
    from awsprac.engine import batched

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


def unmanaged(cfg: EnvConfig, inbound: list[dict], peer_found: dict) -> list[dict]:
    """The inbound permissions this step does not manage (step rds reports them, --prune removes them)."""
    return split(inbound, cfg.database.port, {f.id for f in peer_found.values()})[1]


def text(cfg: EnvConfig, source: Source) -> str:
    return f"tcp {cfg.database.port} from {source.group} ({source.description})"


# --- looking things up (read-only) ---


@dataclass(frozen=True)
class Observed:
    db_sg: Found | None
    peers: dict  # {name: Found}: the sources' groups that exist
    rules: dict  # {source group name: Found}: the managed rules there (id: the source group's)

    @property
    def ready(self) -> bool:
        return self.db_sg is not None

    def resources(self) -> list[Found]:
        return list(self.rules.values())

    def outputs(self) -> dict:
        return {}


def observe(ctx: Context) -> Observed:
    from awsprac.engine import batched

    cfg = ctx.cfg
    vpc_id = ctx.observed["vpc"].id
    name = db_group_name(cfg)
    # One read of the VPC's groups, shared with steps nat and rds.
    groups = batched.security_groups(ctx, vpc_id, [name, *(s.group for s in all_sources(cfg))])
    db_sg = groups.pop(name, None)
    rules = {}
    if db_sg is not None:
        ids = {f.id: n for n, f in groups.items()}
        managed, _ = split(db_sg.raw.get("IpPermissions", []), cfg.database.port, set(ids))
        # A rule is the DB group's: its ownership is the group's.
        rules = {ids[gid]: Found(RULE, rule_name(cfg, ids[gid]), gid, "exists", db_sg.tags, {"Description": description})
                 for gid, description in managed.items()}
    return Observed(db_sg, groups, rules)


# --- comparing (pure, given what was observed) ---


def diff(ctx: Context, want: list[RuleSpec], have: Observed) -> list[Change]:
    changes = []
    for spec in want:
        if spec.source.group not in have.rules:
            changes.append(Change(NAME, Action.CREATE, spec.kind, spec.name, fields=(FieldDiff("inbound", None, text(ctx.cfg, spec.source)),), spec=spec))
    wanted_groups = {spec.source.group for spec in want}
    sources = {s.group: s for s in all_sources(ctx.cfg)}
    for group, rule in sorted(have.rules.items()):
        source = sources[group]
        if group not in wanted_groups and not _taken(ctx, have, source):
            # The name says which group; the plan's line stays short enough for one row.
            changes.append(_revocation(ctx, have, group, NAME, f"tcp {ctx.cfg.database.port} ({source.description}): {source.setting} does not ask for it"))
    return changes


def _revocation(ctx: Context, have: Observed, group: str, step: str, note: str) -> Change:
    rule = have.rules[group]
    return Change(step, Action.DELETE, rule.kind, rule.name, have.db_sg.id, spec=(rule.id, rule.raw["Description"]), note=note)


def removed_with(ctx: Context, have: Observed, step: str) -> list[Change]:
    """The revocations left to `step` (a Source's removed_with), as that step's changes; apply() carries them out."""
    return [_revocation(ctx, have, s.group, step, f"tcp {ctx.cfg.database.port} from {s.group} ({s.description})")
            for s in all_sources(ctx.cfg) if s.removed_with == step and s.group in have.rules and _taken(ctx, have, s)]


# --- carrying it out ---


def apply(ctx: Context, change: Change) -> None:
    with applying(change):
        if change.action is Action.DELETE:
            _revoke(ctx, change.id, change.spec)
            return
        have: Observed = ctx.observed[NAME]
        group = change.spec.source.group
        if have.db_sg is None or group not in have.peers:
            missing = db_group_name(ctx.cfg) if have.db_sg is None else group
            raise AwspracError(f"security group {missing} does not exist, so the DB cannot let {group} in "
                               f"({change.spec.source.setting}): run `awsprac up --env {ctx.cfg.env}`")
        from awsprac.engine.aws import error_code

        permission = _permission(ctx.cfg, have.peers[group].id, change.spec.source.description)
        try:
            ctx.aws.ec2.authorize_security_group_ingress(GroupId=have.db_sg.id, IpPermissions=[permission])
        except Exception as exc:
            if error_code(exc) != "InvalidPermission.Duplicate":  # a retried authorize that had worked
                raise


# --- tearing down ---


def teardown(ctx: Context, have: Observed) -> list[Change]:
    """Every managed rule there, first of all (a rule naming the NAT's group keeps that group from being
    deleted), unless the DB and its group stay (step rds says why). A rule left to the step that removes
    its source (Source.removed_with) is that step's."""
    from awsprac.steps import rds

    if have.db_sg is None or not ctx.owns(have.db_sg) or rds.db_stays(ctx):
        return []
    sources = {s.group: s for s in all_sources(ctx.cfg)}
    return [_revocation(ctx, have, group, NAME, f"tcp {ctx.cfg.database.port} from {group}")
            for group in sorted(have.rules) if not _taken(ctx, have, sources[group])]


def _revoke(ctx: Context, group_id: str, rule: tuple[str, str]) -> None:
    """`rule`: (source group id, description). As described: moto matches the description on revoke (AWS does not need it)."""
    gone_is_fine(ctx.aws.ec2.revoke_security_group_ingress, GroupId=group_id, IpPermissions=[_permission(ctx.cfg, *rule)])


def _permission(cfg: EnvConfig, source_id: str, description: str = "") -> dict:
    pair = {"GroupId": source_id, **({"Description": description} if description else {})}
    return {"IpProtocol": "tcp", "FromPort": cfg.database.port, "ToPort": cfg.database.port, "UserIdGroupPairs": [pair]}
