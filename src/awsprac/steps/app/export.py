"""`awsprac export terraform` for the app tier: app.tf with every resource of the tier and its import id."""

from __future__ import annotations

from awsprac.steps.app.common import CONTAINER, names


def add(b) -> None:
    """Add the tier to the export being built (`b`: terraform._Builder, after network and ECR)."""
    from awsprac.terraform import Block, Expr, Resource, address_name, jsonencode, _policy

    if not b.cfg.app.enabled:
        return
    n, obs = names(b.cfg), b.obs
    f = b.file("app.tf", "The API on ECS Fargate behind an Application Load Balancer (the guide's aws-setup continuation).")
    net, iam, alb, app = obs["app-network"], obs["app-iam"], obs["app-alb"], obs["app"]
    alb_sg = b.security_group(f, "alb", net.get(n.alb), n.alb, "the load balancer's")
    backend_sg = b.security_group(f, "backend", net.get(n.backend), n.backend, "the API tasks'")

    policy = None
    if iam.policy is None:
        b.missing(f"IAM policy {n.secrets_policy}")
    else:
        from awsprac.steps.app.iam import default_document

        policy = f.add(Resource("aws_iam_policy", "secrets_manager_read", {
            "name": iam.policy.name, "policy": jsonencode(default_document(iam.policy)), "tags": b.tags(iam.policy.name),
        }, iam.policy.id))
    roles = {}
    for label, name in (("task_execution", n.execution_role), ("task", n.backend)):
        role = iam.role(name)
        if role is None:
            b.missing(f"IAM role {name}")
            continue
        roles[name] = f.add(Resource("aws_iam_role", label, {
            "name": name, "assume_role_policy": jsonencode(_policy(role.raw.get("AssumeRolePolicyDocument"))), "tags": b.tags(name),
        }, name))
        for attached in sorted(p["PolicyArn"] for p in role.raw.get("AttachedManagedPolicies", [])):
            arn = policy.ref("arn") if policy is not None and attached == iam.policy.id else attached
            f.add(Resource("aws_iam_role_policy_attachment", f"{label}_{address_name(attached.rsplit('/', 1)[-1])}",
                           {"role": roles[name].ref("name"), "policy_arn": arn}, f"{name}/{attached}"))

    if app.cluster is None:
        b.missing(f"ECS cluster {n.backend}")
    else:
        f.add(Resource("aws_ecs_cluster", "backend", {
            "name": n.backend, "setting": Block({"name": "containerInsights", "value": "disabled"}), "tags": b.tags(n.backend),
        }, n.backend))
        f.add(Resource("aws_ecs_cluster_capacity_providers", "backend", {
            "cluster_name": Expr("aws_ecs_cluster.backend.name"), "capacity_providers": ["FARGATE", "FARGATE_SPOT"]}, n.backend))
    if app.logs is None:
        b.missing(f"log group {n.log_group}")
    else:
        f.add(Resource("aws_cloudwatch_log_group", "backend", {
            "name": n.log_group, "retention_in_days": app.logs.raw.get("retentionInDays"), "tags": b.tags(n.log_group)}, n.log_group))

    lb = tg = None
    if alb.lb is None:
        b.missing(f"load balancer {n.alb}")
    else:
        lb = f.add(Resource("aws_lb", "main", {
            "name": n.alb, "load_balancer_type": "application", "internal": False, "ip_address_type": "ipv4",
            "subnets": [b.subnet_ref(name) for name in _public_subnets(b)],
            "security_groups": [alb_sg.ref()] if alb_sg else [], "tags": b.tags(n.alb),
        }, alb.lb.id))
    if alb.tg is None:
        b.missing(f"target group {n.backend}")
    else:
        raw = alb.tg.raw
        tg = f.add(Resource("aws_lb_target_group", "backend", {
            "name": n.backend, "port": raw.get("Port"), "protocol": raw.get("Protocol"), "target_type": raw.get("TargetType"),
            "vpc_id": b.vpc.ref() if b.vpc else raw.get("VpcId"),
            "deregistration_delay": dict(alb.tg_attributes).get("deregistration_delay.timeout_seconds"),
            "health_check": Block({"path": raw.get("HealthCheckPath"), "matcher": (raw.get("Matcher") or {}).get("HttpCode")}),
            "tags": b.tags(n.backend),
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
        b.missing(f"task definition {n.backend} (no image released yet)")
    else:
        td = app.taskdef.raw
        f.add(Resource("aws_ecs_task_definition", "backend", {
            "family": td.get("family"), "requires_compatibilities": td.get("requiresCompatibilities"), "network_mode": td.get("networkMode"),
            "cpu": td.get("cpu"), "memory": td.get("memory"),
            "execution_role_arn": roles[n.execution_role].ref("arn") if n.execution_role in roles else td.get("executionRoleArn"),
            "task_role_arn": roles[n.backend].ref("arn") if n.backend in roles else td.get("taskRoleArn"),
            "runtime_platform": Block({"cpu_architecture": (td.get("runtimePlatform") or {}).get("cpuArchitecture"),
                                       "operating_system_family": (td.get("runtimePlatform") or {}).get("operatingSystemFamily")}),
            "container_definitions": jsonencode(td.get("containerDefinitions")), "tags": b.tags(n.backend),
        }, td.get("taskDefinitionArn")))
    if app.service is None:
        b.missing(f"ECS service {n.backend}")
    else:
        raw = app.service.raw
        vpc = (raw.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
        f.add(Resource("aws_ecs_service", "backend", {
            "name": n.backend, "cluster": Expr("aws_ecs_cluster.backend.id") if app.cluster else n.backend,
            "task_definition": Expr("aws_ecs_task_definition.backend.arn") if app.taskdef else raw.get("taskDefinition"),
            "desired_count": b.cfg.app.desired_count, "launch_type": "FARGATE",
            "health_check_grace_period_seconds": b.cfg.app.health_check_grace_period, "enable_execute_command": True,
            "network_configuration": Block({"subnets": sorted(vpc.get("subnets", [])), "security_groups": [backend_sg.ref()] if backend_sg else vpc.get("securityGroups"),
                                            "assign_public_ip": False}),
            "load_balancer": Block({"target_group_arn": tg.ref("arn") if tg else None, "container_name": CONTAINER, "container_port": b.cfg.app.container_port}),
            "deployment_circuit_breaker": Block({"enable": True, "rollback": True}),
            "tags": b.tags(n.backend),
        }, f"{n.backend}/{n.backend}"))


def _public_subnets(b) -> list[str]:
    from awsprac.steps import subnets

    return [s.name for s in subnets.desired(b.cfg) if s.tier == "public"]
