"""Step `app`: ECS cluster, log group, task definition and service `{project}-backend-{env}`.

- The image is `<repository URI>:<tag>` with the tag recorded in SSM `image-tag-{project}-{env}`
  (`awsprac image release --record-tag`). None yet: everything but the task definition and the
  service is built, and the plan says what to run. A recorded tag the repository does not hold stops
  the plan (exit 1), before anything is changed.
- Cluster, log group and task definition at once, then the service. Its first rollout and the load
  balancer's provisioning are waited for together (the DB's create, in step rds, at the same time).
- A service at desired count 0 is parked (`awsprac stop`): not drift.
- Destroy: the service scaled to 0, deleted (force), waited until inactive; the task definitions
  deregistered; the cluster; the log group (loggroup.py) only with --force (logs are data).
"""

from __future__ import annotations

from dataclasses import dataclass

from awsprac.engine import tags, tokens, waiting
from awsprac.engine.aws import error_code, is_not_found, translate
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.dag import concurrently
from awsprac.engine.errors import AwspracError
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import add_missing_tags, applying, delete_change, gone_is_fine, update
from awsprac.steps.app import loggroup, rollout, taskdef
from awsprac.steps.app.common import CONTAINER, ecs_tags, from_ecs_tags, names

NAME = "app"
REQUIRES = ("subnets", "secrets", "ecr", "app-iam", "app-network", "app-alb")
OBSERVES_AFTER: tuple[str, ...] = ()  # everything is found by name
CHANGES_AFTER = {"ECS service": ("ECS cluster", "task definition", "log group")}

CLUSTER, LOGS, TASKDEF, SERVICE = "ECS cluster", loggroup.KIND, taskdef.KIND, "ECS service"
SLR_NOT_READY = "Unable to assume the service linked role"
SLR_WAIT = 120.0
INACTIVE_WAIT = 600.0


@dataclass(frozen=True)
class Spec:
    kind: str
    name: str


@dataclass(frozen=True)
class Observed:
    wanted: bool = False
    tag: str | None = None  # the image tag recorded in SSM
    tag_in_repository: bool | None = None  # asked only when the task definition would change image
    cluster: Found | None = None
    logs: Found | None = None
    taskdef: Found | None = None  # the service's revision (else the family's latest)
    service: Found | None = None

    @property
    def ready(self) -> bool:
        return not self.wanted or self.service is not None

    def resources(self) -> list[Found]:
        return [f for f in (self.cluster, self.logs, self.taskdef, self.service) if f is not None]

    def outputs(self) -> dict:
        out: dict = {}
        if self.cluster:
            out["ecs_cluster"] = self.cluster.name
        if self.service:
            out.update({"ecs_service": self.service.name, "ecs_desired_count": self.service.raw.get("desiredCount")})
        if self.taskdef:
            out["task_definition_arn"] = self.taskdef.id
        if self.logs:
            out["log_group"] = self.logs.name
        if self.tag:
            out["image_tag"] = self.tag
        return out


def desired(cfg: EnvConfig) -> list[Spec]:
    if not cfg.app.enabled:
        return []
    n = names(cfg)
    return [Spec(CLUSTER, n.backend), Spec(LOGS, n.log_group), Spec(TASKDEF, n.backend), Spec(SERVICE, n.backend)]


def tag_parameter(cfg: EnvConfig) -> str:
    return cfg.name("image-tag-{project}-{env}")


def ecs(ctx: Context):
    return ctx.aws.client("ecs")


# --- looking (read-only) ---


def _or_none(call, **kwargs):
    try:
        return call(**kwargs)
    except Exception as exc:
        if is_not_found(exc) or error_code(exc) in ("ClientException", "ParameterNotFound"):
            return None  # ClientException: a family with no ACTIVE revision
        raise


