"""The emulation answers concurrent requests one at a time, as consistently as AWS does.

moto's backends are plain dicts: a read that iterates them while another thread's create adds to
them fails with "dictionary changed size during iteration" (seen in GetAccountAuthorizationDetails
while steps apply at the same time). faithful_moto() serialises moto's request handling.
"""

from __future__ import annotations

import threading

import boto3
import pytest
from moto import mock_aws


def test_moto_handles_one_request_at_a_time(monkeypatch):
    from moto.iam.models import IAMBackend

    from awsprac.engine.sandbox import faithful_moto

    faithful_moto()
    inside, most, entered = [0], [0], threading.Event()
    guard = threading.Lock()
    original = IAMBackend.get_role

    def get_role(self, name):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        entered.set()
        # Hold the request open long enough for the other thread's request to arrive, if it could.
        threading.Event().wait(0.3)
        with guard:
            inside[0] -= 1
        return original(self, name)

    monkeypatch.setattr(IAMBackend, "get_role", get_role)
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
        errors = []

        def read():
            try:
                iam.get_role(RoleName="r")
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors
    assert entered.is_set()
    assert most[0] == 1
