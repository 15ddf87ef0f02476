"""Step `scheduler` against in-process moto: docs/reference.md section 8 exactly, the role-not-yet-assumable retry,
full-schedule updates, the group never re-created, least privilege, teardown."""

import dataclasses
import json

import pytest

from awsprac.engine import runner, tags, waiting
from awsprac.engine.plan import Action

from db_helpers import DB, OWNED, Fail, FakeClock, Recorder, client, db, destroy, ok, plan, up

GROUP = "aws-practice-stg"
ROLE = "aws-practice-scheduler-stg"
START, STOP = "aws-practice-db-start-stg", "aws-practice-db-stop-stg"
NOT_ASSUMABLE = "The execution role you provide must allow AWS EventBridge Scheduler to assume the role."


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(waiting, "clock", fake)
    return fake


def schedule(name):
    return client("scheduler").get_schedule(Name=name, GroupName=GROUP)


def test_up_builds_spec_section_8_exactly(ctx):
    up(ctx)
    iam = client("iam")
    role = iam.get_role(RoleName=ROLE)["Role"]
    db_arn = db()["DBInstanceArn"]
    assert role["AssumeRolePolicyDocument"] == {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
    }]}
    assert tags.as_dict(role["Tags"]) == {"Name": ROLE, **OWNED}
    # allowed only to start and stop this one instance
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == ["start-stop-db"]
    assert iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] == []
    assert iam.get_role_policy(RoleName=ROLE, PolicyName="start-stop-db")["PolicyDocument"] == {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["rds:StartDBInstance", "rds:StopDBInstance"], "Resource": db_arn,
    }]}
    group = client("scheduler").get_schedule_group(Name=GROUP)
    assert tags.as_dict(client("scheduler").list_tags_for_resource(ResourceArn=group["Arn"])["Tags"]) == {"Name": GROUP, **OWNED}
    for name, action, expression in ((START, "startDBInstance", "cron(0 5 ? * SUN *)"), (STOP, "stopDBInstance", "cron(30 5 ? * SUN *)")):
        s = schedule(name)
        assert (s["ScheduleExpression"], s["ScheduleExpressionTimezone"], s["State"]) == (expression, "Asia/Tokyo", "ENABLED")
        assert s["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert s["Target"] == {
            "Arn": f"arn:aws:scheduler:::aws-sdk:rds:{action}", "RoleArn": role["Arn"],
            "Input": json.dumps({"DbInstanceIdentifier": DB}),
            "RetryPolicy": {"MaximumEventAgeInSeconds": 600, "MaximumRetryAttempts": 3},
        }
    assert sorted(s["Name"] for s in client("scheduler").list_schedules(GroupName=GROUP)["Schedules"]) == [START, STOP]


def test_create_schedule_is_retried_only_while_the_role_is_not_assumable_and_made_once(make_ctx, clock):
    # The two schedules are created at the same time: only the start schedule's is refused, so the waits are its own.
    new_role = Fail("CreateSchedule", "ValidationException", NOT_ASSUMABLE, times=2, when=lambda p: "startDBInstance" in json.dumps(p, default=str))
    sent = Recorder()
    up(make_ctx(hooks=[new_role.hook, sent.hook]))
    assert new_role.calls == 2 and clock.pauses == [2.0, 4.0]
    creates = sent.of("CreateSchedule")
    assert sorted(c["Name"] for c in creates) == [START] * 3 + [STOP]  # two refused, then each schedule once
    assert len({c["ClientToken"] for c in creates if c["Name"] == START}) == 1  # the retry is the same request
    assert sorted(s["Name"] for s in client("scheduler").list_schedules(GroupName=GROUP)["Schedules"]) == [START, STOP]


def test_other_validation_errors_are_not_retried(make_ctx, clock):
    bad = Fail("CreateSchedule", "ValidationException", "Invalid Schedule Expression cron(0 5 ? * SUN).", times=None)
    ctx = make_ctx(hooks=[bad.hook])
    steps = runner.resolve(None)
    outcome = runner.apply(ctx, steps, runner.plan(ctx, steps))
    assert "Invalid Schedule Expression" in str(outcome.failed["scheduler"])
    assert bad.calls == 2 and clock.pauses == []  # each schedule (created at the same time) sent once


def test_the_role_retry_is_brief(make_ctx, clock):
    never = Fail("CreateSchedule", "ValidationException", NOT_ASSUMABLE, times=None)
    ctx = make_ctx(hooks=[never.hook])
    steps = runner.resolve(None)
    outcome = runner.apply(ctx, steps, runner.plan(ctx, steps))
    assert "assume the role" in str(outcome.failed["scheduler"])
    assert sum(clock.pauses) <= 2 * 120  # two schedules, retried at the same time, each for at most 2 minutes