def observe(ctx: Context) -> Observed:
    if not ctx.cfg.app.enabled:
        return Observed()
    n, client = names(ctx.cfg), ecs(ctx)
    with translate("looking up", f"the app tier {n.backend}"):
        parameter, clusters, services, group, latest = concurrently(
            lambda: _or_none(ctx.aws.client("ssm").get_parameter, Name=tag_parameter(ctx.cfg)),
            lambda: client.describe_clusters(clusters=[n.backend], include=["SETTINGS", "TAGS"]).get("clusters", []),
            lambda: _or_none(client.describe_services, cluster=n.backend, services=[n.backend], include=["TAGS"]),
            lambda: loggroup.describe(ctx, n.log_group),
            lambda: _or_none(client.describe_task_definition, taskDefinition=n.backend, include=["TAGS"]),
        )
        tag = parameter["Parameter"]["Value"] if parameter else None
        cluster = next((c for c in clusters if c.get("status") == "ACTIVE"), None)
        service = next((s for s in (services or {}).get("services", []) if s.get("status") != "INACTIVE"), None) if cluster else None
        # The family's latest ACTIVE revision: AWS describes no other by family alone (moto: a deregistered one too).
        td = latest = latest if latest and latest["taskDefinition"].get("status") != "INACTIVE" else None
        if service and (latest is None or latest["taskDefinition"]["taskDefinitionArn"] != service.get("taskDefinition")):
            td = _or_none(client.describe_task_definition, taskDefinition=service["taskDefinition"], include=["TAGS"])
        in_repo = None
        current_image = taskdef._container(td["taskDefinition"]).get("image", "") if td else ""
        if tag and taskdef.image_tag(current_image) != tag:
            in_repo = _tag_in_repository(ctx, tag)
    return Observed(
        True, tag, in_repo,
        Found(CLUSTER, n.backend, cluster["clusterArn"], cluster.get("status", ""), from_ecs_tags(cluster.get("tags")), cluster) if cluster else None,
        loggroup.found(ctx, n.log_group, group, td),
        Found(TASKDEF, n.backend, td["taskDefinition"]["taskDefinitionArn"], td["taskDefinition"].get("status", ""),
              from_ecs_tags(td.get("tags")), td["taskDefinition"]) if td else None,
        Found(SERVICE, n.backend, service["serviceArn"], _found_state(service), from_ecs_tags(service.get("tags")), service) if service else None,
    )


def _tag_in_repository(ctx: Context, tag: str) -> bool:
    from awsprac.steps import ecr

    try:
        ctx.aws.client("ecr").describe_images(repositoryName=ecr.repository_name(ctx.cfg), imageIds=[{"imageTag": tag}])
    except Exception as exc:
        if error_code(exc) in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return False
        raise
    return True


def _found_state(service: dict) -> str:
    """`parked` (one of PARKED_STATES) at desired count 0, else the service's own description."""
    from awsprac.steps.app.park import PARKED

    return PARKED if service.get("status") == "ACTIVE" and service.get("desiredCount") == 0 else _service_state(service)


def status_states(ctx: Context, have: Observed) -> dict:
    """`status` shows the service's counts and rollout, parked or not (no read of its own)."""
    service = have.service
    return {(service.kind, service.name): _service_state(service.raw)} if service is not None else {}


def _service_state(service: dict) -> str:
    d = rollout.primary(service)
    parked = " (parked: `awsprac start`)" if service.get("desiredCount") == 0 else ""
    return f"{service.get('status')} {service.get('runningCount', 0)}/{service.get('desiredCount', 0)} running, rollout {d.get('rolloutState', '?')}{parked}"


# --- comparing ---


def _account(ctx: Context) -> str:
    return ctx.observed["app-iam"].account or (ctx.identity or {}).get("Account", "")


def image(ctx: Context, tag: str) -> str:
    from awsprac.steps import ecr

    uri = ctx.observed["ecr"].uri or f"(new) {ecr.repository_name(ctx.cfg)}"
    return f"{uri}:{tag}"


def wanted_taskdef(ctx: Context, tag: str) -> dict:
    secret = ctx.observed["secrets"].secret
    secret_arn = secret.arn if secret else f"(new) {ctx.cfg.name('rds-main-{env}')}"
    return taskdef.wanted(ctx.cfg, _account(ctx), image(ctx, tag), secret_arn)


