"""Step `secrets` against in-process moto: the generated password, the JSON keys, versions only when a
value differs, restore instead of re-create (both error codes for a name pending deletion), teardown."""

import json

import pytest

from awsprac.steps.rds import dbsecret
from awsprac.engine import runner, tags, tokens
from awsprac.engine.plan import Action

from db_helpers import OWNED, SECRET, Fail, Recorder, client, db, destroy, ok, plan, secret_value, up


def versions() -> int:
    return len(client("secretsmanager").list_secret_version_ids(SecretId=SECRET)["Versions"])


def test_the_secret_holds_spec_keys_and_a_usable_generated_password(make_ctx):
    sent = Recorder()
    up(make_ctx(hooks=[sent.hook]))
    value = secret_value()
    assert list(value) == ["DB_HOST", "DB_PORT", "DB_NAME", "DB_USER_NAME", "DB_PASSWORD"]
    assert {k: value[k] for k in ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER_NAME")} == {
        "DB_HOST": db()["Endpoint"]["Address"], "DB_PORT": "5432", "DB_NAME": "aws_practice", "DB_USER_NAME": "postgres",
    }
    password = value["DB_PASSWORD"]
    assert len(password) >= 32 and password.isascii() and password.isprintable()
    assert not set(password) & set('/@" ' + "'\\`:;?#[]{}()<>%&+=,|!$^*~")
    # Secrets Manager's own generator, told what RDS and connection strings refuse
    (generate,) = sent.of("GetRandomPassword")
    assert generate["PasswordLength"] >= 32
    assert all(c in generate["ExcludeCharacters"] for c in '/@" :?#%&+=')
    (create,) = sent.of("CreateSecret")
    assert create["Name"] == SECRET and "KmsKeyId" not in create  # the default aws/secretsmanager key
    assert create["ClientRequestToken"] == tokens.client_token("secret", "aws-practice", "stg", SECRET)
    assert tags.as_dict(create["Tags"]) == {"Name": SECRET, **OWNED}
    assert json.loads(create["SecretString"])["DB_HOST"] == ""  # empty until the database has an endpoint
    assert "RotateSecret" not in sent.names


def test_db_host_is_a_new_version_only_when_it_differs(ctx, make_ctx):
    up(ctx)
    assert versions() == 2
    sent = Recorder()
    up(make_ctx(hooks=[sent.hook]))
    assert "PutSecretValue" not in sent.names and versions() == 2


def test_a_value_changed_by_hand_is_put_back_keeping_the_password(ctx, make_ctx):
    up(ctx)
    value = secret_value()
    password = value["DB_PASSWORD"]
    hand = {**value, "DB_PORT": "6543", "EXTRA": "a person's key"}
    del hand["DB_NAME"]
    client("secretsmanager").put_secret_value(SecretId=SECRET, SecretString=json.dumps(hand))
    (change,) = plan(make_ctx()).changes
    assert change.action is Action.UPDATE
    assert [str(f) for f in change.fields] == ["DB_PORT: 6543 -> 5432", "DB_NAME: (none) -> aws_practice"]
    assert password not in change.describe()
    up(make_ctx())
    after = secret_value()
    assert after["DB_PORT"] == "5432" and after["DB_NAME"] == "aws_practice" and after["DB_PASSWORD"] == password
    assert after["EXTRA"] == "a person's key"
    assert plan(make_ctx()).changes == []


def test_rotation_turned_on_by_hand_is_turned_off(ctx, make_ctx):
    up(ctx)
    rotation = {"on": True}

    def rotating(model, **kwargs):  # moto cannot rotate without a Lambda; AWS reports and cancels it so
        if model.name == "ListSecrets" and rotation["on"]:
            listed = client("secretsmanager").list_secrets(IncludePlannedDeletion=True)
            listed["SecretList"] = [{**s, "RotationEnabled": True} for s in listed["SecretList"]]
            return ok(listed)
        if model.name == "CancelRotateSecret":
            rotation["on"] = False
            return ok({"ARN": "arn", "Name": SECRET})

    sent = Recorder()
    ctx2 = make_ctx(hooks=[("before-call.secretsmanager.*", rotating), sent.hook])
    (change,) = plan(ctx2, ["secrets"]).changes
    assert [str(f) for f in change.fields] == ["rotation: on -> off"]
    assert runner.apply(ctx2, runner.resolve(["secrets"]), runner.Plan([change])).ok
    assert len(sent.of("CancelRotateSecret")) == 1 and "PutSecretValue" not in sent.names


