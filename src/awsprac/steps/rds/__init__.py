"""Step `rds`: the database's security group, DB subnet group, DB parameter group and the PostgreSQL
instance itself, with every setting of docs/reference.md section 5.

- The engine version is resolved from AWS (the default minor of the configured major) when the instance
  is created, and afterwards compared by major only: automatic minor upgrades are not drift.
- The master password is read from the secret the `secrets` step made first; once the instance has an
  endpoint, `DB_HOST` is written into that secret.
- Drift that RDS can change in place is fixed by `up`: at once, or (`database.apply_immediately = false`,
  prd's default) at the next maintenance window unless `--apply-immediately`; values AWS has queued for
  the window (PendingModifiedValues) count as done. Drift it cannot change (encryption, subnet group,
  AZ, ...) is reported with what it would take.
- Creating and waiting are separate: a create returns at once and the wait polls with a live status
  line for up to DB_WAIT seconds; a wait that runs out leaves the instance alone, and a re-run sees
  it still `creating` and picks up the waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from awsprac.engine import tags, waiting
from awsprac.steps.rds import dbsecret
from awsprac.engine.aws import error_code
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.dag import concurrently
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change
from awsprac.steps.rds.instance import DbSpec, EngineDefault, engine_default, find_db
from awsprac.steps.rds.instance import client as rds_client
from awsprac.engine.reconcile import applying, delete_change, gone_is_fine

NAME = "rds"
REQUIRES = ("vpc", "subnets", "secrets")
# The three groups at once, then the instance that uses them (on destroy: the instance, then the groups at once).
OBSERVES_AFTER = ("vpc",)  # observe() needs the VPC's id; the secret and the instance it shares with step secrets
CHANGES_AFTER = {"DB instance": ("security group", "DB subnet group", "DB parameter group")}

DESCRIPTION = "Managed by Terraform"  # what the guide's console screens leave; docs/reference.md keeps it
GROUP_DELETE_WAIT = 5 * 60  # a subnet/parameter group stays "in use" briefly after its instance is gone
SG_DELETE_WAIT = 20 * 60  # the instance's network interfaces linger for minutes and hold the group


@dataclass(frozen=True)
class SgSpec:
    name: str
    description: str = DESCRIPTION
    kind: str = "security group"


@dataclass(frozen=True)
class SubnetGroupSpec:
    name: str
    subnet_names: tuple[str, ...]
    description: str = DESCRIPTION
    kind: str = "DB subnet group"


@dataclass(frozen=True)
class ParameterGroupSpec:
    name: str
    description: str = DESCRIPTION
    kind: str = "DB parameter group"


@dataclass(frozen=True)
class Observed:
    sg: Found | None
    subnet_group: Found | None
    parameter_group: Found | None
    db: Found | None
    engine: EngineDefault | None = None
    secret: dbsecret.SecretState | None = None  # read fresh: this step writes DB_HOST into it
    peers: dict = field(default_factory=dict)  # {name: Found}: the groups step db-ingress lets in (not 'by hand')
    master: Found | None = None  # rds-master-{env} as this look saw it (`db create-app-user` makes it)

    @property
    def ready(self) -> bool:
        return self.db is not None and self.db.state != "deleting"

    def resources(self) -> list[Found]:
        return [f for f in (self.sg, self.subnet_group, self.parameter_group, self.db) if f is not None]

    def outputs(self) -> dict:
        out: dict = {}
        if self.sg:
            out["db_security_group_id"] = self.sg.id
        if self.db:
            endpoint = self.db.raw.get("Endpoint") or {}
            out.update({"db_instance_id": self.db.id, "db_status": self.db.state})
            if endpoint.get("Address"):
                out.update({"db_endpoint": endpoint["Address"], "db_port": endpoint.get("Port")})
        return out


def db_name(cfg: EnvConfig) -> str:
    return cfg.name("{project}-{env}")


def find(ctx: Context) -> dict | None:
    """This env's instance, as AWS describes it, or None."""
    return find_db(ctx, db_name(ctx.cfg))


def db_as_seen(ctx: Context) -> dict | None:
    """The instance as this look at the env saw it: read once, for step secrets and this step."""
    return ctx.reads.once("db instance", lambda: find(ctx))


def desired(cfg: EnvConfig) -> list:
    from awsprac.steps import subnets

    private = tuple(s.name for s in subnets.desired(cfg) if s.tier == "private")
    sg = SgSpec(cfg.name("{project}-db-{env}"))
    subnet_group = SubnetGroupSpec(cfg.name("{project}-db-subnet-group-{env}"), private)
    parameter_group = ParameterGroupSpec(cfg.name("{project}-db-parameter-group-{env}"))
    db = DbSpec(db_name(cfg), sg.name, subnet_group.name, parameter_group.name, dbsecret.secret_name(cfg))
    return [sg, subnet_group, parameter_group, db]