def diff(ctx: Context, want: list[Spec], have: Observed) -> list[Change]:
    if not want:
        return []
    cluster_spec, logs_spec, td_spec, service_spec = want
    changes = _cluster_changes(ctx, cluster_spec, have.cluster) + loggroup.changes(ctx, NAME, logs_spec, have.logs)
    if have.tag is None:
        note = (f"no image yet: run `awsprac image release --env {ctx.cfg.env} --record-tag`, then `awsprac up --env {ctx.cfg.env}`"
                " (everything else is built now)")
        return changes + [Change(NAME, Action.REPORT, SERVICE, service_spec.name, have.service.id if have.service else None, note=note)]
    if have.tag_in_repository is False:
        raise AwspracError(
            f"image tag {have.tag!r} (recorded in SSM parameter {tag_parameter(ctx.cfg)}) is not in ECR repository "
            f"{image(ctx, have.tag).rsplit(':', 1)[0]}: nothing was changed; push it with `awsprac image release --env {ctx.cfg.env} --record-tag`"
        )
    td_changes = _taskdef_changes(ctx, td_spec, have)
    return changes + td_changes + _service_changes(ctx, service_spec, have, new_revision=any(c.action is not Action.REPORT for c in td_changes))


def _cluster_changes(ctx: Context, spec: Spec, cluster: Found | None) -> list[Change]:
    if cluster is None:
        return [Change(NAME, Action.CREATE, CLUSTER, spec.name, spec=spec, fields=(
            FieldDiff("capacity providers", None, "FARGATE, FARGATE_SPOT"), FieldDiff("containerInsights", None, "disabled")))]
    fields = []
    insights = next((s.get("value") for s in cluster.raw.get("settings", []) if s.get("name") == "containerInsights"), None)
    if insights != "disabled":
        fields.append(FieldDiff("containerInsights", insights, "disabled"))
    providers = sorted(cluster.raw.get("capacityProviders", []))
    if providers != ["FARGATE", "FARGATE_SPOT"]:
        fields.append(FieldDiff("capacity providers", ", ".join(providers) or None, "FARGATE, FARGATE_SPOT"))
    return update(ctx, NAME, cluster, fields, spec)


def _taskdef_changes(ctx: Context, spec: Spec, have: Observed) -> list[Change]:
    want = wanted_taskdef(ctx, have.tag)
    if have.taskdef is None:
        return [Change(NAME, Action.CREATE, TASKDEF, spec.name, spec=spec, fields=(
            FieldDiff("image", None, want["containerDefinitions"][0]["image"]), FieldDiff("cpu/memory", None, f"{want['cpu']}/{want['memory']}"),
            FieldDiff("secrets", None, taskdef._secrets_text(want["containerDefinitions"][0]))))]
    fields = taskdef.differences(have.taskdef.raw, want)
    if not fields:
        return update(ctx, NAME, have.taskdef, [], spec)
    action = Action.UPDATE if ctx.owns(have.taskdef) else Action.ADOPT
    return [Change(NAME, action, TASKDEF, spec.name, have.taskdef.id, tuple(fields), spec=spec, note="registers a new revision")]


def wanted_service(ctx: Context) -> dict:
    from awsprac.steps.app import alb, network

    n, app = names(ctx.cfg), ctx.cfg.app
    return {
        "networkConfiguration": {"awsvpcConfiguration": {
            "subnets": sorted(ctx.observed["subnets"].ids("private", ctx.cfg)),
            "securityGroups": [network.group_id(ctx, n.backend) or f"(new) {n.backend}"], "assignPublicIp": "DISABLED"}},
        "loadBalancers": [{"targetGroupArn": alb.arn_of(ctx, alb.TG, n.backend) or f"(new) {n.backend}", "containerName": CONTAINER, "containerPort": app.container_port}],
        "healthCheckGracePeriodSeconds": app.health_check_grace_period,
        "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": True}, "maximumPercent": 200, "minimumHealthyPercent": 100},
        "enableExecuteCommand": True,
    }


