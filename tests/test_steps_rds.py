"""Step `rds` against in-process moto: docs/reference.md section 5 exactly, what is SENT, engine version lookup, drift
(in place now / at the window / reported), waiting with a fake clock, DB_HOST, adoption, teardown."""

import re

import pytest

from awsprac import config
from awsprac.steps.rds import dbsecret
from awsprac.engine import runner, tags, waiting
from awsprac.engine.errors import AmbiguousResource
from awsprac.engine.plan import Action

from conftest import ENVS
from db_helpers import (
    CREATING, DB, OWNED, SECRET, DescribeDb, Fail, FakeClock, Recorder, client, db, destroy, ok, plan, secret_value, up,
)

PRD_OWNED = {"awsprac:project": "aws-practice", "awsprac:env": "prd"}


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(waiting, "clock", fake)
    return fake


@pytest.fixture
def prd():
    return config.load(ENVS, "prd")


def db_changes(planned, kind="DB instance"):
    return [c for c in planned.changes if c.kind == kind]


def fields(change) -> dict:
    return {f.field: (f.have, f.want) for f in change.fields}


# --- building it ---


def test_up_builds_spec_section_5_exactly(ctx):
    up(ctx)
    ec2, rds = client("ec2"), client("rds")
    vpc_id = ctx.observed["vpc"].id
    (sg,) = ec2.describe_security_groups(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-db-stg"]}])["SecurityGroups"]
    assert (sg["VpcId"], sg["GroupName"], sg["Description"]) == (vpc_id, "aws-practice-db-stg", "Managed by Terraform")
    # stg's database.tunnel: 5432 from the NAT's group only (test_db_sg_rules.py has the rest)
    nat_sg = ctx.observed["nat"].sg.id
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]], p["IpRanges"])
            for p in sg["IpPermissions"]] == [("tcp", 5432, 5432, [nat_sg], [])]
    assert [(r["IpProtocol"], [x["CidrIp"] for x in r["IpRanges"]]) for r in sg["IpPermissionsEgress"]] == [("-1", ["0.0.0.0/0"])]
    assert tags.as_dict(sg["Tags"]) == {"Name": "aws-practice-db-stg", **OWNED}

    (group,) = rds.describe_db_subnet_groups(DBSubnetGroupName="aws-practice-db-subnet-group-stg")["DBSubnetGroups"]
    private = {ctx.observed["subnets"].subnets[n].id for n in ("private-subnet-1a-stg", "private-subnet-1c-stg")}
    assert group["DBSubnetGroupDescription"] == "Managed by Terraform"
    assert {s["SubnetIdentifier"] for s in group["Subnets"]} == private
    assert tags.as_dict(rds.list_tags_for_resource(ResourceName=group["DBSubnetGroupArn"])["TagList"]) == {"Name": "aws-practice-db-subnet-group-stg", **OWNED}

    (params,) = rds.describe_db_parameter_groups(DBParameterGroupName="aws-practice-db-parameter-group-stg")["DBParameterGroups"]
    assert (params["DBParameterGroupFamily"], params["Description"]) == ("postgres17", "Managed by Terraform")
    assert tags.as_dict(rds.list_tags_for_resource(ResourceName=params["DBParameterGroupArn"])["TagList"])["awsprac:env"] == "stg"

    d = db()
    assert {k: d[k] for k in (
        "Engine", "DBInstanceClass", "StorageType", "AllocatedStorage", "MaxAllocatedStorage", "MasterUsername", "DBName",
        "AvailabilityZone", "MultiAZ", "PubliclyAccessible", "BackupRetentionPeriod", "PreferredBackupWindow",
        "CopyTagsToSnapshot", "StorageEncrypted", "MonitoringInterval", "AutoMinorVersionUpgrade", "DeletionProtection",
        "IAMDatabaseAuthenticationEnabled", "EnabledCloudwatchLogsExports",
    )} == {
        "Engine": "postgres", "DBInstanceClass": "db.t4g.micro", "StorageType": "gp3", "AllocatedStorage": 20,
        "MaxAllocatedStorage": 1000, "MasterUsername": "postgres", "DBName": "aws_practice",
        "AvailabilityZone": "ap-northeast-1a", "MultiAZ": False, "PubliclyAccessible": False, "BackupRetentionPeriod": 1,
        "PreferredBackupWindow": "16:00-19:00", "CopyTagsToSnapshot": True, "StorageEncrypted": True, "MonitoringInterval": 0,
        "AutoMinorVersionUpgrade": True, "DeletionProtection": False, "IAMDatabaseAuthenticationEnabled": False,
        "EnabledCloudwatchLogsExports": [],
    }
    assert d["EngineVersion"].split(".")[0] == "17"
    assert d["Endpoint"]["Port"] == 5432
    assert d["DBSubnetGroup"]["DBSubnetGroupName"] == "aws-practice-db-subnet-group-stg"
    assert [g["DBParameterGroupName"] for g in d["DBParameterGroups"]] == ["aws-practice-db-parameter-group-stg"]
    assert [g["VpcSecurityGroupId"] for g in d["VpcSecurityGroups"]] == [sg["GroupId"]]
    assert tags.as_dict(d["TagList"]) == {"Name": DB, **OWNED}
    # The password it was created with is the stored one, and DB_HOST is the endpoint.
    assert secret_value()["DB_HOST"] == d["Endpoint"]["Address"]


