"""`awsprac cost`: numbers from the price table for what the env holds (built on moto), running and parked."""

from __future__ import annotations

import dataclasses
import json

import pytest

from awsprac.commands import cost, park as operate
from awsprac.engine import prices
from awsprac.engine.errors import UsageError

from db_helpers import client, up

BUILD = ["vpc", "subnets", "igw", "nat-iam", "nat", "secrets", "rds", "ecr"]


@pytest.fixture
def built(ctx, clock):
    up(ctx, BUILD)
    return ctx


def table(region="ap-northeast-1") -> dict:
    return cost.price_table(region)


def test_a_built_env_costs_what_the_table_says_running_and_parked(built, make_ctx):
    p = table()
    h = p["hours_per_month"]
    (volume,) = client("ec2").describe_volumes()["Volumes"]  # the NAT's root volume (moto: 8 GiB gp2)
    nat, root, ipv4 = p["ec2_instance_hour"]["t2.micro"] * h, volume["Size"] * p["ebs_gb_month"][volume["VolumeType"]], p["public_ipv4_hour"] * h
    db, storage, secret = p["rds_instance_hour"]["postgres"]["db.t4g.micro"] * h, 20 * p["rds_storage_gb_month"]["gp3"], p["secret_month"]
    result = cost.estimate(make_ctx())
    kinds = [r["kind"] for r in result["resources"]]
    assert kinds == ["NAT instance", "EBS volume", "public IPv4", "DB instance", "DB storage", "secret", "ECR repository"]
    assert result["totals"]["running"] == round(nat + root + ipv4 + db + storage + secret, 2) == 37.12
    assert result["totals"]["parked"] == round(root + storage + secret, 2) == 4.12
    assert result["totals"]["now"] == result["totals"]["running"]

    operate.stop(make_ctx())
    parked = cost.estimate(make_ctx())
    assert parked["totals"]["now"] == parked["totals"]["parked"] == 4.12
    assert parked["totals"]["running"] == 37.12  # what starting it again would cost


def test_the_nat_gateway_design_is_shown_next_to_the_instance(built, make_ctx):
    p = table()
    h = p["hours_per_month"]
    g = cost.estimate(make_ctx(), nat_gb=100)["nat_gateway_design"]
    assert g["nat_gateway_monthly"] == round(p["nat_gateway_hour"] * h + p["public_ipv4_hour"] * h + 100 * p["nat_gateway_gb"], 2) == 55.11
    assert g["nat_instance_running"] == round(p["ec2_instance_hour"]["t2.micro"] * h + 8 * p["ebs_gb_month"]["gp2"] + p["public_ipv4_hour"] * h, 2) == 15.71
    assert g["nat_instance_parked"] == 0.96


def test_us_east_1_has_its_own_table(make_ctx, cfg):
    east = dataclasses.replace(cfg, region="us-east-1", network=dataclasses.replace(cfg.network, azs=("us-east-1a", "us-east-1c")),
                               database=dataclasses.replace(cfg.database, availability_zone="us-east-1a"))
    result = cost.estimate(make_ctx(config=east))
    assert result["region"] == "us-east-1" and result["resources"] == []
    assert result["totals"] == {"running": 0.0, "parked": 0.0, "now": 0.0}
    assert result["nat_gateway_design"]["nat_gateway_monthly"] == round(0.045 * 730 + 0.005 * 730 + 10 * 0.045, 2)


def test_every_table_states_its_date_and_sources_and_has_every_price():
    keys = {"region", "currency", "as_of", "notice", "sources", "hours_per_month", "ec2_instance_hour", "ebs_gb_month",
            "nat_gateway_hour", "nat_gateway_gb", "public_ipv4_hour", "rds_instance_hour", "rds_storage_gb_month",
            "rds_snapshot_gb_month", "secret_month", "ecr_gb_month", "fargate", "alb"}
    assert {"ap-northeast-1", "us-east-1"} <= set(prices.regions())
    for region in prices.regions():
        t = table(region)
        assert set(t) == keys and t["region"] == region
        assert "not a quote" in t["notice"].lower()
        assert all(url.startswith("https://aws.amazon.com/") for url in t["sources"].values())


def test_an_unknown_region_names_the_regions_with_a_table():
    with pytest.raises(UsageError, match=r"no price table for region eu-west-3: awsprac has one for ap-northeast-1, us-east-1"):
        cost.price_table("eu-west-3")


def test_cost_json_and_table_through_the_cli(built, monkeypatch, tmp_path, capsys):
    """The command itself, in-process (moto already holds the built env): JSON shape, and the table."""
    from awsprac.engine.app import App, Settings
    from conftest import ENVS

    monkeypatch.setattr(App, "context", lambda self, **o: built)
    cost.command(App(Settings(envs_dir=ENVS), "stg"), True, 10.0)
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"env", "region", "currency", "prices", "resources", "totals", "nat_gateway_design", "notes"}
    assert set(data["resources"][0]) == {"kind", "name", "id", "state", "running", "parked", "basis", "now"}
    assert data["prices"]["as_of"] and data["currency"] == "USD"
    cost.command(App(Settings(envs_dir=ENVS), "stg"), False, 10.0)
    out = capsys.readouterr().out
    assert "$37.12" in out and "$4.12" in out and "NAT gateway design instead" in out and "not a quote" in out


def test_unknown_region_through_the_cli_exits_2(awsprac):
    text = (awsprac.cwd / "envs" / "stg.toml").read_text().replace("ap-northeast-1", "eu-west-3")
    (awsprac.cwd / "envs" / "stg.toml").write_text(text)
    result = awsprac("cost", "--env", "stg")
    assert result.returncode == 2
    assert "no price table for region eu-west-3" in result.stderr


def test_final_snapshots_left_by_destroy_are_priced_listed_and_say_how_to_remove_them(built, make_ctx, capsys):
    """Each destroy keeps a final snapshot `<db>-final-<UTC time>` (billed until deleted): cost and status list
    this env's, found by their tags (copied from the instance), and destroy prints how to remove them."""
    from conftest import run_cli
    from db_helpers import destroy

    destroy(make_ctx())
    (snapshot,) = client("rds").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    result = cost.estimate(make_ctx())
    (line,) = [r for r in result["resources"] if r["kind"] == "DB final snapshots"]
    monthly = round(snapshot["AllocatedStorage"] * table()["rds_snapshot_gb_month"], 2)
    assert (line["name"], line["running"], line["parked"]) == ("1 left by destroy", monthly, monthly)
    assert snapshot["DBSnapshotIdentifier"] in line["id"]

    code, out, err = run_cli(capsys, "status", "--env", "stg")
    assert code == 0
    removal = f"aws rds delete-db-snapshot --db-snapshot-identifier {snapshot['DBSnapshotIdentifier']} --region ap-northeast-1"
    assert f"final snapshot {snapshot['DBSnapshotIdentifier']} of aws-practice-stg: 20 GiB, ${monthly:.2f}/month until deleted: {removal}" in err
    code, out, err = run_cli(capsys, "destroy", "--env", "stg", "--yes")
    assert code == 0 and removal in err