# --- looking things up (read-only) ---


def observe(ctx: Context) -> Observed:
    sg_spec, sng_spec, pg_spec, db_spec = desired(ctx.cfg)
    vpc_id = ctx.observed["vpc"].id
    earlier = ctx.observed.get(NAME)

    def engine() -> EngineDefault:
        # The default does not change during a run: asked once.
        return earlier.engine if earlier is not None and earlier.engine is not None else engine_default(ctx)

    def the_rest() -> tuple:
        if earlier is not None and earlier.db is None:
            # Looking again in a run that found no instance: still none, most likely; all reads at once.
            return tuple(concurrently(
                lambda: find_sg(ctx, sg_spec.name, vpc_id), lambda: db_as_seen(ctx),
                lambda: find_group(ctx, sng_spec.kind, sng_spec.name), lambda: find_group(ctx, pg_spec.kind, pg_spec.name),
                engine,
            ))
        sg, raw = concurrently(lambda: find_sg(ctx, sg_spec.name, vpc_id), lambda: db_as_seen(ctx))
        # The instance's description carries its groups: read them on their own only when it does not use ours.
        # AWS's default version only matters to what is still to be created: a converged run skips the read.
        subnet_group, parameter_group, default = concurrently(
            lambda: used_subnet_group(ctx, raw, sng_spec) or find_group(ctx, sng_spec.kind, sng_spec.name),
            lambda: used_parameter_group(ctx, raw, pg_spec) or find_group(ctx, pg_spec.kind, pg_spec.name),
            lambda: engine() if raw is None else None,
        )
        return sg, raw, subnet_group, parameter_group, default

    # The secret as step secrets saw it in this look (a look after a write reads it again).
    (sg, raw, subnet_group, parameter_group, default), secret_state = concurrently(the_rest, lambda: dbsecret.as_seen(ctx))
    db = None
    if raw is not None:
        db = Found(db_spec.kind, db_spec.name, raw["DBInstanceIdentifier"], raw.get("DBInstanceStatus", ""), tags.as_dict(raw.get("TagList")), raw)
    # AWS's default version matters only to what is still to be made (asked above when that was likely).
    default = (default or engine()) if db is None or parameter_group is None else None
    # The groups the DB's group may let in (step db-ingress's rules): from the same read as the DB's own group.
    # rds-master-{env}: from the same read as the secret (step secrets'), so a create need not ask again.
    master = dbsecret.listed_as_seen(ctx)[dbsecret.master_secret_name(ctx.cfg)]
    return Observed(sg, subnet_group, parameter_group, db, default, secret_state, ingress.peers(ctx, vpc_id), master)


def status_states(ctx: Context, have: Observed) -> dict:
    """For `awsprac status`: the instance's state with its backup and maintenance windows (from its description)."""
    if have.db is None:
        return {}
    raw = have.db.raw
    windows = f"backup {raw.get('PreferredBackupWindow', '?')} UTC, maintenance {raw.get('PreferredMaintenanceWindow', '?')} UTC"
    return {(have.db.kind, have.db.name): f"{have.db.state}; {windows}"}


def owned_db(ctx: Context, raw: dict | None) -> bool:
    return raw is not None and tags.is_owned(tags.as_dict(raw.get("TagList")), ctx.cfg.project, ctx.cfg.env)


# --- comparing (pure, given what was observed) ---


def diff(ctx: Context, want: list, have: Observed) -> list[Change]:
    sg_spec, sng_spec, pg_spec, db_spec = want
    return (
        sg_changes(ctx, sg_spec, have.sg, have.peers)
        + subnet_group_changes(ctx, sng_spec, have.subnet_group)
        + parameter_group_changes(ctx, pg_spec, have)
        + db_changes(ctx, db_spec, have, wrong_group_blocks_create(ctx, pg_spec, have))
    )


# --- carrying it out ---


def apply(ctx: Context, change: Change) -> None:
    with applying(change):
        if change.action is Action.DELETE:
            _delete(ctx, change)
        elif change.kind == "security group":
            apply_sg(ctx, change)
        elif change.kind == "DB subnet group":
            apply_subnet_group(ctx, change)
        elif change.kind == "DB parameter group":
            apply_parameter_group(ctx, change)
        elif change.action is Action.CREATE:
            create_db(ctx, change.spec)
        else:
            update_db(ctx, change.spec)


# --- tearing down ---


