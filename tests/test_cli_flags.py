"""Every `up` and `destroy` flag through the command line, proven by the request AWS received.

The steps' own tests build `Options(...)` directly; these prove the flag gets from the command line to
the call (a flag the CLI dropped on the way would leave those green)."""

import boto3
import pytest

from awsprac.engine import tags

from conftest import build, hook_every_session, run_cli as run
from db_helpers import Recorder

REGION = "ap-northeast-1"
OWNED = {"awsprac:project": "aws-practice", "awsprac:env": "stg"}


def ec2():
    return boto3.client("ec2", region_name=REGION)


@pytest.fixture
def sent(monkeypatch, mocked):
    """What every client the CLI makes sends, per operation (parameters as awsprac passed them)."""
    recorder = Recorder()
    hook_every_session(monkeypatch, [recorder.hook])
    return recorder


def nat_group_id() -> str:
    (group,) = ec2().describe_security_groups(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-nat-stg"]}])["SecurityGroups"]
    return group["GroupId"]


def a_rule_added_by_hand(group_id: str) -> str:
    ec2().authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.5/32"}]}])
    rules = ec2().describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]
    (rule,) = [r["SecurityGroupRuleId"] for r in rules if r.get("CidrIpv4") == "203.0.113.5/32"]
    return rule


def test_up_keeps_a_rule_added_by_hand_without_prune(capsys, make_ctx, sent):
    build(make_ctx())
    a_rule_added_by_hand(nat_group_id())
    code, out, err = run(capsys, "up", "--env", "stg", "--yes")
    assert code == 0, err
    assert sent.of("RevokeSecurityGroupIngress") == []


def test_up_prune_revokes_the_rule_added_by_hand(capsys, make_ctx, sent):
    build(make_ctx())
    group_id = nat_group_id()
    rule = a_rule_added_by_hand(group_id)
    code, out, err = run(capsys, "up", "--env", "stg", "--yes", "--prune")
    assert code == 0, err
    assert sent.of("RevokeSecurityGroupIngress") == [{"GroupId": group_id, "SecurityGroupRuleIds": [rule]}]


def test_up_apply_immediately_modifies_prd_now_not_at_the_window(capsys, make_ctx, sent):
    from awsprac import config

    from conftest import ENVS

    build(make_ctx(config=config.load(ENVS, "prd")))
    rds = boto3.client("rds", region_name=REGION)
    rds.modify_db_instance(DBInstanceIdentifier="aws-practice-prd", BackupRetentionPeriod=5, ApplyImmediately=True)
    code, out, err = run(capsys, "up", "--env", "prd", "--yes")
    assert code == 0, err
    assert [p["ApplyImmediately"] for p in sent.of("ModifyDBInstance")] == [False]  # prd's env file: at the window

    rds.modify_db_instance(DBInstanceIdentifier="aws-practice-prd", BackupRetentionPeriod=5, ApplyImmediately=True)
    sent.sent.clear()
    code, out, err = run(capsys, "up", "--env", "prd", "--yes", "--apply-immediately")
    assert code == 0, err
    assert [p["ApplyImmediately"] for p in sent.of("ModifyDBInstance")] == [True]


@pytest.fixture
def built_with_a_baked_ami(make_ctx):
    """The env built, and a baked NAT AMI owned by it (as `awsprac nat bake` leaves one)."""
    ctx = make_ctx()
    build(ctx)
    instance_id = ctx.observed["nat"].instance.id
    return ec2().create_image(
        InstanceId=instance_id, Name="aws-practice-nat-instance",
        TagSpecifications=[{"ResourceType": "image", "Tags": tags.as_list({"Name": "aws-practice-nat-instance", **OWNED})}],
    )["ImageId"]


def destroyed(capsys, sent, *flags):
    code, out, err = run(capsys, "destroy", "--env", "stg", "--yes", *flags)
    assert code == 0, err
    (db,) = sent.of("DeleteDBInstance")
    (secret,) = sent.of("DeleteSecret")
    return db, secret, sent.of("DeregisterImage")


def test_destroy_without_flags_keeps_snapshot_recovery_window_and_ami(capsys, built_with_a_baked_ami, sent):
    db, secret, deregistered = destroyed(capsys, sent)
    assert db["SkipFinalSnapshot"] is False and db["FinalDBSnapshotIdentifier"].startswith("aws-practice-stg-final-")
    assert secret.get("ForceDeleteWithoutRecovery") is not True and secret["RecoveryWindowInDays"] == 7
    assert deregistered == []


def test_destroy_skip_final_snapshot(capsys, built_with_a_baked_ami, sent):
    db, secret, deregistered = destroyed(capsys, sent, "--skip-final-snapshot")
    assert db == {"DBInstanceIdentifier": "aws-practice-stg", "SkipFinalSnapshot": True}
    assert secret["RecoveryWindowInDays"] == 7 and deregistered == []


def test_destroy_force_delete_secret(capsys, built_with_a_baked_ami, sent):
    db, secret, deregistered = destroyed(capsys, sent, "--force-delete-secret")
    assert secret["ForceDeleteWithoutRecovery"] is True and "RecoveryWindowInDays" not in secret
    assert db["SkipFinalSnapshot"] is False and deregistered == []


def test_destroy_include_ami(capsys, built_with_a_baked_ami, sent):
    db, secret, deregistered = destroyed(capsys, sent, "--include-ami")
    assert deregistered == [{"ImageId": built_with_a_baked_ami, "DeleteAssociatedSnapshots": True}]  # its snapshots go with it
    assert db["SkipFinalSnapshot"] is False and secret["RecoveryWindowInDays"] == 7