def test_a_secret_scheduled_for_deletion_is_restored_not_recreated(ctx, make_ctx):
    up(ctx)
    arn, password = client("secretsmanager").describe_secret(SecretId=SECRET)["ARN"], secret_value()["DB_PASSWORD"]
    destroy(make_ctx())
    assert client("secretsmanager").describe_secret(SecretId=SECRET).get("DeletedDate")
    planned = plan(make_ctx(), ["secrets"])
    (change,) = planned.changes
    assert change.action is Action.UPDATE and str(change.fields[0]).startswith("state: scheduled for deletion on ")
    assert str(change.fields[0]).endswith(" -> restored")
    sent = Recorder()
    up(make_ctx(hooks=[sent.hook]))
    assert "CreateSecret" not in sent.names and len(sent.of("RestoreSecret")) == 1
    assert client("secretsmanager").describe_secret(SecretId=SECRET)["ARN"] == arn
    assert sent.of("CreateDBInstance")[0]["MasterUserPassword"] == password == secret_value()["DB_PASSWORD"]
    assert secret_value()["DB_HOST"] == db()["Endpoint"]["Address"]


@pytest.mark.parametrize("code", ["ResourceExistsException", "InvalidRequestException"])
def test_a_create_that_meets_a_name_pending_deletion_restores_it(ctx, make_ctx, code):
    """moto answers ResourceExistsException for a name scheduled for deletion, AWS InvalidRequestException."""
    up(ctx, ["secrets"])
    password = secret_value()["DB_PASSWORD"]
    client("secretsmanager").delete_secret(SecretId=SECRET, RecoveryWindowInDays=7)

    unseen = {"left": 1}

    def hide_it_once(model, **kwargs):  # the plan's look-up misses it (as a concurrent destroy would)
        if model.name == "ListSecrets" and unseen["left"]:
            unseen["left"] -= 1
            return ok({"SecretList": []})

    hooks = [("before-call.secretsmanager.ListSecrets", hide_it_once)]
    if code == "InvalidRequestException":
        hooks.append(Fail("CreateSecret", code, "You can't create this secret because a secret with this name is already scheduled for deletion.").hook)
    ctx2 = make_ctx(hooks=hooks)
    (change,) = plan(ctx2, ["secrets"]).changes
    assert change.action is Action.CREATE
    assert runner.apply(ctx2, runner.resolve(["secrets"]), runner.Plan([change])).ok
    assert client("secretsmanager").describe_secret(SecretId=SECRET).get("DeletedDate") is None
    assert secret_value()["DB_PASSWORD"] == password  # the restored one's, not the one generated for the create


def test_other_create_errors_are_reported_as_aws_said(make_ctx, monkeypatch):
    from awsprac.engine import waiting
    from db_helpers import FakeClock

    monkeypatch.setattr(waiting, "clock", FakeClock())
    # Same code as "name pending deletion" on AWS, but no secret has the name: retried for at most a
    # minute (a forced delete may be finishing), then AWS's own message, never a restore.
    ctx = make_ctx(hooks=[Fail("CreateSecret", "InvalidRequestException", "The KMS key is disabled.", times=None).hook])
    (change,) = plan(ctx, ["secrets"]).changes
    outcome = runner.apply(ctx, runner.resolve(["secrets"]), runner.Plan([change]))
    assert "InvalidRequestException: The KMS key is disabled." in str(outcome.failed["secrets"])
    assert waiting.clock.t <= 60
    assert client("secretsmanager").list_secrets(IncludePlannedDeletion=True)["SecretList"] == []


def test_a_hand_made_secret_from_the_guide_is_adopted_and_its_password_used(make_ctx):
    guide = {"DB_HOST": "", "DB_PORT": "5432", "DB_NAME": "aws_practice", "DB_USER_NAME": "postgres", "DB_PASSWORD": "Copied-From-The-Console-0123456789abc"}
    client("secretsmanager").create_secret(Name=SECRET, SecretString=json.dumps(guide))
    (change,) = plan(make_ctx(), ["secrets"]).changes
    assert change.action is Action.ADOPT and [f.field for f in change.fields] == ["tags"]
    sent = Recorder()
    up(make_ctx(hooks=[sent.hook]))
    assert sent.of("CreateDBInstance")[0]["MasterUserPassword"] == guide["DB_PASSWORD"]
    assert "GetRandomPassword" not in sent.names


