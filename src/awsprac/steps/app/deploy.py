"""`awsprac app deploy` and `awsprac app url`: roll the API's service to an image, and say where it answers.

A deploy registers a task definition revision that copies the service's current one with only the
`api` container's image changed: secrets stay `valueFrom` ARNs (no secret is ever read), so no value
can reach the revision, the screen or a log. The service is pointed at it and the rollout watched until
the new PRIMARY deployment's `rolloutState` is COMPLETED with every desired task running. The
`services_stable` waiter is not used: after a circuit-breaker rollback it reports success.
"""

from __future__ import annotations

import re

from awsprac.engine.errors import AwspracError, MissingPrerequisite, UsageError
from awsprac.steps.app import rollout as rollouts
from awsprac.steps.app.common import CONTAINER, names

TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # what docker accepts as a tag
DeployFailed = rollouts.RolloutFailed  # the rollout ended FAILED (exit 1): the service runs what it ran before


def build_the_tier(cfg) -> str:
    return f"enable the tier (`[app] enabled = true` in {cfg.path}) and run `awsprac up --env {cfg.env}`"


def find_service(ctx) -> dict:
    """The env's ECS service as AWS describes it; exit 2 saying how to build it when there is none."""
    n = names(ctx.cfg)
    service = rollouts.describe(ctx, n)
    if service is None:
        raise MissingPrerequisite(
            f"no ECS service {n.service} in cluster {n.cluster}: {build_the_tier(ctx.cfg)} "
            f"(with an image released first: `awsprac image release --env {ctx.cfg.env} --dockerfile-dir DIR --record-tag`)"
        )
    return service


# --- deploy ---


def deploy(app, tag: str | None) -> None:
    from awsprac.steps.ecr import image as images
    from awsprac.engine.aws import translate

    if tag is not None and not TAG.match(tag):
        raise UsageError(f"--tag {tag!r} is not an image tag (letters, digits, '_', '.', '-'; at most 128 characters)")
    ctx = app.context()
    n = names(app.cfg)
    service = find_service(ctx)
    where = images.target(app)
    if tag is None:
        tag = images.recorded_ref(app).rpartition(":")[2]
    ref = where.ref(tag)
    if not images.tag_exists(app, where, tag):
        raise AwspracError(
            f"image tag {tag} is not in ECR repository {where.repository}: push it first "
            f"(`awsprac image release --env {app.cfg.env} --dockerfile-dir DIR`) or name a tag that is there; nothing was changed"
        )
    current = task_definition(ctx, service["taskDefinition"])
    seen = {e["id"] for e in service.get("events", [])}
    if _image(current) == ref:
        arn = current["taskDefinitionArn"]
        outcome = rollouts.outcome(service, arn)[0]
        if outcome == "done":
            app.report.info(f"{n.service} already runs {ref} ({rollouts.revision(arn)}): nothing to deploy")
            app.report.line(ref)
            return
        if outcome == "waiting":  # a deploy that stopped watching (Ctrl-C, timeout): watch it again
            app.report.info(f"{n.service} is already rolling out {ref} ({rollouts.revision(arn)}): watching it")
    else:
        arn = register(ctx, current, ref)
        with translate("updating", f"ECS service {n.service}"):
            ctx.aws.client("ecs").update_service(cluster=n.cluster, service=n.service, taskDefinition=arn)
        app.report.applied(f"{n.service} -> {rollouts.revision(arn)} ({ref})")
    rollouts.watch(ctx, arn, ref, seen)
    app.report.line(ref)


def task_definition(ctx, arn: str) -> dict:
    from awsprac.engine.aws import translate

    with translate("reading", f"task definition {arn}"):
        answer = ctx.aws.client("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"])
    return {**answer["taskDefinition"], "tags": answer.get("tags", [])}


def _image(definition: dict) -> str:
    for container in definition["containerDefinitions"]:
        if container["name"] == CONTAINER:
            return container["image"]
    raise AwspracError(
        f"task definition {definition['taskDefinitionArn']} has no container named {CONTAINER!r}: "
        f"`awsprac up` puts the service back on awsprac's task definition"
    )


def revision_request(ecs, current: dict, ref: str, ownership: dict[str, str]) -> dict:
    """RegisterTaskDefinition's parameters: every setting of `current` (what the API accepts back), the `api`
    container's image set to `ref`, this env's ownership tags. Secrets are copied as they are: ARNs."""
    accepted = ecs.meta.service_model.operation_model("RegisterTaskDefinition").input_shape.members
    request = {key: value for key, value in current.items() if key in accepted and key != "tags"}
    request["containerDefinitions"] = [
        {**c, "image": ref} if c["name"] == CONTAINER else c for c in current["containerDefinitions"]
    ]
    kept = {t["key"]: t["value"] for t in current.get("tags", []) if not t["key"].startswith("aws:")}
    request["tags"] = [{"key": k, "value": v} for k, v in {**kept, **ownership}.items()]
    return request


def register(ctx, current: dict, ref: str) -> str:
    """The new revision's ARN. The family's latest revision is reused when it is exactly this one (a deploy
    that stopped between registering and updating the service): no revision piles up per retry."""
    from awsprac.engine.aws import translate

    ecs = ctx.aws.client("ecs")
    family = current["family"]
    request = revision_request(ecs, current, ref, ctx.tags(family))
    with translate("registering", f"a revision of task definition {family}"):
        latest = task_definition(ctx, family)
        if latest["taskDefinitionArn"] != current["taskDefinitionArn"] and _same(revision_request(ecs, latest, _image(latest), {}), request):
            ctx.report.info(f"reusing {rollouts.revision(latest['taskDefinitionArn'])}, registered with {ref} by an earlier deploy")
            return latest["taskDefinitionArn"]
        arn = ecs.register_task_definition(**request)["taskDefinition"]["taskDefinitionArn"]
    ctx.report.applied(f"registered {rollouts.revision(arn)} with image {ref}")
    return arn


def _same(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k != "tags"} == {k: v for k, v in b.items() if k != "tags"}


# --- url ---


def url(app) -> None:
    from awsprac.engine.aws import error_code, translate

    ctx = app.context()
    n = names(app.cfg)
    elb = ctx.aws.client("elbv2")
    with translate("looking up", f"load balancer {n.alb}"):
        try:
            balancer = elb.describe_load_balancers(Names=[n.alb])["LoadBalancers"][0]
        except Exception as exc:
            if error_code(exc) != "LoadBalancerNotFound":
                raise
            raise MissingPrerequisite(f"no load balancer {n.alb}: {build_the_tier(app.cfg)}") from None
        listeners = elb.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    if not listeners:
        raise MissingPrerequisite(f"load balancer {n.alb} has no listener yet: run `awsprac up --env {app.cfg.env}`")
    app.report.line(address(balancer["DNSName"], listeners))


def address(dns: str, listeners: list[dict]) -> str:
    """https:// when a listener speaks HTTPS (443), else http://; a port only when it is not the scheme's own."""
    secure = [l for l in listeners if l.get("Protocol") == "HTTPS"]
    listener = min(secure or listeners, key=lambda l: l.get("Port", 0))
    scheme = "https" if secure else "http"
    port = listener.get("Port")
    return f"{scheme}://{dns}" + ("" if port == {"https": 443, "http": 80}[scheme] else f":{port}")