def test_a_changed_schedule_is_updated_with_the_whole_schedule(ctx, make_ctx):
    up(ctx)
    s = schedule(START)
    client("scheduler").update_schedule(
        Name=START, GroupName=GROUP, ScheduleExpression="cron(0 9 ? * MON *)", FlexibleTimeWindow={"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 60},
        Target={"Arn": s["Target"]["Arn"], "RoleArn": s["Target"]["RoleArn"]},
    )
    (change,) = plan(make_ctx()).changes
    assert change.action is Action.UPDATE and change.name == START
    assert {f.field for f in change.fields} >= {"expression", "flexible window", "input", "retry policy", "time zone", "description"}
    sent = Recorder()
    up(make_ctx(hooks=[sent.hook]))
    (update,) = sent.of("UpdateSchedule")
    assert update == {
        "Name": START, "GroupName": GROUP, "Description": s["Description"],
        "ScheduleExpression": "cron(0 5 ? * SUN *)", "ScheduleExpressionTimezone": "Asia/Tokyo", "State": "ENABLED",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": "arn:aws:scheduler:::aws-sdk:rds:startDBInstance", "RoleArn": s["Target"]["RoleArn"],
                   "Input": json.dumps({"DbInstanceIdentifier": DB}), "RetryPolicy": {"MaximumEventAgeInSeconds": 600, "MaximumRetryAttempts": 3}},
    }
    assert plan(make_ctx()).changes == []


def test_scheduler_off_in_the_env_file_disables_the_schedules(ctx, make_ctx, cfg):
    up(ctx)
    off = dataclasses.replace(cfg, scheduler=dataclasses.replace(cfg.scheduler, enabled=False))
    changes = plan(make_ctx(config=off)).changes
    assert [(c.name, [str(f) for f in c.fields]) for c in changes] == [(START, ["state: ENABLED -> DISABLED"]), (STOP, ["state: ENABLED -> DISABLED"])]
    up(make_ctx(config=off))
    assert schedule(START)["State"] == schedule(STOP)["State"] == "DISABLED"


def test_an_existing_group_is_adopted_never_recreated(ctx, make_ctx):
    """moto's CreateScheduleGroup on an existing name drops its schedules: awsprac looks first."""
    up(ctx, ["vpc", "subnets", "secrets", "rds"])
    s = client("scheduler")
    s.create_schedule_group(Name=GROUP)
    s.create_schedule(Name="a-persons-own", GroupName=GROUP, ScheduleExpression="rate(1 day)", FlexibleTimeWindow={"Mode": "OFF"},
                      Target={"Arn": "arn:aws:scheduler:::aws-sdk:rds:describeDBInstances", "RoleArn": "arn:aws:iam::123456789012:role/x"})
    planned = plan(make_ctx(), ["scheduler"])
    assert [(c.action, c.kind) for c in planned.changes] == [
        (Action.CREATE, "IAM role"), (Action.ADOPT, "schedule group"), (Action.CREATE, "schedule"), (Action.CREATE, "schedule"),
    ]
    sent = Recorder()
    up(make_ctx(hooks=[sent.hook]), ["scheduler"])
    assert "CreateScheduleGroup" not in sent.names and len(sent.of("TagResource")) == 1
    assert sorted(x["Name"] for x in s.list_schedules(GroupName=GROUP)["Schedules"]) == ["a-persons-own", START, STOP]


def test_extra_permissions_on_the_role_are_taken_away(ctx, make_ctx):
    up(ctx)
    iam = client("iam")
    iam.put_role_policy(RoleName=ROLE, PolicyName="too-much", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "rds:*", "Resource": "*"}]}))
    iam.put_role_policy(RoleName=ROLE, PolicyName="start-stop-db", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "rds:*", "Resource": "*"}]}))
    (change,) = plan(make_ctx()).changes
    assert [f.field for f in change.fields] == ["policy start-stop-db", "other policies"]
    up(make_ctx())
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == ["start-stop-db"]
    assert iam.get_role_policy(RoleName=ROLE, PolicyName="start-stop-db")["PolicyDocument"]["Statement"][0]["Action"] == ["rds:StartDBInstance", "rds:StopDBInstance"]
    assert plan(make_ctx()).changes == []


def test_the_same_policy_spelled_differently_is_not_drift():
    from awsprac.steps.scheduler.role import canonical

    a = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "rds:StopDBInstance", "Resource": "arn:x"}}
    b = {"Version": "2012-10-17", "Statement": [{"Resource": ["arn:x"], "Action": ["rds:StopDBInstance"], "Effect": "Allow"}]}
    assert canonical(a) == canonical(b) and canonical(json.dumps(a)) == canonical(b)
    assert canonical(a) != canonical({**b, "Statement": [{**b["Statement"][0], "Action": ["rds:*"]}]})


def test_a_group_still_being_deleted_is_waited_for_then_created(ctx, make_ctx, clock):
    up(ctx, ["vpc", "subnets", "secrets", "rds"])
    left = {"n": 3}

    def deleting(model, **kwargs):  # AWS deletes a group (and its schedules) in the background
        if model.name == "GetScheduleGroup" and left["n"]:
            left["n"] -= 1
            return ok({"Arn": f"arn:aws:scheduler:ap-northeast-1:123456789012:schedule-group/{GROUP}", "Name": GROUP, "State": "DELETING"})
        if model.name == "ListTagsForResource":
            return ok({"Tags": tags.as_list({"Name": GROUP, **OWNED})})

    ctx2 = make_ctx(hooks=[("before-call.scheduler.*", deleting)])
    planned = plan(ctx2, ["scheduler"])
    (group,) = [c for c in planned.changes if c.kind == "schedule group"]
    assert group.action is Action.CREATE and "still being deleted" in group.note
    assert runner.apply(ctx2, runner.resolve(["scheduler"]), planned).ok
    assert clock.pauses == [5]  # plan, first look, one more poll: then gone
    assert client("scheduler").get_schedule_group(Name=GROUP)["State"] == "ACTIVE"


