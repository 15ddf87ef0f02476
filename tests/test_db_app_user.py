"""`awsprac db create-app-user` against a REAL PostgreSQL server (tests/pg_server.py) and in-process moto
(Secrets Manager): the role, the guide's grants, the two secrets, idempotence, --rotate, and a kill
between each write followed by a re-run."""

from __future__ import annotations

import json
import os

import pytest

import pg_server
from conftest import run_cli
from db_helpers import OWNED, client

MAIN, MASTER = "rds-main-stg", "rds-master-stg"
APP, MASTER_USER, DBNAME = "aws_practice", "postgres", "aws_practice"


@pytest.fixture(scope="session")
def postgres():
    if pg_server.bin_dir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing: .ci/run installs Debian's postgresql package")
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    server = pg_server.start()
    with server.admin() as conn:
        # Like RDS's master: not a superuser, but CREATEROLE and CREATEDB, and the owner of the database.
        conn.execute(f"CREATE ROLE {MASTER_USER} LOGIN CREATEROLE CREATEDB")
    yield server
    server.stop()


@pytest.fixture
def pg(postgres, mocked):
    """A fresh database owned by the master, no app role, and rds-main-stg holding the master's credentials."""
    master_password = os.urandom(16).hex()
    with postgres.admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
        conn.execute(f"DROP ROLE IF EXISTS {APP}")
        conn.execute(f"ALTER ROLE {MASTER_USER} PASSWORD '{master_password}'")
        conn.execute(f"CREATE DATABASE {DBNAME} OWNER {MASTER_USER}")
    with connect(postgres, MASTER_USER, master_password) as conn:
        conn.execute("CREATE TABLE before_app (id serial PRIMARY KEY, note text)")
    value = {"DB_HOST": "aws-practice-stg.x.ap-northeast-1.rds.amazonaws.com", "DB_PORT": "5432", "DB_NAME": DBNAME,
             "DB_USER_NAME": MASTER_USER, "DB_PASSWORD": master_password}
    client("secretsmanager").create_secret(Name=MAIN, SecretString=json.dumps(value), Tags=[{"Key": k, "Value": v} for k, v in OWNED.items()])
    postgres.master_password = master_password
    return postgres


def connect(server, user, password, dbname=DBNAME):
    import psycopg

    return psycopg.connect(host=server.host, port=server.port, user=user, password=password, dbname=dbname, autocommit=True)


def secret(name: str) -> dict:
    return json.loads(client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])


def versions(name: str) -> int:
    return len(client("secretsmanager").list_secret_version_ids(SecretId=name)["Versions"])


def create_app_user(capsys, pg, *extra):
    return run_cli(capsys, "db", "create-app-user", "--env", "stg", "--through", f"{pg.host}:{pg.port}", "--yes", *extra)


def role(pg) -> tuple:
    with pg.admin() as conn:
        return conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin FROM pg_roles WHERE rolname = %s", (APP,)).fetchone()


def test_the_app_user_logs_in_with_rds_main_and_uses_tables_made_before_and_after(capsys, pg):
    code, out, err = create_app_user(capsys, pg)
    assert code == 0, err
    main, master = secret(MAIN), secret(MASTER)
    assert main["DB_USER_NAME"] == APP and main["DB_PASSWORD"] != pg.master_password
    assert {k: main[k] for k in ("DB_HOST", "DB_PORT", "DB_NAME")} == {k: master[k] for k in ("DB_HOST", "DB_PORT", "DB_NAME")}
    assert master["DB_USER_NAME"] == MASTER_USER and master["DB_PASSWORD"] == pg.master_password
    tags = {t["Key"]: t["Value"] for t in client("secretsmanager").describe_secret(SecretId=MASTER)["Tags"]}
    assert tags.items() >= {**OWNED, "Name": MASTER}.items()
    assert role(pg) == (False, False, False, True)
    # A table the master makes AFTER the user was made: default privileges cover it, and its sequence.
    with connect(pg, MASTER_USER, master["DB_PASSWORD"]) as conn:
        conn.execute("CREATE TABLE after_app (id serial PRIMARY KEY, note text)")
    with connect(pg, APP, main["DB_PASSWORD"]) as conn:
        for table in ("before_app", "after_app"):
            conn.execute(f"INSERT INTO {table} (note) VALUES ('hello')")
            conn.execute(f"UPDATE {table} SET note = 'bye'")
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)
            conn.execute(f"DELETE FROM {table}")
    assert pg.master_password not in out + err and main["DB_PASSWORD"] not in out + err