def db_stays(ctx: Context) -> str | None:
    """Why destroy leaves the instance in place (then its groups and secret stay too), or None."""
    have = ctx.observed.get(NAME)
    if have is None or have.db is None:
        return None
    if not ctx.owns(have.db):
        return f"not tagged {tags.ENV_KEY}={ctx.cfg.env}"
    if have.db.raw.get("DeletionProtection") and not ctx.options.force:
        return "deletion protection is on"
    return None


def destroy_blockers(ctx: Context, have: Observed) -> list[str]:
    """Why a destroy must not start at all: an instance it keeps would keep its network too (its
    interfaces stay in the private subnets and its security group), so the subnets and the VPC could
    not go and the env would be left half torn down. Terraform's prevent_destroy: refuse up front."""
    stays = db_stays(ctx)
    if stays is None:
        return []
    name, env = have.db.name, ctx.cfg.env
    if ctx.owns(have.db):
        return [f"DB instance {name} has deletion protection on and would keep its subnets, security group and VPC: "
                f"`awsprac destroy --env {env} --force` turns protection off, takes a final snapshot and deletes it"]
    return [f"DB instance {name} is {stays}, so destroy leaves it, and it would keep its subnets and VPC: "
            f"delete it yourself, or tag it {tags.ENV_KEY}={env} to let destroy take it"]


def teardown(ctx: Context, have: Observed) -> list[Change]:
    changes: list[Change] = []
    db = have.db
    stays = db_stays(ctx)
    if db is not None:
        if not ctx.owns(db):
            changes += delete_change(NAME, db, ctx)
        elif stays:
            changes.append(Change(NAME, Action.REPORT, db.kind, db.name, db.id, note=(
                f"kept: deletion protection is on; `awsprac destroy --env {ctx.cfg.env} --force` turns it off and deletes it")))
        else:
            notes = []
            if db.state == "deleting":
                notes.append("already being deleted: waits until it is gone")
            else:
                if db.raw.get("DeletionProtection"):
                    notes.append("turns deletion protection off first (--force)")
                if ctx.options.skip_final_snapshot:
                    notes.append("no final snapshot (--skip-final-snapshot): its data is gone for good")
                else:
                    notes.append(f"final snapshot {db.name}-final-<UTC time> first (--skip-final-snapshot: none)")
            changes.append(Change(NAME, Action.DELETE, db.kind, db.name, db.id, note="; ".join(notes)))
    for found in (read_on_its_own(ctx, have.subnet_group), read_on_its_own(ctx, have.parameter_group), have.sg):
        if found is not None and stays and ctx.owns(found):
            changes.append(Change(NAME, Action.REPORT, found.kind, found.name, found.id, note=f"kept: DB instance {db.name} stays and may use it"))
        else:
            changes += delete_change(NAME, found, ctx)
    return changes


def _delete(ctx: Context, change: Change) -> None:
    rds = rds_client(ctx)
    if change.kind == "DB instance":
        delete_db(ctx, change)
    elif change.kind == "DB subnet group":
        waiting.retry_on(lambda e: error_code(e) == "InvalidDBSubnetGroupStateFault",
                         lambda: gone_is_fine(rds.delete_db_subnet_group, DBSubnetGroupName=change.id),
                         GROUP_DELETE_WAIT, ctx.report, f"deleting DB subnet group {change.name}")
    elif change.kind == "DB parameter group":
        waiting.retry_on(lambda e: error_code(e) == "InvalidDBParameterGroupState",
                         lambda: gone_is_fine(rds.delete_db_parameter_group, DBParameterGroupName=change.id),
                         GROUP_DELETE_WAIT, ctx.report, f"deleting DB parameter group {change.name}")
    else:
        # The instance's network interfaces outlive it by minutes and keep the group "in use".
        waiting.retry_on(lambda e: error_code(e) == "DependencyViolation",
                         lambda: gone_is_fine(ctx.aws.ec2.delete_security_group, GroupId=change.id),
                         SG_DELETE_WAIT, ctx.report, f"deleting security group {change.name}")


# --- the family's parts, imported last: they use the names above ---

from awsprac.steps.rds.groups import (  # noqa: E402
    apply_parameter_group, apply_sg, apply_subnet_group, current_sg_id, find_group, find_sg,
    parameter_group_changes, read_on_its_own, retag_rds, sg_changes, subnet_group_changes,
    used_parameter_group, used_subnet_group, wrong_group_blocks_create,
)
from awsprac.steps.rds.lifecycle import create_db, db_changes, delete_db, update_db  # noqa: E402
from awsprac.steps.rds import ingress  # noqa: E402

# --- its other facets (see awsprac.steps) ---

from awsprac.steps.rds.export import export_terraform  # noqa: E402
from awsprac.steps.rds.cost import cost_lines, left_behind  # noqa: E402
from awsprac.steps.rds.park import PARK_LABEL, PARKED_STATES, park_target  # noqa: E402
