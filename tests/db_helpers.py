"""Shared by the database tests: a full `up`, moto clients, and AWS behaviour moto lacks, injected.

Injection happens in botocore's `before-call` event, registered on the Context's session before its
clients exist: a handler returning (http response, parsed body) replaces the call; None lets it through.
"""

from __future__ import annotations

import copy
import json

import boto3
import botocore.awsrequest
import botocore.exceptions

from awsprac.engine import runner

from conftest import build

REGION = "ap-northeast-1"
OWNED = {"awsprac:project": "aws-practice", "awsprac:env": "stg"}
DB = "aws-practice-stg"
SECRET = "rds-main-stg"


def client(service: str):
    """A plain client on in-process moto: never hooked, so tests see what AWS (moto) holds."""
    return boto3.client(service, region_name=REGION)


def up(ctx, names=None):
    return build(ctx, names)


def plan(ctx, names=None):
    return runner.plan(ctx, runner.resolve(names))


def destroy(ctx):
    steps = runner.resolve(None)
    planned = runner.teardown_plan(ctx, steps)
    outcome = runner.destroy(ctx, steps, planned)
    return planned, outcome


def secret_value() -> dict:
    return json.loads(client("secretsmanager").get_secret_value(SecretId=SECRET)["SecretString"])


def db() -> dict:
    return client("rds").describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]


# One fake clock and one way to answer with AWS's error for every test file.
from conftest import FakeClock  # noqa: E402,F401  (re-exported for the database tests)
from conftest import aws_error as error  # noqa: E402


def ok(body: dict):
    return botocore.awsrequest.AWSResponse("https://aws.example", 200, {}, None), {**body, "ResponseMetadata": {"HTTPStatusCode": 200}}


class Recorder:
    """`provide-client-params.*.*`: what awsprac SENDS, per operation, in order."""

    def __init__(self):
        self.sent: list[tuple[str, dict]] = []

    def __call__(self, params, model, **kwargs):
        self.sent.append((model.name, copy.deepcopy(params)))

    def of(self, operation: str) -> list[dict]:
        return [p for name, p in self.sent if name == operation]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.sent]

    @property
    def writes(self) -> list[str]:
        return [n for n in self.names if not n.startswith(("Describe", "Get", "List"))]

    hook = property(lambda self: ("provide-client-params.*.*", self))


class Fail:
    """Answer `operation` with an AWS error for the first `times` calls (None: always)."""

    def __init__(self, operation: str, code: str, message: str = "", times: int | None = 1, status: int = 400, when=None):
        self.operation, self.code, self.message, self.times, self.status, self.when = operation, code, message, times, status, when
        self.calls = 0

    def __call__(self, model, params, **kwargs):
        body = params.get("body") if isinstance(params.get("body"), dict) else params
        if model.name != self.operation or (self.when is not None and not self.when(body)):
            return None
        if self.times is not None and self.calls >= self.times:
            return None
        self.calls += 1
        return error(self.code, self.message, self.status)

    hook = property(lambda self: ("before-call.*.*", self))


class DescribeDb:
    """DescribeDBInstances answered from moto, then changed as a test says: moto has every instance
    `available` at once, and omits fields AWS returns. `edits` are applied to successive calls (each a
    dict to merge, or a function of the instance); once they run out, moto's answer goes through as is."""

    def __init__(self, *edits, repeat_last: bool = False):
        self.edits = list(edits)
        self.repeat_last = repeat_last
        self.seen: list[str] = []  # statuses returned
        self._rds = None

    def __call__(self, model, params, **kwargs):
        if model.name != "DescribeDBInstances" or not self.edits:
            return None
        # before-call sees the serialized request: the API parameters are in its body
        ident = (params.get("body") or {}).get("DBInstanceIdentifier")
        try:
            self._rds = self._rds or client("rds")
            items = self._rds.describe_db_instances(**({"DBInstanceIdentifier": ident} if ident else {}))["DBInstances"]
        except botocore.exceptions.ClientError:
            return None  # not found: moto's own answer is the right one
        edit = self.edits[0] if (self.repeat_last and len(self.edits) == 1) else self.edits.pop(0)
        items = [apply_edit(copy.deepcopy(i), edit) for i in items]
        self.seen.append(items[0].get("DBInstanceStatus"))
        return ok({"DBInstances": items})

    hook = property(lambda self: ("before-call.rds.DescribeDBInstances", self))


def apply_edit(item: dict, edit) -> dict:
    if callable(edit):
        return edit(item) or item
    for key, value in edit.items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return item


CREATING = {"DBInstanceStatus": "creating", "Endpoint": None}
