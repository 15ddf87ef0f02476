"""`awsprac stop` / `start` with the app tier on: the service parks first and comes back last, found by
the park walker through the registry's order; parked, the tasks cost nothing (the load balancer does)."""

import pytest

from awsprac.commands import cost, park as operate
from awsprac.engine import runner

from app_helpers import BACKEND, TIER, app_env, client, push_image  # noqa: F401
from conftest import Calls, build


@pytest.fixture
def built(app_env, clock):
    push_image("abc1234")
    build(app_env(), TIER)
    return app_env


def desired_count():
    return client("ecs").describe_services(cluster=BACKEND, services=[BACKEND])["services"][0]["desiredCount"]


def test_stop_parks_the_service_first_and_start_brings_it_back(built, capsys):
    build(built(), ["rds"])
    calls = Calls()
    operate.stop(built(hooks=[("before-call.*.*", calls)]))
    assert desired_count() == 0
    assert calls.writes.index("UpdateService") < calls.writes.index("StopDBInstance")  # its tasks use the DB
    assert "keeps billing while the service is parked" in capsys.readouterr().err
    parked = {r["kind"]: r for r in cost.estimate(built())["resources"]}
    assert parked["Fargate tasks"]["now"] == 0.0 and parked["load balancer"]["now"] == parked["load balancer"]["running"] > 0
    again = Calls()
    operate.stop(built(hooks=[("before-call.*.*", again)]))
    assert [w for w in again.writes if w == "UpdateService"] == []  # already parked: nothing sent
    assert runner.plan(built(), runner.resolve(TIER)).changes == []  # parked is not drift
    started = Calls()
    operate.start(built(hooks=[("before-call.*.*", started)]))
    assert desired_count() == 1
    assert started.writes.index("StartDBInstance") < started.writes.index("UpdateService")
