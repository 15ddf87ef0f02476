"""`awsprac nat verify`: prove the NAT instance forwards, from inside, with an SSM Run Command.

The guide's "NAT instance test" made automatic: IP forwarding, the MASQUERADE rule, iptables
enabled at boot, and an outbound HTTPS request from the instance itself. Read-only on the
instance; time-boxed (`waiting.wait_for`); every failed check says how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from awsprac.engine import lookup, waiting
from awsprac.engine.aws import error_code, translate
from awsprac.engine.errors import AwspracError, UsageError

DOCUMENT = "AWS-RunShellScript"
CHECK_URL = "https://checkip.amazonaws.com"
TIMEOUT = 120.0  # seconds for the whole command, from send to result
POLL = 3.0

# Each line prints `key=value`, whatever happens (errors included), so a missing key means the script broke.
SCRIPT = (
    'echo "ip_forward=$(sysctl -n net.ipv4.ip_forward 2>&1)"',
    'echo "masquerade=$(iptables -t nat -S POSTROUTING 2>&1 | grep -- MASQUERADE | tr \'\\n\' \';\')"',
    'echo "iptables_enabled=$(systemctl is-enabled iptables 2>&1)"',
    f"echo \"https=$(curl -sS -o /dev/null -w '%{{http_code}}' --max-time 10 {CHECK_URL} 2>&1)\"",
)

RUNNING_STATUSES = ("Pending", "InProgress", "Delayed")


class NatNotVerified(AwspracError):
    """The NAT could not be checked, or a check failed (exit 1)."""


@dataclass(frozen=True)
class Check:
    key: str  # in the script's output
    title: str
    passes: Callable[[str], bool]
    fix: str


CHECKS = (
    Check("ip_forward", "IP forwarding (net.ipv4.ip_forward)", lambda v: v == "1",
          "on the instance: `sudo sysctl -w net.ipv4.ip_forward=1` and keep `net.ipv4.ip_forward=1` in /etc/sysctl.d/; "
          "or terminate it and run `awsprac up --env {env}` (the user data sets it up)"),
    Check("masquerade", "MASQUERADE rule (iptables -t nat POSTROUTING)", lambda v: "-j MASQUERADE" in v,
          "on the instance: `sudo iptables -t nat -A POSTROUTING -o $(ip route show default | awk '{{print $5}}') -j MASQUERADE "
          "&& sudo service iptables save`; or terminate it and run `awsprac up --env {env}`"),
    Check("iptables_enabled", "iptables enabled at boot (systemctl is-enabled iptables)", lambda v: v == "enabled",
          "on the instance: `sudo dnf install -y iptables-services && sudo systemctl enable --now iptables` "
          "(else the rule is gone after a reboot)"),
    Check("https", f"outbound HTTPS ({CHECK_URL})", lambda v: v == "200",
          "the instance itself cannot reach the internet: check its public IP, the public route table "
          "(0.0.0.0/0 -> internet gateway) and its security group's outbound rule: `awsprac doctor --env {env}`"),
)


@dataclass(frozen=True)
class Result:
    check: Check
    value: str
    ok: bool


def find_instance(ctx) -> lookup.Found:
    """The env's NAT instance, or a clear error saying why there is nothing to verify."""
    from awsprac.steps import nat

    cfg, ec2 = ctx.cfg, ctx.aws.ec2
    if cfg.nat.mode != "instance":
        raise UsageError(f"env {cfg.env}'s NAT mode is {cfg.nat.mode!r}: `nat verify` checks a NAT instance from inside "
                         f"(a NAT gateway is run by AWS)")
    name = nat.names(cfg).instance
    with translate("looking up", f"NAT instance {name}"):
        vpc = lookup.find_by_names(ec2, lookup.VPC, [cfg.vpc_name]).get(cfg.vpc_name)
        instance = lookup.find_by_names(ec2, nat.NAT_INSTANCE, [name], vpc.id).get(name) if vpc else None
    if instance is None:
        # nothing built yet: exit 2, as for every command that needs a resource to act on (db reset-password, export)
        raise UsageError(f"no NAT instance {name} in env {cfg.env}: run `awsprac up --env {cfg.env}` first")
    return instance


def ready_for_ssm(ctx, instance: lookup.Found) -> None:
    """Stopped or without the instance profile, SSM cannot run anything on it: say so, and how to fix it."""
    env, name = ctx.cfg.env, instance.name
    if instance.state in ("stopped", "stopping"):
        raise NatNotVerified(f"NAT instance {name} ({instance.id}) is {instance.state}: `awsprac start --env {env}`, "
                             f"then verify again (the private subnets have no egress meanwhile)")
    if instance.state != "running":
        raise NatNotVerified(f"NAT instance {name} ({instance.id}) is {instance.state}: wait a minute and verify again")
    if not instance.raw.get("IamInstanceProfile"):
        raise NatNotVerified(f"NAT instance {name} ({instance.id}) has no instance profile, so SSM cannot reach it: "
                             f"`awsprac up --env {env}` attaches it; the agent registers a minute or two later")


