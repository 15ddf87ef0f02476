"""The app tier (steps app-iam, app-network, app-alb, app) against in-process moto."""

from awsprac import runner
from awsprac.plan import Action

from app_helpers import ALB, BACKEND, app_env, client, push_image  # noqa: F401
from conftest import build


def test_smoke(app_env):
    push_image("abc1234")
    ctx = app_env()
    planned = build(ctx)
    print("\n".join(c.describe() for c in planned.changes if c.step.startswith("app")))
    again = runner.plan(app_env(), runner.resolve(None))
    assert [c.describe() for c in again.changes] == []
