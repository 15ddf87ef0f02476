"""`awsprac nat verify` against in-process moto. moto runs SendCommand and GetCommandInvocation but
never executes anything (Success, empty output): the instance's answers (passing, failing, still
running, not registered) are injected with botocore before-call hooks. Nothing leaves the process."""

import botocore.awsrequest
import boto3
import pytest

from awsprac.steps.nat import verify as natverify
from awsprac.engine.errors import UsageError
from awsprac.engine.waiting import WaitTimeout
from conftest import aws_error

REGION = "ap-northeast-1"
NAT = "aws-practice-nat-1a-stg"
GOOD = (
    "ip_forward=1\n"
    "masquerade=-A POSTROUTING -o ens5 -j MASQUERADE;\n"
    "iptables_enabled=enabled\n"
    "https=200\n"
)
BAD = (
    "ip_forward=0\n"
    "masquerade=\n"
    "iptables_enabled=disabled\n"
    "https=000curl: (28) Connection timed out after 10001 milliseconds\n"
)


@pytest.fixture(autouse=True)
def instant_waits(clock):
    pass


def answer(parsed):
    return botocore.awsrequest.AWSResponse("https://aws.invalid", 200, {}, None), {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200}}


class Instance:
    """What the NAT instance answers through SSM: a list of GetCommandInvocation replies, the last repeated."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.sent: list[dict] = []
        self.polls = 0

    def record(self, params, **kwargs):
        self.sent.append(dict(params))  # what awsprac sends; moto then takes the call

    def __call__(self, model, **kwargs):
        if model.name != "GetCommandInvocation":
            return None
        reply = self.replies[min(self.polls, len(self.replies) - 1)]
        self.polls += 1
        if isinstance(reply, str) and reply.startswith("error:"):
            return aws_error(reply.removeprefix("error:"))
        return answer(reply)

    @property
    def hooks(self):
        return [("before-call.ssm.*", self), ("provide-client-params.ssm.SendCommand", self.record)]


def done(output, status="Success"):
    return {"Status": status, "StandardOutputContent": output, "StandardErrorContent": "", "StatusDetails": status}


def nat_instance(profile=True, name=NAT):
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "aws-practice-stg"}]}])["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/18")["Subnet"]["SubnetId"]
    extra = {}
    if profile:
        iam = boto3.client("iam", region_name=REGION)
        iam.create_instance_profile(InstanceProfileName="aws-practice-nat-stg")
        extra["IamInstanceProfile"] = {"Name": "aws-practice-nat-stg"}
    return ec2.run_instances(
        ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=subnet, **extra,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
    )["Instances"][0]["InstanceId"]


def test_all_checks_pass_and_what_is_sent(make_ctx):
    instance_id = nat_instance()
    fake = Instance(done(GOOD))
    results = natverify.verify(make_ctx(hooks=fake.hooks))
    assert [(r.check.key, r.value, r.ok) for r in results] == [
        ("ip_forward", "1", True),
        ("masquerade", "-A POSTROUTING -o ens5 -j MASQUERADE", True),
        ("iptables_enabled", "enabled", True),
        ("https", "200", True),
    ]
    (sent,) = fake.sent
    assert sent["InstanceIds"] == [instance_id] and sent["DocumentName"] == "AWS-RunShellScript"
    script = "\n".join(sent["Parameters"]["commands"])
    for probe in ("sysctl -n net.ipv4.ip_forward", "iptables -t nat -S POSTROUTING", "systemctl is-enabled iptables",
                  "--max-time 10 https://checkip.amazonaws.com"):
        assert probe in script


def test_failing_checks_each_say_how_to_fix_and_exit_1(make_ctx, capsys):
    nat_instance()
    results = natverify.verify(make_ctx(hooks=Instance(done(BAD)).hooks))
    assert [r.ok for r in results] == [False, False, False, False]
    from awsprac.engine.report import Reporter

    natverify.show(Reporter(), results, "stg", "NAT checks")
    out = capsys.readouterr().out
    assert "✗ IP forwarding (net.ipv4.ip_forward): 0" in out
    assert "✗ MASQUERADE rule (iptables -t nat POSTROUTING): (empty)" in out
    assert "sudo systemctl enable --now iptables" in out
    assert "✗ outbound HTTPS (https://checkip.amazonaws.com): 000curl: (28) Connection timed out" in out
    assert out.rstrip().endswith("4 of 4 check(s) failed.")


def test_polls_until_the_command_finishes(make_ctx, clock):
    nat_instance()
    fake = Instance("error:InvocationDoesNotExist", done("", "Pending"), done("", "InProgress"), done(GOOD))
    results = natverify.verify(make_ctx(hooks=fake.hooks))
    assert all(r.ok for r in results)
    assert fake.polls == 4 and clock.pauses == [natverify.POLL] * 3


def test_time_boxed(make_ctx, clock):
    nat_instance()
    with pytest.raises(WaitTimeout, match="NAT checks on i-"):
        natverify.verify(make_ctx(hooks=Instance(done("", "InProgress")).hooks))
    assert clock.t <= natverify.TIMEOUT + natverify.POLL


def test_moto_runs_the_command_but_returns_no_output_a_clear_error(make_ctx):
    """Without injection: SendCommand and GetCommandInvocation really go to moto, which answers Success
    with empty output (it executes nothing): that is reported, not taken for a pass."""
    nat_instance()
    with pytest.raises(UsageError, match="the checks did not run on the NAT instance: command Success") as err:
        natverify.verify(make_ctx())
    assert "an emulation such as the sandbox cannot" in str(err.value) and "again" not in str(err.value)
    assert err.value.exit_code == 2


def test_a_command_that_timed_out_on_the_instance(make_ctx):
    nat_instance()
    reply = {**done("", "TimedOut"), "StatusDetails": "DeliveryTimedOut"}
    with pytest.raises(natverify.NatNotVerified, match=r"command TimedOut \(DeliveryTimedOut\)"):
        natverify.verify(make_ctx(hooks=Instance(reply).hooks))


def test_not_registered_with_ssm_yet(make_ctx):
    instance_id = nat_instance()

    def refuse(model, **kwargs):
        if model.name == "SendCommand":
            return aws_error("InvalidInstanceId", "Instances [[i-x]] not in a valid state for account 123456789012")

    with pytest.raises(natverify.NatNotVerified, match="not registered with SSM \\(yet\\)") as exc:
        natverify.verify(make_ctx(hooks=[("before-call.ssm.*", refuse)]))
    assert f"Values={instance_id}" in str(exc.value) and "try again in a minute" in str(exc.value)


def test_stopped_instance(make_ctx):
    instance_id = nat_instance()
    boto3.client("ec2", region_name=REGION).stop_instances(InstanceIds=[instance_id])
    fake = Instance(done(GOOD))
    with pytest.raises(natverify.NatNotVerified, match="is stopped: `awsprac start --env stg`"):
        natverify.verify(make_ctx(hooks=fake.hooks))
    assert fake.sent == []


def test_without_instance_profile(make_ctx):
    nat_instance(profile=False)
    with pytest.raises(natverify.NatNotVerified, match="has no instance profile, so SSM cannot reach it"):
        natverify.verify(make_ctx())


def test_no_nat_instance_and_gateway_mode(make_ctx, cfg):
    import dataclasses

    with pytest.raises(UsageError, match="no NAT instance aws-practice-nat-1a-stg in env stg: run `awsprac up --env stg`"):
        natverify.verify(make_ctx())
    gateway = dataclasses.replace(cfg, nat=dataclasses.replace(cfg.nat, mode="gateway"))
    with pytest.raises(UsageError, match="NAT mode is 'gateway'"):
        natverify.verify(make_ctx(config=gateway))


@pytest.mark.parametrize("output, code", [(GOOD, 0), (BAD, 1)])
def test_cli_prints_one_line_per_check_and_exits_1_on_a_failure(make_ctx, monkeypatch, capsys, output, code):
    from awsprac.engine import aws
    from awsprac.commands import cli
    from conftest import ENVS

    nat_instance()
    fake = Instance(done(output))
    real_make = aws.make

    def make(*args, **kwargs):  # the CLI's own clients, with the instance's answer injected
        clients, warning = real_make(*args, **kwargs)
        for event, handler in fake.hooks:
            clients.register(event, handler)
        return clients, warning

    monkeypatch.setattr(aws, "make", make)
    try:
        cli.main(["nat", "verify", "--env", "stg", "--envs-dir", str(ENVS)])
        exit_code = 0
    except SystemExit as exc:
        exit_code = exc.code
    out = capsys.readouterr()
    assert exit_code == code
    assert out.out.splitlines()[0] == "NAT checks for env stg · account 123456789012 · ap-northeast-1"
    assert len([line for line in out.out.splitlines() if line.lstrip().startswith(("✓", "✗"))]) == 4
    assert ("The NAT forwards: all checks pass." in out.out) == (code == 0)
    print(out.out)


def test_in_the_sandbox_it_says_the_sandbox_cannot_run_commands_and_exits_2(capsys, monkeypatch):
    from conftest import run_cli

    starts = []
    from awsprac.engine import sandbox

    monkeypatch.setattr(sandbox.Sandbox, "start", classmethod(lambda cls, **kw: starts.append(kw)))
    code, out, err = run_cli(capsys, "nat", "verify", "--env", "stg", "--sandbox")
    assert code == 2
    assert err == ("error: the sandbox cannot run commands on instances, so it cannot check a NAT instance from inside: "
                   "run `awsprac nat verify --env stg` against AWS\n")
    assert starts == []  # no emulation even started
