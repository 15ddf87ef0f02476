"""End to end: the installed `awsprac`, in a subprocess, against a moto server on 127.0.0.1."""

import json
from collections import Counter

import boto3
import pytest

from awsprac.steps import ORDER
from conftest import is_write, resource_count

N = resource_count()

pytestmark = pytest.mark.e2e


def client(server, service="ec2"):
    return boto3.client(service, region_name="ap-northeast-1", endpoint_url=server.endpoint)


def owned(server):
    """The network resources tagged as env stg's (each step's own tests check the rest)."""
    filters = [{"Name": "tag:awsprac:env", "Values": ["stg"]}]
    ec2 = client(server)
    return (
        [v["VpcId"] for v in ec2.describe_vpcs(Filters=filters)["Vpcs"]]
        + [s["SubnetId"] for s in ec2.describe_subnets(Filters=filters)["Subnets"]]
        + [i["InternetGatewayId"] for i in ec2.describe_internet_gateways(Filters=filters)["InternetGateways"]]
    )


def test_up_again_is_a_no_op_and_destroy_leaves_only_foreign_things(awsprac, server):
    foreign = client(server).create_vpc(
        CidrBlock="10.0.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "aws-practice-stg-hand-made"}]}],
    )["Vpc"]["VpcId"]

    first = awsprac("up", "--env", "stg", "--yes")
    assert first.returncode == 0, first.stderr
    assert f"Plan: {N} to create, 0 to update, 0 to delete." in first.stdout
    assert len(owned(server)) == 6

    server.start_recording()
    second = awsprac("up", "--env", "stg", "--yes")
    actions = server.recorded_actions()
    assert second.returncode == 0, second.stderr
    assert "no changes, everything is in sync." in second.stdout
    assert actions, "the recorder saw nothing: the run did not reach the server"
    assert [a for a in actions if is_write(a)] == []
    # Each kind read once, batched (issue 7: at most 20 calls): only the VPC's two DNS attributes take a call each.
    assert len(actions) <= 20, actions
    assert [a for a, n in Counter(actions).items() if n > 1] == ["DescribeVpcAttribute"], actions

    status = awsprac("status", "--env", "stg", "--json")
    assert {row["sync"] for row in json.loads(status.stdout)["resources"]} == {"in sync"}
    outputs = json.loads(awsprac("outputs", "--env", "stg", "--json").stdout)["outputs"]
    assert outputs["vpc_id"] in owned(server)

    declined = awsprac("destroy", "--env", "stg", input="no\n")
    assert declined.returncode == 1 and len(owned(server)) == 6

    gone = awsprac("destroy", "--env", "stg", "--yes")
    assert gone.returncode == 0, gone.stderr
    assert owned(server) == []
    assert client(server).describe_vpcs(VpcIds=[foreign])["Vpcs"][0]["VpcId"] == foreign

    again = awsprac("destroy", "--env", "stg", "--yes")
    assert again.returncode == 0 and "nothing owned by env stg is left to delete" in again.stderr


def test_plan_and_a_declined_up_send_no_write(awsprac, server):
    server.start_recording()
    plan = awsprac("plan", "--env", "stg")
    declined = awsprac("up", "--env", "stg", input="n\n")
    actions = server.recorded_actions()
    assert plan.returncode == 0 and f"Plan: {N} to create" in plan.stdout
    assert declined.returncode == 1
    assert [a for a in actions if is_write(a)] == []


def test_bad_input_sends_nothing_at_all(awsprac, server):
    (awsprac.cwd / "envs" / "stg.toml").write_text('[network]\nazs = ["ap-northeast-1a", "eu-west-1a"]\n')
    server.start_recording()
    results = [
        awsprac("up", "--env", "stg", "--yes"),
        awsprac("up", "--env", "nope", "--yes"),
        awsprac("step", "nat-gw", "--env", "stg", "--yes"),
    ]
    assert server.recorded_actions() == []
    for result in results:
        assert result.returncode == 2
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_step_by_step_in_dependency_order(awsprac, server):
    early = awsprac("step", "subnets", "--env", "stg", "--yes")
    assert early.returncode == 2
    assert early.stderr == "error: step subnets needs step vpc, which is not built yet: run `awsprac step vpc --env stg` first (or `awsprac up --env stg`)\n"
    for name in ORDER:  # every step, in the order docs/reference.md lists them
        result = awsprac("step", name, "--env", "stg", "--yes")
        assert result.returncode == 0, result.stderr
    assert len(owned(server)) == 6
    assert "no changes" in awsprac("plan", "--env", "stg").stdout


def test_sandbox_flag_builds_and_shows_it(awsprac, server):
    result = awsprac("up", "--env", "stg", "--sandbox")
    assert result.returncode == 0, result.stderr
    assert "SANDBOX" in result.stderr
    assert "Built in the sandbox" in result.stdout and result.stdout.count("in sync") == N
    assert owned(server) == [], "--sandbox must not touch the AWS_ENDPOINT_URL it was given"


def test_sandbox_command_serves_other_terminals(awsprac, tmp_path):
    import os
    import shutil
    import signal
    import subprocess
    import sys
    from pathlib import Path

    exe = shutil.which("awsprac", path=str(Path(sys.executable).parent)) or shutil.which("awsprac")
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    box = subprocess.Popen([exe, "sandbox"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        endpoint = box.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:")
        env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
        built = subprocess.run([exe, "up", "--env", "stg", "--yes"], cwd=awsprac.cwd, env=env, capture_output=True, text=True, timeout=120)
        assert built.returncode == 0, built.stderr
        vpcs = boto3.client("ec2", region_name="ap-northeast-1", endpoint_url=endpoint).describe_vpcs(
            Filters=[{"Name": "tag:Name", "Values": ["aws-practice-stg"]}]
        )["Vpcs"]
        assert len(vpcs) == 1
    finally:
        box.send_signal(signal.SIGINT)
        box.wait(timeout=30)
    assert f"export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_ENDPOINT_URL={endpoint}" in box.stderr.read()


def test_two_runs_at_once_build_one_env(awsprac, server):
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from proxy import Proxy

    slow = Proxy(server.endpoint, delay=0.03).start()  # both runs plan before either applies
    try:
        exe = shutil.which("awsprac", path=str(Path(sys.executable).parent)) or shutil.which("awsprac")
        env = {**os.environ, "AWS_ENDPOINT_URL": slow.endpoint}
        runs = [subprocess.Popen([exe, "up", "--env", "stg", "--yes"], cwd=awsprac.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.wait(timeout=180), p.stderr.read()) for p in runs]
    finally:
        slow.stop()
    assert sorted(code for code, _ in results) in ([0, 0], [0, 1]), results
    for code, err in results:
        if code == 1:
            assert "error: env stg is locked by another awsprac run" in err
    names = [v["Tags"] for v in client(server).describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-stg"]}])["Vpcs"]]
    assert len(names) == 1 and len(owned(server)) == 6