def test_the_app_user_cannot_create_roles_or_databases(capsys, pg):
    import psycopg

    assert create_app_user(capsys, pg)[0] == 0
    with connect(pg, APP, secret(MAIN)["DB_PASSWORD"]) as conn:
        for statement in ("CREATE ROLE intruder", f"CREATE DATABASE {APP}_2", f"ALTER ROLE {APP} CREATEDB"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_a_second_run_changes_nothing(capsys, pg):
    assert create_app_user(capsys, pg)[0] == 0
    before = (secret(MAIN), secret(MASTER), versions(MAIN), versions(MASTER))
    code, out, err = create_app_user(capsys, pg)
    assert code == 0, err
    assert (secret(MAIN), secret(MASTER), versions(MAIN), versions(MASTER)) == before
    assert "nothing to change" in err
    with connect(pg, APP, before[0]["DB_PASSWORD"]):
        pass


def test_rotate_stores_a_new_password_and_the_role_takes_it(capsys, pg):
    import psycopg

    assert create_app_user(capsys, pg)[0] == 0
    old = secret(MAIN)["DB_PASSWORD"]
    code, _, err = create_app_user(capsys, pg, "--rotate")
    assert code == 0, err
    new = secret(MAIN)["DB_PASSWORD"]
    assert new != old and secret(MASTER)["DB_PASSWORD"] == pg.master_password
    with connect(pg, APP, new):
        pass
    with pytest.raises(psycopg.OperationalError):
        connect(pg, APP, old)


class Killed(BaseException):
    """Stands for the process dying: nothing after it runs (not even `except Exception`)."""


def kill_after(operation: str, secret_id: str):
    """An after-call hook: the call reached AWS, then the process 'dies'."""
    def hook(http_response, parsed, model, **kwargs):
        if model.name == operation and (kwargs.get("context") or {}).get("killed") is None:
            if secret_id in json.dumps(parsed, default=str):
                raise Killed()
    return ("after-call.secretsmanager.*", hook)


@pytest.mark.parametrize("operation,secret_id", [("CreateSecret", MASTER), ("PutSecretValue", MAIN)])
def test_a_kill_after_each_write_is_finished_by_running_again(capsys, pg, monkeypatch, operation, secret_id):
    from conftest import hook_every_session

    hooks = hook_every_session(monkeypatch, [kill_after(operation, secret_id)])
    with pytest.raises(Killed):
        create_app_user(capsys, pg)
    assert role(pg) is None  # killed before the role was made
    hooks.clear()
    code, _, err = create_app_user(capsys, pg)
    assert code == 0, err
    assert secret(MASTER)["DB_PASSWORD"] == pg.master_password and secret(MASTER)["DB_USER_NAME"] == MASTER_USER
    with connect(pg, APP, secret(MAIN)["DB_PASSWORD"]):
        pass


def test_a_rotation_killed_before_alter_role_is_finished_by_running_again(capsys, pg, monkeypatch):
    from conftest import hook_every_session

    assert create_app_user(capsys, pg)[0] == 0
    hooks = hook_every_session(monkeypatch, [kill_after("PutSecretValue", MAIN)])
    with pytest.raises(Killed):
        create_app_user(capsys, pg, "--rotate")
    hooks.clear()
    stored = secret(MAIN)["DB_PASSWORD"]
    code, _, err = create_app_user(capsys, pg)  # no --rotate: the stored password is made the role's
    assert code == 0, err
    assert "password set" in err and secret(MAIN)["DB_PASSWORD"] == stored
    with connect(pg, APP, stored):
        pass


def test_a_wrong_master_password_is_one_line_exit_1_without_it(capsys, pg):
    with pg.admin() as conn:
        conn.execute(f"ALTER ROLE {MASTER_USER} PASSWORD 'changed-by-hand'")
    code, out, err = create_app_user(capsys, pg)
    assert code == 1
    assert err.count("\n") == 1 and "was refused" in err and "db reset-password" in err
    assert pg.master_password not in out + err
    assert secret(MAIN)["DB_USER_NAME"] == MASTER_USER and versions(MAIN) == 1  # checked before anything was written
    with pytest.raises(Exception):
        secret(MASTER)


def test_a_missing_database_and_a_refused_connection_are_one_line_exit_1(capsys, pg):
    with pg.admin() as conn:
        conn.execute(f"DROP DATABASE {DBNAME} WITH (FORCE)")
    code, _, err = create_app_user(capsys, pg)
    assert code == 1 and err.count("\n") == 1 and f"database {DBNAME} does not exist" in err
    code, _, err = run_cli(capsys, "db", "create-app-user", "--env", "stg", "--through", f"127.0.0.1:{pg_server._free_port()}", "--yes")
    assert code == 1 and err.count("\n") == 1 and "cannot connect to PostgreSQL" in err and "db tunnel" in err
    assert pg.master_password not in err


def test_without_through_it_opens_a_tunnel_of_its_own_and_terminates_the_session(capsys, monkeypatch, pg, tmp_path):
    """The stand-in plugin forwards the tunnel's local port to the test's PostgreSQL."""
    from test_db_tunnel import Ssm, install_stand_ins, nat_and_db
    from conftest import hook_every_session

    calls = install_stand_ins(tmp_path, monkeypatch)
    monkeypatch.setenv("STAND_IN_SSM_FORWARD", f"{pg.host}:{pg.port}")
    instance, _ = nat_and_db()
    ssm = Ssm()
    hook_every_session(monkeypatch, [("before-call.ssm.*", ssm)])
    code, out, err = run_cli(capsys, "db", "create-app-user", "--env", "stg")
    assert code == 0, err
    assert ssm.names() == ["StartSession", "TerminateSession"] and ssm.calls[0][1]["Target"] == instance
    with connect(pg, APP, secret(MAIN)["DB_PASSWORD"]):
        pass
    assert all(pg.master_password not in json.dumps(c) for c in calls("session-manager-plugin"))


def test_a_bad_through_address_is_exit_2_before_anything(capsys, mocked):
    code, _, err = run_cli(capsys, "db", "create-app-user", "--env", "stg", "--through", "localhost")
    assert code == 2 and err == "error: --through 'localhost' must be HOST:PORT, like 127.0.0.1:15432\n"
