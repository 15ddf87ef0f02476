"""Deterministic client tokens for the APIs that take one (RunInstances, CreateNatGateway, ...).

The same inputs give the same token, so a retry or a crashed re-run cannot create a second
resource. Include something that changes when the env is rebuilt (the VPC id, say): AWS keeps
a RunInstances token for at least 24 h after the instance is gone, and would otherwise hand
back the old, terminated instance after a destroy and up.
"""

from __future__ import annotations

import hashlib

MAX_LENGTH = 64


def client_token(*parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"awsprac-{digest}"[:MAX_LENGTH]
