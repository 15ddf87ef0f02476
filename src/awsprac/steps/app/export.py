"""`awsprac export terraform` for the app tier: app.tf with every resource of the tier and its import id."""

from __future__ import annotations

from awsprac.engine.context import Context
from awsprac.engine.terraform import Block, Exporter, Expr, Resource, address_name, jsonencode
from awsprac.engine.terraform import policy as policy_document
from awsprac.steps.app.common import CONTAINER, names


def export_terraform(ctx: Context, out: Exporter) -> None:
    """The family's facet: app.tf, after the network's, the IAM's and ECR's files (registry order)."""
    cfg = ctx.cfg
    if not cfg.app.enabled:
        return
    n, obs = names(cfg), ctx.observed
    f = out.file("app.tf", "The API on ECS Fargate behind an Application Load Balancer (the guide's aws-setup continuation).")
    net, iam, alb, app = obs["app-network"], obs["app-iam"], obs["app-alb"], obs["app"]
    alb_sg = out.security_group(f, "alb", net.get(n.alb), n.alb)
    backend_sg = out.security_group(f, "backend", net.get(n.backend), n.backend)

    policy = None
    if iam.policy is None:
        out.missing(f"IAM policy {n.secrets_policy}")
    else:
        from awsprac.steps.app.iam import default_document

        policy = f.add(Resource("aws_iam_policy", "secrets_manager_read", {
            "name": iam.policy.name, "policy": jsonencode(default_document(iam.policy)), "tags": out.tags(iam.policy.name),
        }, iam.policy.id))
    roles = {}
    for label, name in (("task_execution", n.execution_role), ("task", n.backend)):
        role = iam.role(name)
        if role is None:
            out.missing(f"IAM role {name}")
            continue
        roles[name] = f.add(Resource("aws_iam_role", label, {
            "name": name, "assume_role_policy": jsonencode(policy_document(role.raw.get("AssumeRolePolicyDocument"))), "tags": out.tags(name),
        }, name))
        for attached in sorted(p["PolicyArn"] for p in role.raw.get("AttachedManagedPolicies", [])):
            arn = policy.ref("arn") if policy is not None and attached == iam.policy.id else attached
            f.add(Resource("aws_iam_role_policy_attachment", f"{label}_{address_name(attached.rsplit('/', 1)[-1])}",
                           {"role": roles[name].ref("name"), "policy_arn": arn}, f"{name}/{attached}"))

    if app.cluster is None:
        out.missing(f"ECS cluster {n.backend}")
    else:
        f.add(Resource("aws_ecs_cluster", "backend", {
            "name": n.backend, "setting": Block({"name": "containerInsights", "value": "disabled"}), "tags": out.tags(n.backend),
        }, n.backend))
        f.add(Resource("aws_ecs_cluster_capacity_providers", "backend", {
            "cluster_name": Expr("aws_ecs_cluster.backend.name"), "capacity_providers": ["FARGATE", "FARGATE_SPOT"]}, n.backend))
    if app.logs is None:
        out.missing(f"log group {n.log_group}")
    else:
        f.add(Resource("aws_cloudwatch_log_group", "backend", {
            "name": n.log_group, "retention_in_days": app.logs.raw.get("retentionInDays"), "tags": out.tags(n.log_group)}, n.log_group))

    lb = tg = None
    if alb.lb is None:
        out.missing(f"load balancer {n.alb}")
    else:
        lb = f.add(Resource("aws_lb", "main", {
            "name": n.alb, "load_balancer_type": "application", "internal": False, "ip_address_type": "ipv4",
            "subnets": [s.ref() for s in (out.named("aws_subnet", name) for name in _public_subnets(cfg)) if s],
            "security_groups": [alb_sg.ref()] if alb_sg else [], "tags": out.tags(n.alb),
        }, alb.lb.id))
    if alb.tg is None:
        out.missing(f"target group {n.backend}")
    else:
        raw = alb.tg.raw
        tg = f.add(Resource("aws_lb_target_group", "backend", {
            "name": n.backend, "port": raw.get("Port"), "protocol": raw.get("Protocol"), "target_type": raw.get("TargetType"),
            "vpc_id": out.ref("aws_vpc", raw.get("VpcId")),
            "deregistration_delay": dict(alb.tg_attributes).get("deregistration_delay.timeout_seconds"),
            "health_check": Block({"path": raw.get("HealthCheckPath"), "matcher": (raw.get("Matcher") or {}).get("HttpCode")}),
            "tags": out.tags(n.backend),
        }, alb.tg.id))
    for listener in alb.listeners:
        raw = listener.raw
        attrs: dict = {"load_balancer_arn": lb.ref("arn") if lb else None, "port": raw.get("Port"), "protocol": raw.get("Protocol"),
                       "default_action": Block({"type": "forward", "target_group_arn": tg.ref("arn") if tg else None})}
        for cert in (raw.get("Certificates") or [])[:1]:
            attrs["certificate_arn"] = cert["CertificateArn"]
            attrs["ssl_policy"] = raw.get("SslPolicy")
        f.add(Resource("aws_lb_listener", f"port_{raw.get('Port')}", attrs, listener.id))

    if app.taskdef is None:
        out.missing(f"task definition {n.backend} (no image released yet)")
    else:
        td = app.taskdef.raw
        f.add(Resource("aws_ecs_task_definition", "backend", {
            "family": td.get("family"), "requires_compatibilities": td.get("requiresCompatibilities"), "network_mode": td.get("networkMode"),
            "cpu": td.get("cpu"), "memory": td.get("memory"),
            "execution_role_arn": roles[n.execution_role].ref("arn") if n.execution_role in roles else td.get("executionRoleArn"),
            "task_role_arn": roles[n.backend].ref("arn") if n.backend in roles else td.get("taskRoleArn"),
            "runtime_platform": Block({"cpu_architecture": (td.get("runtimePlatform") or {}).get("cpuArchitecture"),
                                       "operating_system_family": (td.get("runtimePlatform") or {}).get("operatingSystemFamily")}),
            "container_definitions": jsonencode(td.get("containerDefinitions")), "tags": out.tags(n.backend),
        }, td.get("taskDefinitionArn")))
    if app.service is None:
        out.missing(f"ECS service {n.backend}")
    else:
        raw = app.service.raw
        vpc = (raw.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
        f.add(Resource("aws_ecs_service", "backend", {
            "name": n.backend, "cluster": Expr("aws_ecs_cluster.backend.id") if app.cluster else n.backend,
            "task_definition": Expr("aws_ecs_task_definition.backend.arn") if app.taskdef else raw.get("taskDefinition"),
            "desired_count": cfg.app.desired_count, "launch_type": "FARGATE",
            "health_check_grace_period_seconds": cfg.app.health_check_grace_period, "enable_execute_command": True,
            "network_configuration": Block({"subnets": sorted(vpc.get("subnets", [])), "security_groups": [backend_sg.ref()] if backend_sg else vpc.get("securityGroups"),
                                            "assign_public_ip": False}),
            "load_balancer": Block({"target_group_arn": tg.ref("arn") if tg else None, "container_name": CONTAINER, "container_port": cfg.app.container_port}),
            "deployment_circuit_breaker": Block({"enable": True, "rollback": True}),
            "tags": out.tags(n.backend),
        }, f"{n.backend}/{n.backend}"))


def _public_subnets(cfg) -> list[str]:
    from awsprac.steps import subnets

    return [s.name for s in subnets.desired(cfg) if s.tier == "public"]