def _service_changes(ctx: Context, spec: Spec, have: Observed, new_revision: bool) -> list[Change]:
    want, service = wanted_service(ctx), have.service
    count = ctx.cfg.app.desired_count
    if service is None:
        return [Change(NAME, Action.CREATE, SERVICE, spec.name, spec=spec, fields=(
            FieldDiff("desired count", None, count), FieldDiff("launch type", None, "FARGATE"),
            FieldDiff("target group", None, f"{want['loadBalancers'][0]['targetGroupArn']} -> {CONTAINER}:{ctx.cfg.app.container_port}"),
            FieldDiff("public IP", None, "none"), FieldDiff("circuit breaker", None, "on, with rollback"), FieldDiff("ECS Exec", None, "on")),
            note="waits for the first rollout (and the load balancer) to finish")]
    raw, fields = service.raw, []
    if new_revision:
        fields.append(FieldDiff("task definition", raw.get("taskDefinition"), "(new revision)"))
    elif have.taskdef and raw.get("taskDefinition") != have.taskdef.id:
        fields.append(FieldDiff("task definition", raw.get("taskDefinition"), have.taskdef.id))
    if raw.get("desiredCount") not in (0, count):  # 0: parked by `awsprac stop`
        fields.append(FieldDiff("desired count", raw.get("desiredCount"), count))
    vpc = (raw.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
    want_vpc = want["networkConfiguration"]["awsvpcConfiguration"]
    if sorted(vpc.get("subnets", [])) != want_vpc["subnets"]:
        fields.append(FieldDiff("subnets", ", ".join(sorted(vpc.get("subnets", []))) or None, ", ".join(want_vpc["subnets"])))
    if vpc.get("securityGroups") != want_vpc["securityGroups"]:
        fields.append(FieldDiff("security groups", ", ".join(vpc.get("securityGroups") or []) or None, ", ".join(want_vpc["securityGroups"])))
    if vpc.get("assignPublicIp", "DISABLED") != "DISABLED":
        fields.append(FieldDiff("public IP", vpc.get("assignPublicIp"), "DISABLED"))
    balancers = [{k: b.get(k) for k in ("targetGroupArn", "containerName", "containerPort")} for b in raw.get("loadBalancers", [])]
    if balancers != want["loadBalancers"]:
        fields.append(FieldDiff("load balancers", "; ".join(f"{b['targetGroupArn']} -> {b['containerName']}:{b['containerPort']}" for b in balancers) or None,
                                f"{want['loadBalancers'][0]['targetGroupArn']} -> {CONTAINER}:{ctx.cfg.app.container_port}"))
    # Settings AWS always describes (moto leaves some out: not compared when absent).
    if "healthCheckGracePeriodSeconds" in raw and raw["healthCheckGracePeriodSeconds"] != want["healthCheckGracePeriodSeconds"]:
        fields.append(FieldDiff("health check grace period", raw["healthCheckGracePeriodSeconds"], want["healthCheckGracePeriodSeconds"]))
    breaker = (raw.get("deploymentConfiguration") or {}).get("deploymentCircuitBreaker")
    if breaker is not None and (breaker.get("enable"), breaker.get("rollback")) != (True, True):
        fields.append(FieldDiff("circuit breaker", f"enable={breaker.get('enable')}, rollback={breaker.get('rollback')}", "enable=true, rollback=true"))
    if "enableExecuteCommand" in raw and raw["enableExecuteCommand"] is not True:
        fields.append(FieldDiff("ECS Exec", raw["enableExecuteCommand"], True))
    return update(ctx, NAME, service, fields, spec)


# --- carrying it out ---


def apply(ctx: Context, change: Change) -> None:
    with applying(change):
        if change.kind == LOGS:
            loggroup.apply(ctx, change, ctx.observed[NAME].logs)
        elif change.action is Action.DELETE:
            _delete(ctx, change)
        elif change.kind == CLUSTER:
            _apply_cluster(ctx, change)
        elif change.kind == TASKDEF:
            _apply_taskdef(ctx, change)
        else:
            _apply_service(ctx, change)


def until_role_is_usable(ctx: Context, call, what: str, **kwargs):
    """ECS's first use of its service-linked role can fail for a while after the role is made."""
    def not_yet(exc: Exception) -> bool:
        return error_code(exc) == "InvalidParameterException" and SLR_NOT_READY in str(exc)

    return waiting.retry_on(not_yet, lambda: call(**kwargs), SLR_WAIT, ctx.report, what)


def _retag_ecs(ctx: Context, found: Found) -> None:
    add_missing_tags(ctx, found.tags, found.name, lambda tag_list: ecs(ctx).tag_resource(resourceArn=found.id, tags=ecs_tags(tags.as_dict(tag_list))))


def _apply_cluster(ctx: Context, change: Change) -> None:
    settings = {"settings": [{"name": "containerInsights", "value": "disabled"}],  # explicit: an account default may say otherwise
                "capacityProviders": ["FARGATE", "FARGATE_SPOT"]}
    if change.action is Action.CREATE:
        # CreateCluster is idempotent by name.
        until_role_is_usable(ctx, ecs(ctx).create_cluster, f"creating cluster {change.name}", clusterName=change.name,
                             tags=ecs_tags(ctx.tags(change.name)), **settings)
        return
    cluster = ctx.observed[NAME].cluster
    _retag_ecs(ctx, cluster)
    fields = {f.field for f in change.fields}
    if "containerInsights" in fields:
        ecs(ctx).update_cluster(cluster=change.name, settings=settings["settings"])
    if "capacity providers" in fields:
        ecs(ctx).put_cluster_capacity_providers(cluster=change.name, capacityProviders=settings["capacityProviders"], defaultCapacityProviderStrategy=[])


def _apply_taskdef(ctx: Context, change: Change) -> None:
    have = ctx.observed[NAME]
    if change.action is not Action.CREATE and not any(f.field != "tags" for f in change.fields):
        _retag_ecs(ctx, have.taskdef)  # only its tags
        return
    args = taskdef.register_args(ctx.cfg, wanted_taskdef(ctx, have.tag), ctx.tags(change.name))
    ctx.made[(TASKDEF, change.name)] = ecs(ctx).register_task_definition(**args)["taskDefinition"]["taskDefinitionArn"]


def _apply_service(ctx: Context, change: Change) -> None:
    from awsprac.steps.app import alb

    have, n = ctx.observed[NAME], names(ctx.cfg)
    td = ctx.made.get((TASKDEF, n.backend)) or (have.taskdef.id if have.taskdef else "")
    want = wanted_service(ctx)
    if change.action is Action.CREATE:
        until_role_is_usable(
            ctx, ecs(ctx).create_service, f"creating service {change.name}",
            cluster=n.backend, serviceName=change.name, taskDefinition=td, desiredCount=ctx.cfg.app.desired_count,
            launchType="FARGATE", propagateTags="SERVICE", tags=ecs_tags(ctx.tags(change.name)),
            clientToken=tokens.client_token(ctx.cfg.project, ctx.cfg.env, change.name, td)[:36], **want,
        )
    else:
        service = have.service
        _retag_ecs(ctx, service)
        fields = {f.field for f in change.fields}
        if fields - {"tags"}:
            count = service.raw.get("desiredCount") if service.raw.get("desiredCount") == 0 else ctx.cfg.app.desired_count
            ecs(ctx).update_service(cluster=n.backend, service=change.name, taskDefinition=td, desiredCount=count, **want)
        if "task definition" not in fields:
            return
    # The rollout and the load balancer's provisioning, waited for at the same time.
    lb = alb.arn_of(ctx, alb.LB, n.alb)
    concurrently(lambda: rollout.watch(ctx, td, rollout.revision(td), doing="rollout"), lambda: alb.wait_active(ctx, lb, n.alb) if lb else None)


def _delete(ctx: Context, change: Change) -> None:
    client, n = ecs(ctx), names(ctx.cfg)
    if change.kind == SERVICE:
        try:
            client.update_service(cluster=n.backend, service=change.name, desiredCount=0)
        except Exception as exc:
            if not (is_not_found(exc) or error_code(exc) == "ServiceNotActiveException"):
                raise
            return
        gone_is_fine(client.delete_service, cluster=n.backend, service=change.name, force=True)

        def inactive() -> tuple[bool, str]:
            service = _or_none(client.describe_services, cluster=n.backend, services=[change.name])
            status = next((s.get("status") for s in (service or {}).get("services", [])), "INACTIVE")
            return status == "INACTIVE", status

        waiting.wait_for(ctx.report, f"service {change.name} draining", inactive, timeout=INACTIVE_WAIT, interval=10)
    elif change.kind == TASKDEF:
        taskdef.deregister_family(client, change.name)
    else:
        gone_is_fine(client.delete_cluster, cluster=change.name)


def teardown(ctx: Context, have: Observed) -> list[Change]:
    return (delete_change(NAME, have.service, ctx) + delete_change(NAME, have.taskdef, ctx) + delete_change(NAME, have.cluster, ctx)
            + loggroup.teardown(ctx, NAME, have.logs))


# --- the family's other facets, found on this step (the registry's last app step) by their walkers ---

from awsprac.steps.app.cost import cost_lines  # noqa: E402,F401
from awsprac.steps.app.doctor import doctor_checks  # noqa: E402,F401
from awsprac.steps.app.export import export_terraform  # noqa: E402,F401
from awsprac.steps.app.park import PARK_LABEL, PARKED_STATES, park_target  # noqa: E402,F401
