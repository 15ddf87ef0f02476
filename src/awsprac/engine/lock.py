"""One run at a time per env: a lease kept in AWS, so it holds across machines.

EC2 creates (VPC, subnet, gateway, security group) have no client token and names are not
unique there: two `up` runs at once would build two of each. Before its first write, a run
takes the lease: an SSM parameter created only if absent (`Overwrite=False` is atomic), holding
who took it and until when. It is given back at the end. A lease is taken over only when it
has expired, or when its holder is a process of this machine that no longer exists (a crashed
or killed run). A converged `up` writes nothing, so it takes no lease.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from awsprac.engine.aws import error_code, translate
from awsprac.engine.context import Context
from awsprac.engine.errors import AwspracError

LEASE = timedelta(hours=2)  # longer than the slowest create (RDS, up to ~40 min with waits)


class Locked(AwspracError):
    """Another run holds the env."""


def parameter_name(ctx: Context) -> str:
    # SSM reserves names beginning with "aws" or "ssm", as "/awsprac/..." and "aws-practice-..." would.
    return f"run-lock-{ctx.cfg.project}-{ctx.cfg.env}"


def _holder() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "run": uuid.uuid4().hex}


def _stale(lease: dict, now: datetime) -> bool:
    try:
        if datetime.fromisoformat(lease["expires"]) <= now:
            return True
        if lease.get("host") == socket.gethostname():
            os.kill(int(lease["pid"]), 0)  # signal 0: does the process exist?
    except ProcessLookupError:
        return True
    except (KeyError, ValueError, TypeError, PermissionError):
        return False
    return False


@contextmanager
def held(ctx: Context, command: str):
    """Hold the env's lease for the duration of the block."""
    ssm = ctx.aws.client("ssm")
    name = parameter_name(ctx)
    with translate("taking", f"the run lock {name}"):
        value = _take(ctx, ssm, name, {**_holder(), "command": command})
    try:
        yield
    finally:
        with translate("giving back", f"the run lock {name}"):
            _delete_if(ssm, name, value)


def _take(ctx: Context, ssm, name: str, me: dict) -> str:
    for attempt in (1, 2):
        now = datetime.now(timezone.utc)
        value = json.dumps({**me, "since": now.isoformat(), "expires": (now + LEASE).isoformat()})
        if _create(ssm, name, value, ctx.tags(name)):
            return value
        current = _read(ssm, name)
        if current is None:
            continue  # given back meanwhile
        if attempt == 1 and _stale(json.loads(current), now):
            ctx.report.warn(f"taking over the lock of a run that is gone: {_who(current)}")
            _delete_if(ssm, name, current)
            continue
        raise Locked(
            f"env {ctx.cfg.env} is locked by another awsprac run ({_who(current)}): wait for it to finish; "
            f"if that run is gone for good, `awsprac unlock --env {ctx.cfg.env}` removes the lock"
        )
    raise Locked(f"the run lock {name} changed hands while taking it: run the same command again")


def _create(ssm, name: str, value: str, tags: dict[str, str]) -> bool:
    """Atomic: True when this run created the lease, False when one exists."""
    try:
        ssm.put_parameter(
            Name=name, Value=value, Type="String", Overwrite=False,
            Description="awsprac: a run is changing this env",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
        return True
    except Exception as exc:
        if error_code(exc) == "ParameterAlreadyExists":
            return False
        raise


def holder(ctx: Context) -> tuple[str, str] | None:
    """The lease as it is now: (its raw value, who holds it), or None when the env is not locked."""
    name = parameter_name(ctx)
    with translate("reading", f"the run lock {name}"):
        current = _read(ctx.aws.client("ssm"), name)
    return (current, _who(current)) if current else None


def unlock(ctx: Context, seen: str | None = None) -> str | None:
    """Remove the lease: whoever holds it, or only while it is still `seen` (the lease a person was
    asked about, not a newer run's). Returns who held it, or None."""
    ssm = ctx.aws.client("ssm")
    name = parameter_name(ctx)
    with translate("removing", f"the run lock {name}"):
        current = _read(ssm, name) if seen is None else seen
        if current is not None:
            _delete_if(ssm, name, current)
    return _who(current) if current else None


def _read(ssm, name: str) -> str | None:
    try:
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except Exception as exc:
        if error_code(exc) == "ParameterNotFound":
            return None
        raise


def _delete_if(ssm, name: str, expected: str) -> None:
    """Delete the lease only while it still holds `expected` (never another run's fresh lease)."""
    if _read(ssm, name) != expected:
        return
    try:
        ssm.delete_parameter(Name=name)
    except Exception as exc:
        if error_code(exc) != "ParameterNotFound":
            raise


def _who(value: str) -> str:
    try:
        lease = json.loads(value)
        return f"{lease.get('command', 'a run')} on {lease.get('host')} pid {lease.get('pid')}, since {lease.get('since')}, expires {lease.get('expires')}"
    except (ValueError, AttributeError):
        return "an unreadable lease"