def test_a_secret_without_a_password_gets_one_while_there_is_no_database(make_ctx):
    client("secretsmanager").create_secret(Name=SECRET, SecretString="not json", Tags=tags.as_list({"Name": SECRET, **OWNED}))
    (change,) = plan(make_ctx(), ["secrets"]).changes
    assert [str(f) for f in change.fields][0] == "DB_PASSWORD: (unusable: its value is not a JSON object) -> (generated, never shown)"
    up(make_ctx(), ["secrets"])
    assert dbsecret.usable(secret_value()["DB_PASSWORD"])


def test_a_secret_without_a_password_while_the_database_exists_names_the_fix(ctx, make_ctx):
    up(ctx)
    value = secret_value()
    del value["DB_PASSWORD"]
    client("secretsmanager").put_secret_value(SecretId=SECRET, SecretString=json.dumps(value))
    with pytest.raises(dbsecret.SecretMissing, match=r"rds-main-stg is unusable \(it holds no DB_PASSWORD\).*awsprac db reset-password --env stg"):
        plan(make_ctx())


def test_destroy_keeps_it_recoverable_and_says_how(ctx, make_ctx, capsys):
    up(ctx)
    sent = Recorder()
    planned, outcome = destroy(make_ctx(hooks=[sent.hook]))
    assert outcome.ok
    (change,) = [c for c in planned.changes if c.step == "secrets"]
    assert change.note == "recoverable for 7 days: `awsprac up` restores it"
    assert sent.of("DeleteSecret")[0]["RecoveryWindowInDays"] == 7
    assert "secret rds-main-stg is scheduled for deletion in 7 days; until then `awsprac up --env stg` restores it" in capsys.readouterr().err
    # Already on its way out: a second destroy has nothing to do with it
    assert [c for c in destroy(make_ctx())[0].changes if c.step == "secrets"] == []


def test_force_delete_secret_skips_the_recovery_window_even_after_a_destroy(ctx, make_ctx, capsys):
    up(ctx)
    destroy(make_ctx())
    arn = client("secretsmanager").list_secrets(IncludePlannedDeletion=True)["SecretList"][0]["ARN"]
    sent = Recorder()
    planned, outcome = destroy(make_ctx(hooks=[sent.hook], force_delete_secret=True))
    assert outcome.ok
    (change,) = planned.changes
    assert change.note == "deleted at once, no recovery window (--force-delete-secret): the password it holds is gone"
    assert sent.of("DeleteSecret") == [{"SecretId": arn, "ForceDeleteWithoutRecovery": True}]
    assert client("secretsmanager").list_secrets(IncludePlannedDeletion=True)["SecretList"] == []
    assert "deleted without a recovery window: it cannot be restored" in capsys.readouterr().err


def test_a_name_still_taken_right_after_a_forced_delete_is_retried(make_ctx, monkeypatch):
    from awsprac.engine import waiting
    from db_helpers import FakeClock

    clock = FakeClock()
    monkeypatch.setattr(waiting, "clock", clock)
    # AWS deletes in the background: a create right after a forced delete may still find the name taken.
    taken = Fail("CreateSecret", "InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.", times=2)
    sent = Recorder()
    up(make_ctx(hooks=[taken.hook, sent.hook]), ["secrets"])
    assert taken.calls == 2 and len(sent.of("CreateSecret")) == 3 and clock.pauses == [2.0, 4.0]
    assert dbsecret.usable(secret_value()["DB_PASSWORD"])


def test_destroy_leaves_a_secret_this_env_does_not_own(make_ctx):
    client("secretsmanager").create_secret(Name=SECRET, SecretString="{}")
    planned, outcome = destroy(make_ctx())
    (change,) = planned.changes
    assert change.action is Action.REPORT and "left alone" in change.note
    assert client("secretsmanager").describe_secret(SecretId=SECRET).get("DeletedDate") is None
