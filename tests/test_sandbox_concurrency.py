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


def test_a_client_gone_in_the_middle_of_a_request_holds_up_no_one_else():
    """A run killed while sending a request leaves its body short: reading it waits for bytes that never
    come. That wait must not happen inside the one-at-a-time lock, or every other client (the next run,
    the sandbox's other terminals) waits with it."""
    import socket

    from botocore.config import Config
    from moto.server import ThreadedMotoServer

    from awsprac.engine.sandbox import faithful_moto

    faithful_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        half = socket.create_connection((host, port))
        scope = "Credential=testing/20261130/ap-northeast-1/ec2/aws4_request, SignedHeaders=host, Signature=0"
        half.sendall((f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: AWS4-HMAC-SHA256 {scope}\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 400\r\n\r\nAction=DescribeVpcs&Ver").encode())
        # Far longer than this read needs, far shorter than a body read's own timeout: a hang, not a speed check.
        sts = boto3.client("sts", region_name="ap-northeast-1", endpoint_url=f"http://{host}:{port}", aws_access_key_id="testing",
                           aws_secret_access_key="testing", config=Config(read_timeout=20, retries={"max_attempts": 1}))
        assert sts.get_caller_identity()["Account"]
        half.close()
    finally:
        server.stop()
