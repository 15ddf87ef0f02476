"""Crash anywhere with the app tier on, re-run converges (test_crash.py's proxy and method, over the
tier's writes too): `up` is SIGKILLed right after the k-th write AWS accepted, then a plain `up` runs;
the result must equal a clean run's, with nothing left to do."""

from __future__ import annotations

import os

import boto3
import pytest

import test_crash
from test_crash import exe, inventory, killed_then_rerun, proxy  # noqa: F401  (fixtures and helpers)
from test_e2e_app import enable_app, push_image

pytestmark = pytest.mark.e2e

# Writes of a clean `up` of stg with the tier on and an image released.
WRITES_WITH_THE_APP = 63  # 62, and the DB group's inbound rule from the NAT group (database.tunnel, step db-ingress)


def app_inventory(endpoint: str) -> list[tuple[str, str]]:
    def c(service):
        return boto3.client(service, region_name="ap-northeast-1", endpoint_url=endpoint)

    names = inventory(endpoint)
    ecs, elb = c("ecs"), c("elbv2")
    for cluster in ecs.describe_clusters(clusters=ecs.list_clusters()["clusterArns"], include=["SETTINGS"])["clusters"]:
        names.append(("ecs cluster", f"{cluster['clusterName']} {cluster['status']} settings={cluster.get('settings')}"))
        for arn in ecs.list_services(cluster=cluster["clusterArn"])["serviceArns"]:
            s = ecs.describe_services(cluster=cluster["clusterArn"], services=[arn])["services"][0]
            names.append(("ecs service", f"{s['serviceName']} {s['status']} desired={s['desiredCount']} td={s['taskDefinition'].rsplit('/', 1)[-1]}"))
    names += [("task definition", a.rsplit("/", 1)[-1]) for a in ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]]
    for lb in elb.describe_load_balancers()["LoadBalancers"]:
        listeners = [f"{x['Protocol']} {x['Port']}" for x in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]]
        names.append(("load balancer", f"{lb['LoadBalancerName']} listeners={listeners}"))
    for tg in elb.describe_target_groups()["TargetGroups"]:
        attributes = {a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
        names.append(("target group", f"{tg['TargetGroupName']} delay={attributes['deregistration_delay.timeout_seconds']}"))
    names += [("log group", f"{g['logGroupName']} retention={g.get('retentionInDays')}") for g in c("logs").describe_log_groups()["logGroups"]]
    names += [("iam policy", p["PolicyName"]) for p in c("iam").list_policies(Scope="Local")["Policies"]]
    for group in c("ec2").describe_security_groups()["SecurityGroups"]:
        peers = sorted(f"{p.get('FromPort')}<-{g['GroupId'] and 'group'}" for p in group.get("IpPermissions", []) for g in p.get("UserIdGroupPairs", []))
        if peers:
            names.append(("group rules", f"{group['GroupName']} {peers}"))
    return sorted(names)


def release(server) -> None:
    """The repository as awsprac makes it (so `up` adopts nothing), with an image and its tag recorded."""
    ecr = boto3.client("ecr", region_name="ap-northeast-1", endpoint_url=server.endpoint)
    try:
        ecr.create_repository(repositoryName="aws-practice-stg", imageTagMutability="IMMUTABLE", tags=[
            {"Key": "Name", "Value": "aws-practice-stg"}, {"Key": "awsprac:project", "Value": "aws-practice"}, {"Key": "awsprac:env", "Value": "stg"}])
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    push_image(server, "abc1234")


@pytest.fixture(scope="session")
def clean_app():
    return {}


def clean(exe, awsprac, server, proxy, cache):  # noqa: F811
    return test_crash.clean(exe, awsprac, server, proxy, cache, inventory_of=app_inventory, before=release)


@pytest.fixture
def app_on(awsprac):
    enable_app(awsprac)
    return awsprac


def test_clean_run_write_count_with_the_app(exe, app_on, server, proxy, clean_app):  # noqa: F811
    assert clean(exe, app_on, server, proxy, clean_app)["writes"] == WRITES_WITH_THE_APP, "update WRITES_WITH_THE_APP"


# Every twentieth write and the last one, so the suite stays quick (test_crash.py tries every third of
# the writes without the tier); CRASH_EVERY=1 tries them all.
CRASH_POINTS = sorted(set(range(2, WRITES_WITH_THE_APP + 1, int(os.environ.get("CRASH_EVERY", "20")))) | {WRITES_WITH_THE_APP})


@pytest.mark.parametrize("k", CRASH_POINTS)
def test_killed_after_write_k_with_the_app_then_rerun_equals_a_clean_run(k, exe, app_on, server, proxy, clean_app):  # noqa: F811
    expected = clean(exe, app_on, server, proxy, clean_app)["inventory"]
    release(server)
    killed_then_rerun(k, exe, app_on.cwd, server, proxy, expected, app_inventory)
