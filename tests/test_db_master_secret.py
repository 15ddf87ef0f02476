"""Once `db create-app-user` ran, rds-main-{env} holds the app user and rds-master-{env} the master: `up`
leaves the app user in rds-main, creates the DB with the master's password, `db reset-password` stores into
rds-master, `status` says which user rds-main holds, destroy deletes both and `up` restores both."""

from __future__ import annotations

import json


from awsprac.engine.plan import Action
from awsprac.steps import secrets

from conftest import run_cli
from db_helpers import OWNED, client, destroy, plan, up

MAIN, MASTER = "rds-main-stg", "rds-master-stg"
MASTER_PASSWORD = "master-Pw-0123456789abcdefghijklmnopq"
APP_PASSWORD = "app-Pw-0123456789abcdefghijklmnopqrstu"


def value(name: str) -> dict:
    return json.loads(client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])


def hand_over(ctx):
    """What `db create-app-user` leaves in Secrets Manager (its own tests run it against PostgreSQL)."""
    up(ctx, ["secrets"])
    sm = client("secretsmanager")
    master = {**value(MAIN), "DB_PASSWORD": MASTER_PASSWORD}
    sm.create_secret(Name=MASTER, SecretString=json.dumps(master), Tags=[{"Key": k, "Value": v} for k, v in {**OWNED, "Name": MASTER}.items()])
    sm.put_secret_value(SecretId=MAIN, SecretString=json.dumps({**master, "DB_USER_NAME": "aws_practice", "DB_PASSWORD": APP_PASSWORD}))


def test_up_leaves_the_app_user_in_rds_main_and_creates_the_db_with_the_masters_password(make_ctx, clock):
    sent = {}

    def create_db(model, params, **kwargs):
        if model.name == "CreateDBInstance":
            sent.update({k: v for k, v in (params.get("body") or {}).items() if k in ("MasterUsername", "MasterUserPassword")})

    ctx = make_ctx(hooks=[("before-call.rds.CreateDBInstance", create_db)])
    hand_over(ctx)
    assert [c for c in plan(make_ctx(), ["secrets"]).changes] == []  # DB_USER_NAME = aws_practice is not drift
    up(ctx, ["vpc", "subnets", "secrets", "rds"])
    assert sent == {"MasterUsername": "postgres", "MasterUserPassword": MASTER_PASSWORD}
    assert value(MAIN)["DB_USER_NAME"] == "aws_practice" and value(MAIN)["DB_PASSWORD"] == APP_PASSWORD
    host = client("rds").describe_db_instances(DBInstanceIdentifier="aws-practice-stg")["DBInstances"][0]["Endpoint"]["Address"]
    assert value(MAIN)["DB_HOST"] == host and value(MASTER)["DB_HOST"] == host


def test_status_says_which_user_rds_main_holds(capsys, ctx):
    up(ctx, ["secrets"])
    code, out, err = run_cli(capsys, "status", "--env", "stg", "--json")
    assert code == 0, err
    (row,) = [r for r in json.loads(out)["resources"] if r["name"] == MAIN]
    assert row["state"] == "active, holds master user postgres"
    hand_over(ctx)
    code, out, err = run_cli(capsys, "status", "--env", "stg", "--json")
    (row,) = [r for r in json.loads(out)["resources"] if r["name"] == MAIN]
    assert row["state"] == "active, holds app user aws_practice"


def test_destroy_deletes_both_secrets_and_up_restores_both(make_ctx, clock):
    ctx = make_ctx()
    hand_over(ctx)
    planned, outcome = destroy(make_ctx())
    assert outcome.ok, outcome.failed
    assert {c.name for c in planned.changes if c.kind == "secret" and c.action is Action.DELETE} == {MAIN, MASTER}
    listed = client("secretsmanager").list_secrets(IncludePlannedDeletion=True)["SecretList"]
    assert all(s.get("DeletedDate") for s in listed) and len(listed) == 2
    again = make_ctx()
    changes = plan(again, ["secrets"]).changes
    assert {(c.name, c.action) for c in changes} == {(MAIN, Action.UPDATE), (MASTER, Action.UPDATE)}
    up(again, ["secrets"])
    assert value(MASTER)["DB_PASSWORD"] == MASTER_PASSWORD and value(MAIN)["DB_PASSWORD"] == APP_PASSWORD


def test_reset_password_stores_the_new_master_password_in_rds_master(capsys, make_ctx, clock):
    ctx = make_ctx()
    hand_over(ctx)
    client("rds").create_db_instance(DBInstanceIdentifier="aws-practice-stg", Engine="postgres", DBInstanceClass="db.t4g.micro",
                                     MasterUsername="postgres", MasterUserPassword=MASTER_PASSWORD, AllocatedStorage=20)
    code, out, err = run_cli(capsys, "db", "reset-password", "--env", "stg", "--yes")
    assert code == 0, err
    assert value(MASTER)["DB_PASSWORD"] != MASTER_PASSWORD and value(MASTER)["DB_USER_NAME"] == "postgres"
    assert value(MAIN)["DB_PASSWORD"] == APP_PASSWORD and value(MAIN)["DB_USER_NAME"] == "aws_practice"
    assert value(MASTER)["DB_PASSWORD"] not in out + err
