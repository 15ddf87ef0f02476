"""The app tier (steps app-iam, app-network, app-alb, app) against in-process moto: docs/reference.md section 11 as built,
a converged re-plan that is empty, drift shown per setting and fixed, hand-made resources adopted, the
image rules, and what AWS enforces that moto does not (injected)."""

import dataclasses
import json

import pytest

from awsprac.engine import runner, tags
from awsprac.engine.errors import AwspracError
from awsprac.engine.plan import Action

from app_helpers import (  # noqa: F401
    ACCOUNT, ALB, BACKEND, EXEC_ROLE, LOGS, OWNED, POLICY, app_env, app_cfg, client, push_image, record_tag,
)
from conftest import Calls, build
from db_helpers import Fail, Recorder

TIER = ["vpc", "subnets", "secrets", "ecr", "app-iam", "app-network", "app-alb", "app"]


def up(ctx, names=TIER):
    return build(ctx, names)


def plan(ctx, names=TIER):
    return runner.plan(ctx, runner.resolve(names))


def app_changes(planned):
    return [c for c in planned.changes if c.step.startswith("app")]


def fields(change):
    return {f.field: (f.have, f.want) for f in change.fields}


def ecs_service():
    return client("ecs").describe_services(cluster=BACKEND, services=[BACKEND], include=["TAGS"])["services"][0]


def group(name):
    return client("ec2").describe_security_groups(Filters=[{"Name": "tag:Name", "Values": [name]}])["SecurityGroups"][0]


