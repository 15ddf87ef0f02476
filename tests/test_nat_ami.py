"""`awsprac nat bake-ami` as a user runs it (in-process moto): what is sent, reuse, sharing, refusals."""


import boto3
import botocore.awsrequest
import pytest

from awsprac.engine import tags

from conftest import hook_every_session, run_cli as run

REGION = "ap-northeast-1"
NAME = "aws-practice-nat-instance"
OWNED = {"awsprac:project": "aws-practice", "awsprac:env": "stg"}
PRD = "210987654321"


@pytest.fixture
def sent(monkeypatch):
    """Every call the CLI makes, with its parameters (a provide-client-params hook on each new session)."""
    calls = Calls()
    calls.hooks.append(("provide-client-params.*.*", lambda params, model, **kw: calls.append((model.name, dict(params)))))
    hook_every_session(monkeypatch, calls.hooks)
    return calls


class Calls(list):
    """(operation, params) pairs; `hooks` are more (event, handler) pairs for the sessions made after."""

    def __init__(self):
        super().__init__()
        self.hooks = []


def ec2():
    return boto3.client("ec2", region_name=REGION)


def images():
    return ec2().describe_images(Owners=["self"])["Images"]


def writes(calls):
    return [n for n, _ in calls if not n.startswith(("Describe", "Get", "List"))]


@pytest.fixture
def built(capsys, mocked, clock):
    code, out, err = run(capsys, "up", "--env", "stg", "--yes")
    assert code == 0, err


def test_without_a_nat_instance_it_says_what_to_run(capsys, mocked):
    code, out, err = run(capsys, "nat", "bake-ami", "--env", "stg", "--yes")
    assert code == 2
    assert err == "error: env stg has no NAT instance aws-practice-nat-1a-stg to bake from: `awsprac up --env stg` builds it (with nat.mode = \"instance\")\n"


def test_a_bad_account_is_refused_before_anything_is_sent(capsys, sent):
    code, out, err = run(capsys, "nat", "bake-ami", "--env", "stg", "--share-with", "prd")
    assert code == 2 and "'prd' must be a 12-digit AWS account id" in err and err.count("\n") == 1
    assert sent == []


def test_bake_sends_the_guide_settings_then_reuses_the_image(built, capsys, sent):
    code, out, err = run(capsys, "nat", "bake-ami", "--env", "stg", "--yes")
    assert code == 0, err
    (create,) = [p for n, p in sent if n == "CreateImage"]
    (instance,) = [i for r in ec2().describe_instances(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-nat-1a-stg"]}])["Reservations"] for i in r["Instances"]]
    assert create["InstanceId"] == instance["InstanceId"] and create["Name"] == NAME
    assert create["NoReboot"] is False  # the guide: reboot on, for a consistent disk
    assert create["BlockDeviceMappings"] == [{"DeviceName": instance["RootDeviceName"], "Ebs": {"VolumeSize": 8, "VolumeType": "gp3", "DeleteOnTermination": True}}]
    # AWS tags the snapshots CreateImage makes with the request's "snapshot" tag specification (moto does
    # not: awsprac's sandbox patch does, so what moto shows afterwards would only test that patch): the
    # request is what proves the snapshot is tagged as this env's at creation.
    specs = {s["ResourceType"]: tags.as_dict(s["Tags"]) for s in create["TagSpecifications"]}
    assert specs == {"image": {"Name": NAME, **OWNED}, "snapshot": {"Name": NAME, **OWNED}}
    (image,) = images()
    assert image["Name"] == NAME and tags.as_dict(image["Tags"]) == {"Name": NAME, **OWNED}
    assert image["ImageId"] in out and 'ami = "{project}-nat-instance", ami_owner = "123456789012"' in err
    assert "CreateTags" not in writes(sent)

    sent.clear()
    code, out, err = run(capsys, "nat", "bake-ami", "--env", "stg", "--yes")
    assert code == 0 and "exists already: reused, not baked again" in err
    assert writes(sent) == [] and len(images()) == 1


def test_sharing_with_the_prd_account_covers_image_and_snapshot_once(built, capsys, sent):
    code, out, err = run(capsys, "nat", "bake-ami", "--env", "stg", "--yes", "--share-with", PRD)
    assert code == 0, err
    (image,) = images()
    client = ec2()
    assert client.describe_image_attribute(ImageId=image["ImageId"], Attribute="launchPermission")["LaunchPermissions"] == [{"UserId": PRD}]
    snapshot = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert client.describe_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission")["CreateVolumePermissions"] == [{"UserId": PRD}]
    assert PRD in out
    sent.clear()
    code, out, err = run(capsys, "nat", "bake-ami", "--env", "stg", "--yes", "--share-with", PRD)
    assert code == 0 and writes(sent) == []


def test_it_asks_before_rebooting_the_nat_and_a_no_changes_nothing(built, capsys, monkeypatch, sent):
    code, out, err = run(capsys, "nat", "bake-ami", "--env", "stg", stdin="n\n", monkeypatch=monkeypatch)
    assert code == 1 and "Baking reboots NAT instance aws-practice-nat-1a-stg" in err and "cancelled: nothing was changed" in err
    assert images() == [] and writes(sent) == []


def test_no_reboot_asks_nothing_and_says_so_to_aws(built, capsys, monkeypatch, sent):
    code, out, err = run(capsys, "nat", "bake-ami", "--env", "stg", "--no-reboot", stdin="", monkeypatch=monkeypatch)
    assert code == 0, err
    assert [p["NoReboot"] for n, p in sent if n == "CreateImage"] == [True]


def answer(parsed):
    return botocore.awsrequest.AWSResponse("https://aws.invalid", 200, {}, None), {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200}}


def test_it_waits_until_the_image_is_available(built, capsys, sent, clock):
    states = iter(["pending", "pending"])

    def pending(params, model, **kwargs):
        image_id = params["body"].get("ImageId.1")
        state = next(states, None) if image_id else None
        if state:
            return answer({"Images": [{"ImageId": image_id, "State": state, "Name": NAME}]})

    sent.hooks.append(("before-call.ec2.DescribeImages", pending))
    code, out, err = run(capsys, "nat", "bake-ami", "--env", "stg", "--yes")
    assert code == 0, err
    assert clock.pauses == [15, 15]
    assert "available" in out


def test_a_failed_image_is_reported_with_its_reason(built, capsys, sent, clock):
    def failed(params, model, **kwargs):
        image_id = params["body"].get("ImageId.1")
        if image_id:
            return answer({"Images": [{"ImageId": image_id, "State": "failed", "StateReason": {"Code": "Server.InternalError", "Message": "Internal error"}}]})

    sent.hooks.append(("before-call.ec2.DescribeImages", failed))
    code, out, err = run(capsys, "nat", "bake-ami", "--env", "stg", "--yes")
    assert code == 1 and "is failed: Internal error; deregister it, then bake again" in err