def test_teardown_deletes_schedules_group_and_role(ctx, make_ctx):
    up(ctx)
    sent = Recorder()
    planned, outcome = destroy(make_ctx(hooks=[sent.hook]))
    assert outcome.ok
    assert [(c.kind, c.name) for c in planned.changes if c.step == "scheduler"] == [
        ("schedule", START), ("schedule", STOP), ("schedule group", GROUP), ("IAM role", ROLE),
    ]
    names = sent.writes
    # this step's role (the NAT instance's role goes in its own step, at its own time)
    role_deleted = next(i for i, (n, p) in enumerate(sent.sent) if n == "DeleteRole" and p["RoleName"] == ROLE)
    assert sent.names.index("DeleteRolePolicy") < role_deleted
    assert names.index("DeleteScheduleGroup") < names.index("DeleteDBInstance")
    with pytest.raises(client("iam").exceptions.NoSuchEntityException):
        client("iam").get_role(RoleName=ROLE)
    assert client("scheduler").list_schedule_groups(NamePrefix=GROUP)["ScheduleGroups"] == []


def test_teardown_of_a_group_already_gone_is_success(ctx, make_ctx):
    up(ctx)
    gone = Fail("DeleteScheduleGroup", "ResourceNotFoundException", f"Schedule group {GROUP} does not exist.")
    planned, outcome = destroy(make_ctx(hooks=[gone.hook]))
    assert outcome.ok and gone.calls == 1


def test_teardown_leaves_a_group_this_env_does_not_own(ctx, make_ctx):
    up(ctx)
    group = client("scheduler").get_schedule_group(Name=GROUP)
    client("scheduler").untag_resource(ResourceArn=group["Arn"], TagKeys=["awsprac:env"])
    again = make_ctx()
    # The account known (as the account guard leaves it): the look takes the group for this env's from its
    # schedules and this env's role; the destroy reads its tags before deciding.
    again.identity = {"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/test"}
    planned, outcome = destroy(again)
    kinds = {(c.kind, c.action) for c in planned.changes if c.step == "scheduler"}
    assert kinds == {("schedule", Action.REPORT), ("schedule group", Action.REPORT), ("IAM role", Action.DELETE)}
    assert sorted(s["Name"] for s in client("scheduler").list_schedules(GroupName=GROUP)["Schedules"]) == [START, STOP]


def test_a_converged_look_knows_the_group_from_its_schedules_and_reads_its_tags_only_otherwise(ctx, make_ctx):
    """Both schedules started by this env's role: the group is this env's, its tags are not read. A role
    that is not this env's vouches for nothing: then the group's tags are read."""
    def looked_at(sent):
        again = make_ctx(hooks=[sent.hook])
        again.identity = {"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/test"}  # what the account guard leaves
        return plan(again, ["scheduler"])

    up(ctx)
    sent = Recorder()
    assert looked_at(sent).changes == []
    assert "ListTagsForResource" not in sent.names
    client("iam").untag_role(RoleName=ROLE, TagKeys=["awsprac:env"])
    sent = Recorder()
    planned = looked_at(sent)
    assert [(c.action, c.kind) for c in planned.changes] == [(Action.ADOPT, "IAM role")]
    assert sent.names.count("ListTagsForResource") == 1


def test_a_hand_made_group_is_adopted_before_its_role(ctx, make_ctx):
    """The guide made by hand: role, group and schedules, none tagged. The group is tagged before the
    role is, so a run stopped in between never leaves an owned role vouching for an untagged group."""
    import threading

    up(ctx, ["vpc", "subnets", "secrets", "rds"])
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role_arn = client("iam").create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    s = client("scheduler")
    s.create_schedule_group(Name=GROUP)
    for name in (START, STOP):
        s.create_schedule(Name=name, GroupName=GROUP, ScheduleExpression="rate(1 day)", FlexibleTimeWindow={"Mode": "OFF"},
                          Target={"Arn": "arn:aws:scheduler:::aws-sdk:rds:stopDBInstance", "RoleArn": role_arn})
    role_tagged, order = threading.Event(), []

    def tag_role(model, **kwargs):
        if model.name == "TagRole":
            order.append("role")
            role_tagged.set()

    def tag_group(model, **kwargs):
        if model.name == "TagResource":
            role_tagged.wait(1)  # were the two at the same time, the role's tag would come meanwhile
            order.append("group")

    sent = Recorder()
    up(make_ctx(hooks=[sent.hook, ("before-call.iam.*", tag_role), ("before-call.scheduler.*", tag_group)]), ["scheduler"])
    assert order == ["group", "role"]
    assert "CreateScheduleGroup" not in sent.names
