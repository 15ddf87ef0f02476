"""The master password: never on stdout, stderr, in a log, an exception message or a process's
arguments; and `awsprac db reset-password`, the fix for a database whose secret is gone."""

import json
import logging
import os
import subprocess

import pytest

from awsprac.steps.rds import dbsecret

from conftest import hook_every_session, run_cli as run
from db_helpers import DB, SECRET, Recorder, client, db, secret_value


@pytest.fixture
def sent(monkeypatch):
    """What every CLI run in the test sends, seen through a hook on each session it makes."""
    recorder = Recorder()
    hook_every_session(monkeypatch, [("provide-client-params.*.*", recorder)])
    return recorder


@pytest.fixture
def child_processes(monkeypatch):
    """Every argv awsprac would hand to a child process (it should need none for the database)."""
    argvs = []
    real_popen = subprocess.Popen

    class Recording(real_popen):
        def __init__(self, args, *a, **kw):
            argvs.append(args if isinstance(args, str) else " ".join(map(str, args)))
            super().__init__(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    for name in ("execv", "execve", "execvp", "execvpe", "spawnv", "spawnve", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, lambda *a, _n=name, **k: argvs.append(f"{_n} {a!r}"))
    return argvs


def test_the_password_never_reaches_output_logs_or_arguments(capsys, caplog, mocked, sent, child_processes, monkeypatch):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("botocore").setLevel(logging.DEBUG)  # what a curious user might do: awsprac keeps it at WARNING
    seen = []
    code, out, err = run(capsys, "--verbose", "up", "--env", "stg", "--yes")
    assert code == 0, err
    seen += [out, err]
    password = secret_value()["DB_PASSWORD"]
    assert sent.of("CreateDBInstance")[0]["MasterUserPassword"] == password  # it did travel, to RDS only
    for args in (["plan", "--env", "stg", "--json"], ["status", "--env", "stg", "--json"], ["outputs", "--env", "stg", "--json"],
                 ["outputs", "--env", "stg"], ["--verbose", "up", "--env", "stg", "--yes"]):
        code, out, err = run(capsys, *args)
        assert code == 0, err
        seen += [out, err]
    outputs = json.loads(run(capsys, "outputs", "--env", "stg", "--json")[1])["outputs"]
    assert outputs["db_secret_arn"].startswith("arn:aws:secretsmanager:") and outputs["db_secret_name"] == SECRET
    code, out, err = run(capsys, "--verbose", "destroy", "--env", "stg", "--yes")
    assert code == 0, err
    seen += [out, err]
    seen += [r.getMessage() for r in caplog.records]
    seen += child_processes
    assert all(password not in text for text in seen)


def test_a_parameter_error_does_not_echo_the_password(capsys, mocked, monkeypatch):
    """botocore's ParamValidationError repeats the bad value: awsprac reports the field, not the value."""

    def bad_type(params, model, **kwargs):
        params["MasterUserPassword"] = [params["MasterUserPassword"]]

    hook_every_session(monkeypatch, [("provide-client-params.rds.CreateDBInstance", bad_type)])
    code, out, err = run(capsys, "up", "--env", "stg", "--yes")
    assert code == 1
    assert "error: step rds: creating DB instance aws-practice-stg failed: ParamValidationError: a request parameter was invalid (value withheld)" in err
    password = secret_value()["DB_PASSWORD"]
    assert password not in out + err


def test_a_password_object_never_shows_its_value(ctx):
    from db_helpers import up

    up(ctx)
    secret = ctx.observed["secrets"].secret
    password = secret.password
    text = password.reveal()
    assert repr(password) == str(password) == f"{password}" == "Password(********)"
    for shown in (repr(secret), repr(ctx.observed["secrets"]), repr(ctx.observed["rds"]), repr(ctx.observed["rds"].secret)):
        assert text not in shown
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(password)
    assert password == dbsecret.Password(text) and password != dbsecret.Password(text + "x")


# --- awsprac db reset-password ---


def built(capsys):
    code, out, err = run(capsys, "up", "--env", "stg", "--yes")
    assert code == 0, err


def test_reset_password_is_the_way_out_when_the_secret_is_gone(capsys, mocked, sent):
    built(capsys)
    client("secretsmanager").delete_secret(SecretId=SECRET, ForceDeleteWithoutRecovery=True)
    code, out, err = run(capsys, "up", "--env", "stg", "--yes")
    assert code == 1
    assert err == (
        "error: database aws-practice-stg exists but its secret rds-main-stg is missing, so its master password is unknown: "
        "run `awsprac db reset-password --env stg` to set a new master password on it and store it\n"
    )
    code, out, err = run(capsys, "db", "reset-password", "--env", "stg", "--yes")
    assert code == 0, err
    value = secret_value()
    assert dbsecret.usable(value["DB_PASSWORD"])
    assert {k: value[k] for k in ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER_NAME")} == {
        "DB_HOST": db()["Endpoint"]["Address"], "DB_PORT": "5432", "DB_NAME": "aws_practice", "DB_USER_NAME": "postgres",
    }
    (modify,) = sent.of("ModifyDBInstance")
    assert modify == {"DBInstanceIdentifier": DB, "MasterUserPassword": value["DB_PASSWORD"], "ApplyImmediately": True}
    # stored before it was set on the instance
    assert sent.names.index("CreateSecret") < sent.names.index("ModifyDBInstance")
    assert "has a new master password, stored in secret rds-main-stg" in err and value["DB_PASSWORD"] not in out + err
    code, out, err = run(capsys, "plan", "--env", "stg")
    assert code == 0 and "no changes" in out


def test_reset_password_replaces_a_stored_password(capsys, mocked, sent):
    built(capsys)
    old = secret_value()["DB_PASSWORD"]
    code, out, err = run(capsys, "db", "reset-password", "--env", "stg", "--yes")
    assert code == 0, err
    new = secret_value()["DB_PASSWORD"]
    assert new != old and sent.of("ModifyDBInstance")[0]["MasterUserPassword"] == new
    assert sent.names.index("PutSecretValue") < sent.names.index("ModifyDBInstance")


def test_reset_password_asks_first(capsys, mocked, monkeypatch, sent):
    built(capsys)
    old = secret_value()["DB_PASSWORD"]
    before = len(sent.names)
    code, out, err = run(capsys, "db", "reset-password", "--env", "stg", stdin="n\n", monkeypatch=monkeypatch)
    assert code == 1 and "cancelled: nothing was changed" in err
    assert secret_value()["DB_PASSWORD"] == old and sent.writes[-1] != "ModifyDBInstance"
    assert [n for n in sent.names[before:] if n in ("PutSecretValue", "ModifyDBInstance", "GetRandomPassword")] == []


def test_reset_password_needs_a_database(capsys, mocked):
    code, out, err = run(capsys, "db", "reset-password", "--env", "stg", "--yes")
    assert code == 2
    assert err == "error: there is no DB instance aws-practice-stg in env stg, so no password to reset: `awsprac up --env stg` creates it with a stored password\n"


def test_reset_password_of_a_stopped_database_says_to_start_it(capsys, mocked, sent):
    built(capsys)
    client("rds").stop_db_instance(DBInstanceIdentifier=DB)
    before = len(sent.names)
    code, out, err = run(capsys, "db", "reset-password", "--env", "stg", "--yes")
    assert code == 1 and "DB instance aws-practice-stg is stopped: its password can be reset once it is available" in err
    assert [n for n in sent.names[before:] if n in ("PutSecretValue", "ModifyDBInstance", "GetRandomPassword")] == []


def test_outputs_show_the_secret_arn_as_it_is(capsys, mocked, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # wide enough not to fold the ARN
    built(capsys)
    code, out, err = run(capsys, "outputs", "--env", "stg")
    arn = client("secretsmanager").describe_secret(SecretId=SECRET)["ARN"]
    assert code == 0 and arn in out  # ":secret:" stays text, never an emoji