def test_create_sends_every_spec_setting_and_the_stored_password(make_ctx):
    sent = Recorder()
    up(make_ctx(hooks=[sent.hook]))
    (create,) = sent.of("CreateDBInstance")
    password = create.pop("MasterUserPassword")
    assert password == secret_value()["DB_PASSWORD"]
    vpc_sg = client("ec2").describe_security_groups(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-db-stg"]}])["SecurityGroups"][0]["GroupId"]
    assert create == {
        "DBInstanceIdentifier": DB, "Engine": "postgres", "EngineVersion": "17",  # moto has no engine lookup: major only
        "DBInstanceClass": "db.t4g.micro", "StorageType": "gp3", "AllocatedStorage": 20, "MaxAllocatedStorage": 1000,
        "MasterUsername": "postgres", "DBName": "aws_practice", "Port": 5432,
        "AvailabilityZone": "ap-northeast-1a", "MultiAZ": False, "DBSubnetGroupName": "aws-practice-db-subnet-group-stg",
        "PubliclyAccessible": False, "VpcSecurityGroupIds": [vpc_sg], "DBParameterGroupName": "aws-practice-db-parameter-group-stg",
        "BackupRetentionPeriod": 1, "PreferredBackupWindow": "16:00-19:00", "PreferredMaintenanceWindow": "tue:20:00-tue:20:30",
        "CopyTagsToSnapshot": True, "StorageEncrypted": True, "EnablePerformanceInsights": True, "PerformanceInsightsRetentionPeriod": 7,
        "MonitoringInterval": 0, "EnableIAMDatabaseAuthentication": False, "AutoMinorVersionUpgrade": True,
        "DeletionProtection": False, "Tags": tags.as_list({"Name": DB, **OWNED}),
    }
    # gp3 below 400 GiB: no IOPS/throughput; default aws/rds key; no log exports
    for absent in ("Iops", "StorageThroughput", "KmsKeyId", "EnableCloudwatchLogsExports", "ManageMasterUserPassword"):
        assert absent not in create
    (group,) = sent.of("CreateDBParameterGroup")
    assert group["DBParameterGroupFamily"] == "postgres17" and group["Description"] == "Managed by Terraform"
    (subnets,) = sent.of("CreateDBSubnetGroup")
    assert subnets["DBSubnetGroupDescription"] == "Managed by Terraform" and len(subnets["SubnetIds"]) == 2
    for op in ("CreateDBSubnetGroup", "CreateDBParameterGroup", "CreateSecurityGroup"):
        assert sent.of(op), op
    assert "AddTagsToResource" not in sent.names and "CreateTags" not in sent.names


def test_engine_version_and_family_come_from_aws_default_when_aws_answers(make_ctx):
    sent = Recorder()

    def engine_versions(model, **kwargs):
        if model.name == "DescribeDBEngineVersions":
            return ok({"DBEngineVersions": [{"Engine": "postgres", "EngineVersion": "17.5", "DBParameterGroupFamily": "postgres17", "IsDefault": True}]})

    ctx = make_ctx(hooks=[sent.hook, ("before-call.rds.DescribeDBEngineVersions", engine_versions)])
    planned = up(ctx)
    assert sent.of("DescribeDBEngineVersions")[0] == {"Engine": "postgres", "EngineVersion": "17", "DefaultOnly": True}
    assert sent.of("CreateDBInstance")[0]["EngineVersion"] == "17.5"
    assert sent.of("CreateDBParameterGroup")[0]["DBParameterGroupFamily"] == "postgres17"
    (create,) = db_changes(planned)
    assert fields(create)["engine"] == (None, "postgres 17.5 (AWS's default minor)")


def test_engine_lookup_falls_back_to_the_major_where_the_api_is_missing(ctx):
    # moto: DescribeDBEngineVersions is not implemented. RDS takes a major alone and picks its default minor.
    planned = plan(ctx)
    assert fields(db_changes(planned)[0])["engine"] == (None, "postgres 17 (major only: RDS picks the default minor)")
    assert fields(db_changes(planned, "DB parameter group")[0])["family"] == (None, "postgres17 (from postgres 17)")


def test_engine_lookup_errors_that_are_not_a_missing_api_are_not_hidden(make_ctx):
    denied = Fail("DescribeDBEngineVersions", "AccessDenied", "User is not authorized to perform: rds:DescribeDBEngineVersions", times=None, status=403)
    with pytest.raises(Exception, match="AccessDenied"):
        plan(make_ctx(hooks=[denied.hook]))


def test_no_default_version_of_the_major_is_a_clear_error(make_ctx):
    def none(model, **kwargs):
        return ok({"DBEngineVersions": []})

    with pytest.raises(Exception, match=r"AWS offers no postgres 17 version in ap-northeast-1: set database.engine_major"):
        plan(make_ctx(hooks=[("before-call.rds.DescribeDBEngineVersions", none)]))


def test_second_up_plans_and_writes_nothing(ctx, make_ctx):
    up(ctx)
    sent = Recorder()
    again = make_ctx(hooks=[sent.hook])
    planned = plan(again)
    assert planned.changes == []
    assert runner.apply(again, runner.resolve(None), planned).applied == []
    assert sent.writes == []
    assert len(client("secretsmanager").list_secret_version_ids(SecretId=SECRET)["Versions"]) == 2  # the create, then DB_HOST


# --- drift ---


def test_a_newer_minor_is_not_drift_but_another_major_is_reported(ctx, make_ctx):
    up(ctx)
    assert plan(make_ctx(hooks=[DescribeDb({"EngineVersion": "17.9"}).hook])).changes == []
    group, report = plan(make_ctx(hooks=[DescribeDb({"EngineVersion": "16.4"}).hook])).changes
    assert report.action is Action.REPORT and fields(report)["engine major"] == ("16", "17")
    assert "--allow-major-version-upgrade" in report.note
    # A 16 instance uses a postgres16 parameter group: that one is reported too (it cannot change family).
    assert group.action is Action.REPORT and fields(group)["family"] == ("postgres16", "postgres17")


def test_in_place_drift_is_planned_and_applied_at_once_in_stg(ctx, make_ctx):
    up(ctx)
    client("rds").modify_db_instance(
        DBInstanceIdentifier=DB, BackupRetentionPeriod=7, CopyTagsToSnapshot=False, DeletionProtection=True,
        PreferredBackupWindow="03:00-04:00", MaxAllocatedStorage=200, ApplyImmediately=True,
    )
    (change,) = db_changes(plan(make_ctx()))
    assert change.action is Action.UPDATE
    assert fields(change) == {
        "backup retention days": (7, 1), "backup window": ("03:00-04:00", "16:00-19:00"), "copy tags to snapshots": (False, True),
        "deletion protection": (True, False), "storage autoscaling max GiB": (200, 1000),
    }
    assert change.note == "applied now (database.apply_immediately)"
    sent = Recorder()
    up(make_ctx(hooks=[sent.hook]))
    (modify,) = sent.of("ModifyDBInstance")
    assert modify == {
        "DBInstanceIdentifier": DB, "ApplyImmediately": True, "BackupRetentionPeriod": 1, "PreferredBackupWindow": "16:00-19:00",
        "PreferredMaintenanceWindow": "tue:20:00-tue:20:30", "CopyTagsToSnapshot": True, "DeletionProtection": False, "MaxAllocatedStorage": 1000,
    }
    assert "EngineVersion" not in modify and "MasterUserPassword" not in modify
    assert plan(make_ctx()).changes == []


def test_an_immediate_modify_is_waited_for_until_aws_shows_the_new_values(ctx, make_ctx, clock):
    up(ctx)
    client("rds").modify_db_instance(DBInstanceIdentifier=DB, DBInstanceClass="db.t4g.small", ApplyImmediately=True)
    after = DescribeDb(
        # AWS right after the call: still `available`, old class, the new one pending; then `modifying`
        {"DBInstanceClass": "db.t4g.small", "PendingModifiedValues": {"DBInstanceClass": "db.t4g.micro"}},
        {"DBInstanceStatus": "modifying", "DBInstanceClass": "db.t4g.small", "PendingModifiedValues": {"DBInstanceClass": "db.t4g.micro"}},
        {"DBInstanceStatus": "modifying"},
    )
    armed = {"on": False}

    def describe_after_modify(model, **kwargs):
        if model.name == "ModifyDBInstance":
            armed["on"] = True
        elif armed["on"]:
            return after(model=model, **kwargs)

    up(make_ctx(hooks=[("before-call.rds.*", describe_after_modify)]))
    assert after.seen == ["available", "modifying", "modifying"] and clock.pauses == [15.0, 15.0, 15.0]
    assert db()["DBInstanceClass"] == "db.t4g.micro"


def test_prd_drift_waits_for_the_maintenance_window_unless_apply_immediately(make_ctx, prd):
    up(make_ctx(config=prd))
    client("rds").modify_db_instance(DBInstanceIdentifier="aws-practice-prd", BackupRetentionPeriod=5, ApplyImmediately=True)
    (change,) = db_changes(plan(make_ctx(config=prd)))
    assert re.fullmatch(r"applied at the next maintenance window \(\S+ UTC\); `up --apply-immediately` applies now", change.note)
    sent = Recorder()
    up(make_ctx(config=prd, hooks=[sent.hook]))
    assert sent.of("ModifyDBInstance")[0]["ApplyImmediately"] is False

    client("rds").modify_db_instance(DBInstanceIdentifier="aws-practice-prd", BackupRetentionPeriod=5, ApplyImmediately=True)
    (change,) = db_changes(plan(make_ctx(config=prd, apply_immediately=True)))
    assert change.note == "applied now (--apply-immediately)"
    sent = Recorder()
    up(make_ctx(config=prd, apply_immediately=True, hooks=[sent.hook]))
    assert sent.of("ModifyDBInstance")[0]["ApplyImmediately"] is True


def test_values_queued_for_the_window_count_as_done(ctx, make_ctx):
    up(ctx)
    # What AWS shows after a deferred modify: the old value, and the new one pending.
    queued = DescribeDb({"DBInstanceClass": "db.t4g.small", "PendingModifiedValues": {"DBInstanceClass": "db.t4g.micro"}}, repeat_last=True)
    assert plan(make_ctx(hooks=[queued.hook])).changes == []
    wrong = DescribeDb({"DBInstanceClass": "db.t4g.small", "PendingModifiedValues": {"DBInstanceClass": "db.t4g.large"}}, repeat_last=True)
    (change,) = plan(make_ctx(hooks=[wrong.hook])).changes
    assert fields(change) == {"instance class": ("db.t4g.small", "db.t4g.micro")}


def test_performance_insights_drift_is_fixed_when_aws_reports_it(ctx, make_ctx):
    up(ctx)
    # moto never returns Performance Insights fields (so nothing is compared); AWS does.
    off = DescribeDb({"PerformanceInsightsEnabled": False})
    sent = Recorder()
    ctx2 = make_ctx(hooks=[off.hook, sent.hook])
    (change,) = plan(ctx2).changes
    assert fields(change) == {"performance insights": (False, True)}
    assert runner.apply(ctx2, runner.resolve(None), runner.Plan([change])).ok
    (modify,) = sent.of("ModifyDBInstance")
    assert modify["EnablePerformanceInsights"] is True and modify["PerformanceInsightsRetentionPeriod"] == 7


def test_drift_that_cannot_change_in_place_is_reported_with_what_it_would_take(ctx, make_ctx):
    up(ctx)
    moved = DescribeDb(lambda d: {**d, "StorageEncrypted": False, "AvailabilityZone": "ap-northeast-1c",
                                  "DBSubnetGroup": {**d["DBSubnetGroup"], "DBSubnetGroupName": "someone-elses"}}, repeat_last=True)
    sent = Recorder()
    ctx2 = make_ctx(hooks=[moved.hook, sent.hook])
    planned = up(ctx2)
    (report,) = planned.changes
    assert report.action is Action.REPORT
    assert fields(report) == {
        "storage encrypted": (False, True), "subnet group": ("someone-elses", "aws-practice-db-subnet-group-stg"),
        "availability zone": ("ap-northeast-1c", "ap-northeast-1a"),
    }
    assert "copy the snapshot with encryption" in report.note and "snapshot and restore it in ap-northeast-1a" in report.note
    assert "ModifyDBInstance" not in sent.names


def test_a_stopped_instance_is_not_modified_and_says_how(ctx, make_ctx):
    up(ctx)
    client("rds").stop_db_instance(DBInstanceIdentifier=DB)
    client("rds").modify_db_instance(DBInstanceIdentifier=DB, BackupRetentionPeriod=3, ApplyImmediately=True)
    (change,) = plan(make_ctx()).changes
    assert change.action is Action.REPORT and "run `awsprac start --env stg`, then `awsprac up --env stg`" in change.note
    assert "aws rds" not in change.note


# --- waiting ---


def test_create_waits_with_a_live_status_then_writes_db_host(make_ctx, clock, capsys):
    states = DescribeDb(CREATING, CREATING, {"DBInstanceStatus": "backing-up"})
    ctx = make_ctx(hooks=[states.hook])
    ctx.report.verbose = True
    up(ctx)
    # the plan's describe found nothing (moto's own answer); then creating, creating, backing-up (usable)
    assert states.seen == ["creating", "creating", "backing-up"]
    assert clock.pauses == [15.0, 15.0]
    err = capsys.readouterr().err
    assert "DB instance aws-practice-stg becoming available: creating (0s)" in err
    assert "DB instance aws-practice-stg becoming available: backing-up (30s)" in err
    assert secret_value()["DB_HOST"] == db()["Endpoint"]["Address"]


def test_a_wait_that_runs_out_is_resumed_by_the_next_run(make_ctx, clock):
    stuck = DescribeDb(CREATING, repeat_last=True)
    ctx = make_ctx(hooks=[stuck.hook])
    steps = runner.resolve(None)
    outcome = runner.apply(ctx, steps, runner.plan(ctx, steps))
    assert isinstance(outcome.failed["rds"], waiting.WaitTimeout)
    assert "still creating after 45m" in str(outcome.failed["rds"]) and "run the same command again" in str(outcome.failed["rds"])
    # The scheduler does not wait for the instance: it is built all the same. Only step db-ingress (the
    # DB group's rule from the NAT's) comes after step rds: the next run adds it.
    assert outcome.skipped == {"db-ingress": "rds"}
    assert clock.t >= 45 * 60
    assert db()["DBInstanceIdentifier"] == DB and secret_value()["DB_HOST"] == ""  # nothing undone, nothing written

    # The next run sees it still creating, waits, then writes DB_HOST.
    again = DescribeDb(CREATING, CREATING)
    ctx2 = make_ctx(hooks=[again.hook])
    (change,) = [c for c in plan(ctx2).changes if c.step == "rds"]
    assert change.action is Action.UPDATE and fields(change)["status"] == ("creating", "available (waits for it)")
    runner.apply(ctx2, steps, runner.plan(ctx2, steps))
    assert secret_value()["DB_HOST"] == db()["Endpoint"]["Address"]
    assert plan(make_ctx()).changes == []


def test_an_instance_that_fails_stops_the_wait_with_its_state(make_ctx, clock):
    broken = DescribeDb(CREATING, {"DBInstanceStatus": "incompatible-parameters"})
    ctx = make_ctx(hooks=[broken.hook])
    steps = runner.resolve(None)
    outcome = runner.apply(ctx, steps, runner.plan(ctx, steps))
    assert "DB instance aws-practice-stg is incompatible-parameters: its events in the RDS console say why" in str(outcome.failed["rds"])


# --- the password's path ---


def test_a_crash_between_the_secret_and_the_db_loses_nothing(make_ctx):
    crash = Fail("CreateDBInstance", "InsufficientDBInstanceCapacity", "no capacity")
    ctx = make_ctx(hooks=[crash.hook])
    steps = runner.resolve(None)
    outcome = runner.apply(ctx, steps, runner.plan(ctx, steps))
    assert "InsufficientDBInstanceCapacity" in str(outcome.failed["rds"])
    stored = secret_value()["DB_PASSWORD"]
    sent = Recorder()
    ctx2 = make_ctx(hooks=[sent.hook])
    planned = up(ctx2)
    # The scheduler did not wait for it; step db-ingress's rule comes after step rds.
    assert [(c.step, c.kind) for c in planned.changes if c.action is Action.CREATE] == [("rds", "DB instance"), ("db-ingress", "security group rule")]
    assert sent.of("CreateDBInstance")[0]["MasterUserPassword"] == stored
    assert "CreateSecret" not in sent.names and secret_value()["DB_PASSWORD"] == stored


def test_a_db_whose_secret_is_gone_is_a_clear_error_naming_the_fix(ctx, make_ctx):
    up(ctx)
    client("secretsmanager").delete_secret(SecretId=SECRET, ForceDeleteWithoutRecovery=True)
    with pytest.raises(dbsecret.SecretMissing) as err:
        plan(make_ctx())
    assert str(err.value) == (
        "database aws-practice-stg exists but its secret rds-main-stg is missing, so its master password is unknown: "
        "run `awsprac db reset-password --env stg` to set a new master password on it and store it"
    )
    # `awsprac step rds` alone checks it too (the secrets step's diff does not run then)
    with pytest.raises(dbsecret.SecretMissing):
        plan(make_ctx(), ["rds"])


# --- adoption and duplicates ---


def test_resources_made_by_hand_from_the_guide_are_adopted_not_duplicated(ctx, make_ctx):
    up(ctx, ["vpc", "subnets", "secrets"])
    ec2, rds = client("ec2"), client("rds")
    vpc_id = ctx.observed["vpc"].id
    private = [ctx.observed["subnets"].subnets[n].id for n in ("private-subnet-1a-stg", "private-subnet-1c-stg")]
    # The console sets the group name; the Name tag stays empty.
    sg_id = ec2.create_security_group(GroupName="aws-practice-db-stg", Description="Managed by Terraform", VpcId=vpc_id)["GroupId"]
    rds.create_db_subnet_group(DBSubnetGroupName="aws-practice-db-subnet-group-stg", DBSubnetGroupDescription="Managed by Terraform", SubnetIds=private)
    rds.create_db_parameter_group(DBParameterGroupName="aws-practice-db-parameter-group-stg", DBParameterGroupFamily="postgres17", Description="Managed by Terraform")
    rds.create_db_instance(
        DBInstanceIdentifier=DB, Engine="postgres", EngineVersion="17.2", DBInstanceClass="db.t4g.micro", StorageType="gp3",
        AllocatedStorage=20, MaxAllocatedStorage=1000, MasterUsername="postgres", MasterUserPassword=secret_value()["DB_PASSWORD"],
        DBName="aws_practice", AvailabilityZone="ap-northeast-1a", DBSubnetGroupName="aws-practice-db-subnet-group-stg",
        VpcSecurityGroupIds=[sg_id], DBParameterGroupName="aws-practice-db-parameter-group-stg", BackupRetentionPeriod=1,
        PreferredBackupWindow="16:00-19:00", CopyTagsToSnapshot=True, StorageEncrypted=True, PubliclyAccessible=False,
    )
    planned = plan(make_ctx(), ["rds"])
    assert [(c.action, c.kind) for c in planned.changes] == [
        (Action.ADOPT, "security group"), (Action.ADOPT, "DB subnet group"), (Action.ADOPT, "DB parameter group"), (Action.ADOPT, "DB instance"),
    ]
    sent = Recorder()
    up(make_ctx(hooks=[sent.hook]), ["rds"])
    assert [n for n in sent.writes if n.startswith("Create")] == ["CreateTags"]  # the SG: tagged, not made
    assert tags.as_dict(db()["TagList"]) == {"Name": DB, **OWNED}
    assert tags.as_dict(ec2.describe_security_groups(GroupIds=[sg_id])["SecurityGroups"][0]["Tags"]) == {"Name": "aws-practice-db-stg", **OWNED}
    assert secret_value()["DB_HOST"] == db()["Endpoint"]["Address"]
    # The rest is not built in this test; a whole `up` would also let step nat's group in (step db-ingress).
    left = [(c.step, c.action, c.kind) for c in plan(make_ctx()).changes if c.step in ("vpc", "subnets", "secrets", "rds", "db-ingress")]
    assert left == [("db-ingress", Action.CREATE, "security group rule")]


def test_two_security_groups_with_the_name_is_an_error(ctx):
    up(ctx, ["vpc"])
    ec2 = client("ec2")
    spec = [{"ResourceType": "security-group", "Tags": [{"Key": "Name", "Value": "aws-practice-db-stg"}]}]
    ids = [ec2.create_security_group(GroupName=f"db-{i}", Description="x", VpcId=ctx.observed["vpc"].id, TagSpecifications=spec)["GroupId"] for i in range(2)]
    with pytest.raises(AmbiguousResource) as err:
        plan(ctx)
    assert all(i in str(err.value) for i in ids)


def test_inbound_rules_added_by_hand_are_reported_and_pruned_on_request(ctx, make_ctx):
    up(ctx)
    sg_id = ctx.observed["rds"].sg.id
    client("ec2").authorize_security_group_ingress(GroupId=sg_id, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    (report,) = plan(make_ctx()).changes
    assert report.action is Action.REPORT and "--prune" in report.note
    assert fields(report) == {"rules added by hand": ("inbound tcp 5432-5432 0.0.0.0/0", "(none)")}
    up(make_ctx(prune=True))
    left = client("ec2").describe_security_groups(GroupIds=[sg_id])["SecurityGroups"][0]["IpPermissions"]
    assert [(p["IpRanges"], [g.get("Description") for g in p["UserIdGroupPairs"]]) for p in left] == [([], ["db tunnel"])]  # the tunnel's stays
    assert plan(make_ctx()).changes == []


# --- teardown ---


def test_destroy_takes_a_final_snapshot_and_deletes_in_order(ctx, make_ctx, capsys):
    up(ctx)
    sent = Recorder()
    planned, outcome = destroy(make_ctx(hooks=[sent.hook]))
    assert outcome.ok, outcome.failed
    nat_group = next(c.id for c in planned.changes if c.step == "nat" and c.kind == "security group")
    rds_deletes = [n for n, p in sent.sent if n in ("DeleteDBInstance", "DeleteDBSubnetGroup", "DeleteDBParameterGroup", "DeleteSecurityGroup", "DeleteSecret") and p.get("GroupId") != nat_group]
    assert rds_deletes[:4] == ["DeleteDBInstance", "DeleteDBSubnetGroup", "DeleteDBParameterGroup", "DeleteSecurityGroup"]
    scheduler_calls = [i for i, (n, p) in enumerate(sent.sent) if n in ("DeleteSchedule", "DeleteScheduleGroup") or (n == "DeleteRole" and p["RoleName"] == "aws-practice-scheduler-stg")]
    assert sent.names.index("DeleteDBInstance") > max(scheduler_calls)
    (delete,) = sent.of("DeleteDBInstance")
    assert delete["SkipFinalSnapshot"] is False
    snapshot = delete["FinalDBSnapshotIdentifier"]
    assert re.fullmatch(r"aws-practice-stg-final-\d{8}-\d{6}", snapshot)
    assert client("rds").describe_db_snapshots(DBSnapshotIdentifier=snapshot)["DBSnapshots"]
    assert f"final snapshot {snapshot} of DB instance aws-practice-stg" in capsys.readouterr().err
    assert client("rds").describe_db_instances()["DBInstances"] == []
    (note,) = [c.note for c in planned.changes if c.kind == "DB instance"]
    assert note == "final snapshot aws-practice-stg-final-<UTC time> first (--skip-final-snapshot: none)"


def test_skip_final_snapshot(ctx, make_ctx):
    up(ctx)
    sent = Recorder()
    destroy(make_ctx(hooks=[sent.hook], skip_final_snapshot=True))
    assert sent.of("DeleteDBInstance") == [{"DBInstanceIdentifier": DB, "SkipFinalSnapshot": True}]


def test_prd_keeps_a_protected_database_unless_forced(make_ctx, prd):
    up(make_ctx(config=prd))
    planned, outcome = destroy(make_ctx(config=prd))
    kept = {(c.kind, c.action) for c in planned.changes if c.step in ("rds", "secrets")}
    assert kept == {("DB instance", Action.REPORT), ("DB subnet group", Action.REPORT), ("DB parameter group", Action.REPORT),
                    ("security group", Action.REPORT), ("secret", Action.REPORT)}
    (note,) = [c.note for c in planned.changes if c.kind == "DB instance"]
    assert note == "kept: deletion protection is on; `awsprac destroy --env prd --force` turns it off and deletes it"
    assert client("rds").describe_db_instances(DBInstanceIdentifier="aws-practice-prd")["DBInstances"]
    assert client("secretsmanager").describe_secret(SecretId="rds-main-prd").get("DeletedDate") is None

    sent = Recorder()
    planned, outcome = destroy(make_ctx(config=prd, force=True, hooks=[sent.hook]))
    assert outcome.ok, outcome.failed
    assert sent.of("ModifyDBInstance") == [{"DBInstanceIdentifier": "aws-practice-prd", "DeletionProtection": False, "ApplyImmediately": True}]
    assert sent.names.index("ModifyDBInstance") < sent.names.index("DeleteDBInstance")
    assert client("rds").describe_db_instances()["DBInstances"] == []


def test_destroy_waits_until_the_instance_is_gone(ctx, make_ctx, clock, capsys):
    up(ctx)

    class StillDeleting:
        """moto deletes at once; AWS shows `deleting` for minutes: twice here, then gone."""

        def __init__(self):
            self.last, self.left = None, 2

        def __call__(self, model, params, **kwargs):
            if model.name == "DeleteDBInstance":
                self.last = db()
            elif model.name == "DescribeDBInstances" and self.last is not None and self.left:
                self.left -= 1
                return ok({"DBInstances": [{**self.last, "DBInstanceStatus": "deleting"}]})

    ctx2 = make_ctx(hooks=[("before-call.rds.*", StillDeleting())])
    ctx2.report.verbose = True
    planned, outcome = destroy(ctx2)
    assert outcome.ok, outcome.failed
    assert clock.pauses[:2] == [15.0, 15.0]
    err = capsys.readouterr().err
    assert "DB instance aws-practice-stg being deleted: deleting (15s)" in err and "being deleted: deleted (30s)" in err
    # only once it is gone do its groups go
    assert client("rds").describe_db_subnet_groups()["DBSubnetGroups"] == []


def test_the_security_group_delete_outlasts_lingering_network_interfaces(ctx, make_ctx, clock):
    up(ctx)
    lingering = Fail("DeleteSecurityGroup", "DependencyViolation", "resource sg-x has a dependent object", times=3,
                     when=lambda p: p["GroupId"] == ctx.observed["rds"].sg.id)
    planned, outcome = destroy(make_ctx(hooks=[lingering.hook]))
    assert outcome.ok, outcome.failed
    assert lingering.calls == 3 and clock.pauses[:3] == [2.0, 4.0, 8.0]


def test_teardown_leaves_a_database_this_env_does_not_own(ctx, make_ctx):
    up(ctx)
    client("rds").remove_tags_from_resource(ResourceName=db()["DBInstanceArn"], TagKeys=["awsprac:env"])
    planned, outcome = destroy(make_ctx())
    by_kind = {c.kind: c for c in planned.changes if c.step in ("rds", "secrets")}
    assert by_kind["DB instance"].action is Action.REPORT and "left alone" in by_kind["DB instance"].note
    assert by_kind["DB subnet group"].action is Action.REPORT and by_kind["secret"].action is Action.REPORT
    assert db()["DBInstanceIdentifier"] == DB


def test_deleting_what_is_already_gone_is_success(ctx, make_ctx):
    up(ctx)
    ctx2 = make_ctx()
    steps = runner.resolve(None)
    planned = runner.teardown_plan(ctx2, steps)
    client("rds").delete_db_instance(DBInstanceIdentifier=DB, SkipFinalSnapshot=True)
    client("rds").delete_db_parameter_group(DBParameterGroupName="aws-practice-db-parameter-group-stg")
    assert runner.destroy(ctx2, steps, planned).ok


def test_env_files_apply_drift_now_in_stg_and_at_the_window_in_prd(cfg, prd):
    assert cfg.database.apply_immediately is True and cfg.database.deletion_protection is False
    assert prd.database.apply_immediately is False and prd.database.deletion_protection is True


def test_a_delete_refused_while_the_instance_is_busy_is_retried(ctx, make_ctx, clock):
    """The instance looked deletable, then a backup started: AWS answers InvalidDBInstanceState."""
    from conftest import FailFirst

    up(ctx)
    busy = FailFirst("DeleteDBInstance", "InvalidDBInstanceState", times=2, message="Instance aws-practice-stg is not in available state.")
    planned, outcome = destroy(make_ctx(hooks=[busy.hook], skip_final_snapshot=True))
    assert outcome.ok, outcome.failed
    assert busy.failed == 2 and busy.passed == 1
    assert client("rds").describe_db_instances()["DBInstances"] == []
    assert clock.pauses[:2] == [15, 30]


def test_under_strict_aws_both_windows_are_sent_and_a_later_backup_window_change_succeeds(ctx, make_ctx, cfg, strict_aws):
    """Without an explicit maintenance window AWS picks one at random, and a later backup window can collide
    with it (InvalidParameterValue): the env file's window goes with the create and with every modify of either."""
    planned = up(ctx)
    create = next(c for c in planned.changes if c.kind == "DB instance")
    assert fields(create)["maintenance window"] == (None, "tue:20:00-tue:20:30 UTC")
    assert db()["PreferredMaintenanceWindow"] == "tue:20:00-tue:20:30"
    later = config.dataclasses.replace(cfg, database=config.dataclasses.replace(cfg.database, backup_window="17:00-19:30"))
    up(make_ctx(config=later))
    assert (db()["PreferredBackupWindow"], db()["PreferredMaintenanceWindow"]) == ("17:00-19:30", "tue:20:00-tue:20:30")
    assert strict_aws.refused == []
    status = {(r.kind, r.name): r for r in runner.status(make_ctx(config=later), runner.resolve(None))}
    assert "backup 17:00-19:30 UTC, maintenance tue:20:00-tue:20:30 UTC" in status[("DB instance", DB)].state


# --- a parameter group made from an earlier, wrong env file (issue: engine = "podevres" once made podevres17) ---

PG = "aws-practice-db-parameter-group-stg"


def test_an_owned_group_of_another_family_is_made_again_before_the_instance(ctx, make_ctx):
    up(ctx, ["vpc", "subnets", "secrets"])
    client("rds").create_db_parameter_group(DBParameterGroupName=PG, DBParameterGroupFamily="podevres17", Description="Managed by Terraform",
                                            Tags=tags.as_list({"Name": PG, **OWNED}))
    planned = plan(make_ctx(), ["rds"])
    (group,) = db_changes(planned, "DB parameter group")
    assert group.action is Action.UPDATE and fields(group)["family"] == ("podevres17", "postgres17") and "replaced" in group.note
    assert db_changes(planned)[0].action is Action.CREATE
    sent = Recorder()
    up(make_ctx(hooks=[sent.hook]), ["rds"])
    assert sent.writes.index("DeleteDBParameterGroup") < sent.writes.index("CreateDBParameterGroup") < sent.writes.index("CreateDBInstance")
    (params,) = client("rds").describe_db_parameter_groups(DBParameterGroupName=PG)["DBParameterGroups"]
    assert params["DBParameterGroupFamily"] == "postgres17"
    assert [g["DBParameterGroupName"] for g in db()["DBParameterGroups"]] == [PG]
    assert plan(make_ctx(), ["rds"]).changes == []


def test_a_group_of_another_family_not_ours_keeps_the_instance_from_being_made(ctx, make_ctx):
    up(ctx, ["vpc", "subnets", "secrets"])
    client("rds").create_db_parameter_group(DBParameterGroupName=PG, DBParameterGroupFamily="postgres16", Description="Managed by Terraform")
    planned = plan(make_ctx(), ["rds"])
    (group,) = db_changes(planned, "DB parameter group")
    (instance,) = db_changes(planned)
    assert group.action is Action.REPORT and fields(group)["family"] == ("postgres16", "postgres17")
    assert instance.action is Action.REPORT and "not created" in instance.note and "postgres16" in instance.note
    sent = Recorder()
    up(make_ctx(hooks=[sent.hook]), ["rds"])
    assert "CreateDBInstance" not in sent.writes and "DeleteDBParameterGroup" not in sent.writes
    assert client("rds").describe_db_instances()["DBInstances"] == []