def test_up_builds_section_11_and_a_second_look_has_nothing_to_do(app_env):
    push_image("abc1234")
    sent = Recorder()
    up(app_env(hooks=[sent.hook]))
    ecs, elb = client("ecs"), client("elbv2")
    cluster = ecs.describe_clusters(clusters=[BACKEND], include=["SETTINGS", "TAGS"])["clusters"][0]
    assert cluster["settings"] == [{"name": "containerInsights", "value": "disabled"}]
    # sent explicitly (an account setting may say otherwise; moto's default says disabled)
    assert sent.of("CreateCluster")[0]["settings"] == [{"name": "containerInsights", "value": "disabled"}]
    assert sorted(cluster["capacityProviders"]) == ["FARGATE", "FARGATE_SPOT"]
    assert {t["key"]: t["value"] for t in cluster["tags"]} == {"Name": BACKEND, **OWNED}
    # security groups: the ALB's open on 80 (no certificate), the backend's on 8080 from the ALB's only
    alb_sg, backend_sg = group(ALB), group(BACKEND)
    assert [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in alb_sg["IpPermissions"]] == [(80, ["0.0.0.0/0"])]
    assert [(p["FromPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]], p["IpRanges"]) for p in backend_sg["IpPermissions"]] == [(8080, [alb_sg["GroupId"]], [])]
    assert alb_sg["Description"] == backend_sg["Description"] == "Managed by Terraform"
    # roles: trusted by ECS tasks; the secrets policy reads this env's DB secrets only
    iam = client("iam")
    attached = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=EXEC_ROLE)["AttachedPolicies"]}
    assert attached == {"AmazonECSTaskExecutionRolePolicy", "AmazonS3ReadOnlyAccess", POLICY}
    assert {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=BACKEND)["AttachedPolicies"]} == {"AmazonSSMManagedInstanceCore", "CloudWatchLogsFullAccess"}
    assert iam.get_role(RoleName=EXEC_ROLE)["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    policy_arn = f"arn:aws:iam::{ACCOUNT}:policy/{POLICY}"
    document = iam.get_policy_version(PolicyArn=policy_arn, VersionId="v1")["PolicyVersion"]["Document"]
    assert document["Statement"][0]["Resource"] == [
        f"arn:aws:secretsmanager:ap-northeast-1:{ACCOUNT}:secret:rds-main-stg-*", f"arn:aws:secretsmanager:ap-northeast-1:{ACCOUNT}:secret:rds-master-stg-*"]
    assert tags.as_dict(iam.list_policy_tags(PolicyArn=policy_arn)["Tags"]) == {"Name": POLICY, **OWNED}
    assert sent.of("CreateServiceLinkedRole") == [{"AWSServiceName": "ecs.amazonaws.com"}]
    # log group
    (logs,) = client("logs").describe_log_groups(logGroupNamePrefix=LOGS)["logGroups"]
    assert logs["retentionInDays"] == 7 and client("logs").list_tags_log_group(logGroupName=LOGS)["tags"] == {"Name": LOGS, **OWNED}
    # task definition: secrets by ARN and key, never a value
    service = ecs_service()
    td = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    (container,) = td["containerDefinitions"]
    secret_arn = client("secretsmanager").describe_secret(SecretId="rds-main-stg")["ARN"]
    assert container["image"] == f"{ACCOUNT}.dkr.ecr.ap-northeast-1.amazonaws.com/aws-practice-stg:abc1234"
    assert {s["name"]: s["valueFrom"] for s in container["secrets"]} == {
        "DB_HOST": f"{secret_arn}:DB_HOST::", "DB_PORT": f"{secret_arn}:DB_PORT::", "DB_NAME": f"{secret_arn}:DB_NAME::",
        "DB_USERNAME": f"{secret_arn}:DB_USER_NAME::", "DB_PASSWORD": f"{secret_arn}:DB_PASSWORD::"}
    password = json.loads(client("secretsmanager").get_secret_value(SecretId="rds-main-stg")["SecretString"])["DB_PASSWORD"]
    assert password not in json.dumps(sent.of("RegisterTaskDefinition"), default=str)
    assert (td["cpu"], td["memory"], td["networkMode"], td["requiresCompatibilities"]) == ("256", "512", "awsvpc", ["FARGATE"])
    assert td["runtimePlatform"] == {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"}
    assert container["logConfiguration"]["options"]["awslogs-group"] == LOGS
    assert (td["executionRoleArn"], td["taskRoleArn"]) == (f"arn:aws:iam::{ACCOUNT}:role/{EXEC_ROLE}", f"arn:aws:iam::{ACCOUNT}:role/{BACKEND}")
    # load balancer, target group, listener
    lb = elb.describe_load_balancers(Names=[ALB])["LoadBalancers"][0]
    tg = elb.describe_target_groups(Names=[BACKEND])["TargetGroups"][0]
    assert (lb["Scheme"], lb["Type"], lb["SecurityGroups"]) == ("internet-facing", "application", [alb_sg["GroupId"]])
    assert (tg["Protocol"], tg["Port"], tg["TargetType"], tg["HealthCheckPath"], tg["Matcher"]) == ("HTTP", 8080, "ip", "/", {"HttpCode": "200"})
    attributes = {a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
    assert attributes["deregistration_delay.timeout_seconds"] == "30"
    (listener,) = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert (listener["Protocol"], listener["Port"], listener["DefaultActions"][0]["TargetGroupArn"]) == ("HTTP", 80, tg["TargetGroupArn"])
    # the service: what AWS keeps but moto drops from its description is checked in the request
    (create,) = sent.of("CreateService")
    assert create["desiredCount"] == 1 and create["launchType"] == "FARGATE"
    assert create["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    assert create["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] == [backend_sg["GroupId"]]
    assert create["loadBalancers"] == [{"targetGroupArn": tg["TargetGroupArn"], "containerName": "api", "containerPort": 8080}]
    assert create["healthCheckGracePeriodSeconds"] == 60 and create["enableExecuteCommand"] is True
    assert create["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert {t["key"]: t["value"] for t in service["tags"]} == {"Name": BACKEND, **OWNED}
    assert app_changes(plan(app_env())) == []


def test_aws_order_alb_then_listener_then_service(app_env):
    """AWS refuses a service whose target group has no listener (moto does not): answered as AWS would.
    The listener's create is held back a moment, so a service that did not wait for it would come first."""
    import threading

    push_image("abc1234")
    done, service_tried = [], threading.Event()

    def aws_rules(model, **kwargs):
        if model.name == "CreateListener":
            service_tried.wait(1.0)
        if model.name == "CreateService":
            service_tried.set()
            if "CreateListener" not in done:
                from conftest import aws_error

                return aws_error("InvalidParameterException", "The target group with targetGroupArn ... does not have an associated load balancer.")
        return None

    def finished(model, **kwargs):
        done.append(model.name)

    up(app_env(hooks=[("before-call.*.*", aws_rules), ("after-call.*.*", finished)]))
    assert done.index("CreateLoadBalancer") < done.index("CreateListener") < done.index("CreateService")
    assert done.index("CreateTargetGroup") < done.index("CreateListener")


def test_the_service_linked_role_not_yet_usable_is_waited_for(app_env, clock):
    push_image("abc1234")
    not_yet = Fail("CreateCluster", "InvalidParameterException", "Unable to assume the service linked role. Please verify that the ECS service linked role exists.", times=2)
    sent = Recorder()
    up(app_env(hooks=[not_yet.hook, sent.hook]))
    assert not_yet.calls == 2 and clock.pauses == [2.0, 4.0]
    assert len(sent.of("CreateCluster")) == 3
    assert [c["clusterName"] for c in client("ecs").describe_clusters(clusters=[BACKEND])["clusters"]] == [BACKEND]


def test_a_service_linked_role_name_taken_is_success(app_env):
    """IAM lists a new role late: the role is there, the listing does not show it yet, the create says taken."""
    client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    hidden = []

    def listing_without_it(parsed, **kwargs):
        if not hidden:
            hidden.append(True)
            parsed["RoleDetailList"] = [r for r in parsed.get("RoleDetailList", []) if not r["RoleName"].lower().startswith("awsservicerolefor")]

    taken = Fail("CreateServiceLinkedRole", "InvalidInput", "Service role name AWSServiceRoleForECS has been taken in this account, please try again with a different name.")
    up(app_env(hooks=[taken.hook, ("after-call.iam.GetAccountAuthorizationDetails", listing_without_it)]), ["app-iam"])
    assert taken.calls == 1


def test_without_an_image_everything_but_the_service_is_built_and_the_plan_says_what_to_run(app_env):
    planned = plan(app_env())
    (note,) = [c for c in planned.changes if c.kind == "ECS service"]
    assert note.action is Action.REPORT and "awsprac image release --env stg --record-tag" in note.note
    up(app_env())
    assert client("ecs").describe_services(cluster=BACKEND, services=[BACKEND])["services"] == []
    assert client("ecs").list_task_definitions()["taskDefinitionArns"] == []
    assert client("elbv2").describe_load_balancers(Names=[ALB])["LoadBalancers"]
    # the image released: the next up adds the task definition and the service, nothing else
    push_image("abc1234")
    kinds = sorted(c.kind for c in app_changes(plan(app_env())))
    assert kinds == ["ECS service", "task definition"]


def test_a_recorded_tag_missing_from_the_repository_stops_before_any_write(app_env, capsys):
    push_image("abc1234", record=False)
    record_tag("nothere")
    calls = Calls()
    with pytest.raises(AwspracError, match="'nothere'.*not in ECR repository"):
        plan(app_env(hooks=[("before-call.*.*", calls)]))
    assert calls.writes == []


def test_a_new_tag_registers_a_revision_and_rolls_the_service(app_env):
    push_image("abc1234")
    up(app_env())
    push_image("def5678")
    changes = app_changes(plan(app_env()))
    assert {(c.kind, c.action) for c in changes} == {("task definition", Action.UPDATE), ("ECS service", Action.UPDATE)}
    (td,) = [c for c in changes if c.kind == "task definition"]
    assert fields(td)["image"][1].endswith(":def5678")
    up(app_env())
    service = ecs_service()
    assert service["taskDefinition"].endswith(":2")
    assert app_changes(plan(app_env())) == []


def test_drift_is_shown_per_setting_and_fixed(app_env):
    push_image("abc1234")
    ctx = app_env()
    up(ctx)
    ecs, elb, logs = client("ecs"), client("elbv2"), client("logs")
    ecs.update_cluster(cluster=BACKEND, settings=[{"name": "containerInsights", "value": "enabled"}])
    logs.put_retention_policy(logGroupName=LOGS, retentionInDays=30)
    tg = elb.describe_target_groups(Names=[BACKEND])["TargetGroups"][0]["TargetGroupArn"]
    elb.modify_target_group(TargetGroupArn=tg, HealthCheckPath="/health")
    elb.modify_target_group_attributes(TargetGroupArn=tg, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "300"}])
    ecs.update_service(cluster=BACKEND, service=BACKEND, desiredCount=3)
    changes = {c.kind: fields(c) for c in app_changes(plan(app_env()))}
    assert changes == {
        "ECS cluster": {"containerInsights": ("enabled", "disabled")},
        "log group": {"retention": ("30 days", "7 days")},
        "target group": {"health check path": ("/health", "/"), "deregistration delay": ("300s", "30s")},
        "ECS service": {"desired count": (3, 1)},
    }
    up(app_env())
    assert app_changes(plan(app_env())) == []
    assert ecs_service()["desiredCount"] == 1


def test_a_parked_service_is_not_drift(app_env):
    push_image("abc1234")
    up(app_env())
    client("ecs").update_service(cluster=BACKEND, service=BACKEND, desiredCount=0)
    assert app_changes(plan(app_env())) == []


def test_hand_made_resources_are_adopted_not_duplicated(app_env):
    """Made in the console by following the guide: found by name, tagged, reconciled."""
    push_image("abc1234")
    client("ecs").create_cluster(clusterName=BACKEND)
    client("logs").create_log_group(logGroupName=LOGS)
    client("iam").create_role(RoleName=EXEC_ROLE, AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    up(app_env(), TIER[:3])  # the VPC and subnets, to make the group and target group in
    vpc = app_env()
    runner.plan(vpc, runner.resolve(["vpc"]))
    vpc_id = vpc.observed["vpc"].id
    client("ec2").create_security_group(GroupName=ALB, Description="Managed by Terraform", VpcId=vpc_id)
    client("elbv2").create_target_group(Name=BACKEND, Protocol="HTTP", Port=8080, VpcId=vpc_id, TargetType="ip")
    adopted = {c.kind: c for c in app_changes(plan(app_env())) if c.action is Action.ADOPT}
    assert set(adopted) == {"ECS cluster", "log group", "IAM role", "security group", "target group"}
    assert "tags" in fields(adopted["ECS cluster"]) and fields(adopted["log group"])["retention"] == ("never expire", "7 days")
    up(app_env())
    assert app_changes(plan(app_env())) == []
    assert len(client("ecs").list_clusters()["clusterArns"]) == 1
    assert len(client("elbv2").describe_target_groups()["TargetGroups"]) == 1
    assert tags.as_dict(group(ALB)["Tags"]) == {"Name": ALB, **OWNED}
    assert client("logs").list_tags_log_group(logGroupName=LOGS)["tags"] == {"Name": LOGS, **OWNED}


def test_https_with_a_certificate_replaces_the_http_listener_and_port(app_env, cfg):
    front = ["vpc", "subnets", "app-network", "app-alb"]  # what a certificate changes: the listener and the ALB's group
    up(app_env(), front)
    acm = client("acm")
    cert = acm.request_certificate(DomainName="api.example.com")["CertificateArn"]
    https = app_cfg(cfg, certificate_arn=cert)
    changes = app_changes(plan(app_env(config=https), front))
    assert {(c.kind, c.action, c.name) for c in changes} >= {
        ("listener", Action.CREATE, f"{ALB}:443"), ("listener", Action.DELETE, f"{ALB}:80"), ("security group", Action.UPDATE, ALB)}
    up(app_env(config=https), front)
    lb = client("elbv2").describe_load_balancers(Names=[ALB])["LoadBalancers"][0]["LoadBalancerArn"]
    (listener,) = client("elbv2").describe_listeners(LoadBalancerArn=lb)["Listeners"]
    assert (listener["Protocol"], listener["Port"], listener["Certificates"][0]["CertificateArn"]) == ("HTTPS", 443, cert)
    assert [p["FromPort"] for p in group(ALB)["IpPermissions"]] == [443]
    assert app_changes(plan(app_env(config=https), front)) == []


def test_the_db_group_lets_the_backend_in_and_prune_keeps_that_rule(app_env, cfg):
    # The DB group's rules are step db-ingress's; the tunnel's (from the NAT group) is off here: no NAT is built.
    no_tunnel = dataclasses.replace(app_cfg(cfg), database=dataclasses.replace(cfg.database, tunnel=False))
    names = ["vpc", "subnets", "secrets", "app-network", "rds", "db-ingress"]
    up(app_env(config=no_tunnel), names)
    db_sg, backend = group("aws-practice-db-stg"), group(BACKEND)
    assert [(p["FromPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]]) for p in db_sg["IpPermissions"]] == [(5432, [backend["GroupId"]])]
    assert plan(app_env(config=no_tunnel, prune=True), names).changes == []