def send(ctx, instance: lookup.Found) -> str:
    ssm = ctx.aws.client("ssm")
    try:
        reply = ssm.send_command(
            InstanceIds=[instance.id], DocumentName=DOCUMENT, Comment="awsprac nat verify",
            Parameters={"commands": list(SCRIPT), "executionTimeout": ["60"]}, TimeoutSeconds=60,
        )
    except Exception as exc:
        if error_code(exc) == "InvalidInstanceId":
            raise NatNotVerified(
                f"NAT instance {instance.name} ({instance.id}) is not registered with SSM (yet): the SSM agent registers a "
                f"minute or two after boot, with the instance profile {ctx.cfg.project}-nat-{ctx.cfg.env} "
                f"(AmazonSSMManagedInstanceCore) and a way out to SSM; try again in a minute, then check "
                f"`aws ssm describe-instance-information --filters Key=InstanceIds,Values={instance.id} --region {ctx.cfg.region}`"
            ) from None
        with translate("sending the NAT checks to", f"instance {instance.id} (ssm send-command)"):
            raise
    return reply["Command"]["CommandId"]


def wait_result(ctx, command_id: str, instance_id: str) -> dict:
    ssm = ctx.aws.client("ssm")
    latest: dict = {}

    def check() -> tuple[bool, str]:
        nonlocal latest
        try:
            latest = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except Exception as exc:
            if error_code(exc) == "InvocationDoesNotExist":  # right after send-command, for a moment
                return False, "Pending"
            with translate("reading the result of", f"command {command_id} on {instance_id}"):
                raise
        status = latest.get("Status", "")
        return status not in RUNNING_STATUSES, status

    waiting.wait_for(ctx.report, f"NAT checks on {instance_id}", check, timeout=TIMEOUT, interval=POLL)
    return latest


def parse(output: str) -> dict[str, str]:
    values = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in {c.key for c in CHECKS}:
            values[key.strip()] = value.strip().rstrip(";")
    return values


def judge(invocation: dict) -> list[Result]:
    status = invocation.get("Status", "")
    values = parse(invocation.get("StandardOutputContent") or "")
    if status == "Success" and not (invocation.get("StandardOutputContent") or invocation.get("StandardErrorContent")):
        # The script prints a line per check whatever happens: "Success" with no output at all is an
        # emulation (the sandbox, moto behind AWS_ENDPOINT_URL) that runs nothing on instances.
        raise UsageError("the checks did not run on the NAT instance: command Success with no output at all: the endpoint "
                         "answering runs no commands on instances (an emulation such as the sandbox cannot); "
                         "`awsprac nat verify` needs AWS")
    if status not in ("Success", "Failed") or not values:
        detail = (invocation.get("StandardErrorContent") or invocation.get("StatusDetails") or "no output").strip().splitlines()
        raise NatNotVerified(f"the checks did not run on the NAT instance: command {status or 'unknown'} "
                             f"({detail[-1] if detail else 'no output'}); run `awsprac nat verify` again")
    return [Result(c, values.get(c.key, "(no answer)"), c.passes(values.get(c.key, ""))) for c in CHECKS]


def verify(ctx) -> list[Result]:
    instance = find_instance(ctx)
    ready_for_ssm(ctx, instance)
    command_id = send(ctx, instance)
    return judge(wait_result(ctx, command_id, instance.id))


def run(app) -> None:
    """`awsprac nat verify`: one line per check, exit 1 when any fails."""
    if app.settings.sandbox:
        # moto answers SendCommand with "Success" and runs nothing: there is nothing to verify.
        raise UsageError(f"the sandbox cannot run commands on instances, so it cannot check a NAT instance from inside: "
                         f"run `awsprac nat verify --env {app.cfg.env}` against AWS")
    ctx = app.context()
    results = verify(ctx)
    show(app.report, results, ctx.cfg.env, f"NAT checks for {app.title}")
    if not all(r.ok for r in results):
        raise NatNotVerified("")


def show(report, results: list[Result], env: str, title: str) -> None:
    report.line(title)
    for r in results:
        report.line(f"  {'✓' if r.ok else '✗'} {r.check.title}: {r.value or '(empty)'}")
        if not r.ok:
            report.line(f"      fix: {r.check.fix.format(env=env)}")
    failed = sum(not r.ok for r in results)
    report.line("The NAT forwards: all checks pass." if not failed else f"{failed} of {len(results)} check(s) failed.")
