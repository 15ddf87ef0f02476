"""`status` says whether the NAT instance's setup finished at boot: the user data writes its result on the
console, status reads it back with GetConsoleOutput (a read of the CLI user's; `up` never makes it).
The script runs for real here (its commands stubbed); AWS's answers are injected (moto's console output
is a fixed text with no result: the sandbox's "unknown")."""

import base64
import os
import subprocess

import pytest

from awsprac.engine import runner
from awsprac.steps.nat import userdata

from conftest import aws_error, build, stub_commands
from test_steps_nat import STEPS, answer, the_instance

# Every command the script needs from the system, stubbed; `rpm -q` says whether iptables-services is there.
STUBS = {
    "rpm": "#!/bin/sh\n[ \"$STUB_INSTALLED\" = yes ]\n",
    "dnf": "#!/bin/sh\nexit 1\n",
    "systemctl": "#!/bin/sh\nexit 0\n",
    "sysctl": "#!/bin/sh\nexit 0\n",
    "iptables": "#!/bin/sh\ncase \"$*\" in *-C*) exit 1;; esac\nexit 0\n",
    "iptables-save": "#!/bin/sh\necho '*nat'\n",
    "ip": "#!/bin/sh\necho 'default via 10.0.0.1 dev ens5'\n",
}


def console_after_boot(cfg, tmp_path, installed: bool) -> str:
    """What the real user data leaves on the console, run with iptables-services there or impossible to install."""
    stubs = stub_commands(tmp_path, STUBS)
    script = tmp_path / "user-data.sh"
    script.write_text(userdata.render(cfg))
    console = tmp_path / "console"
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "STUB_INSTALLED": "yes" if installed else "no",
           "AWSPRAC_CONSOLE": str(console), "AWSPRAC_RETRY_DELAY": "0",
           "AWSPRAC_SYSCTL_FILE": str(tmp_path / "sysctl.conf"), "AWSPRAC_RULES_FILE": str(tmp_path / "iptables")}
    ran = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert (ran.returncode == 0) is installed, ran.stdout + ran.stderr
    return "[    0.000000] Linux version 6.1\n" + console.read_text() + "cloud-init: finished\n"


def status_of_the_nat(make_ctx, *hooks) -> str:
    rows = runner.status(make_ctx(hooks=list(hooks)), runner.resolve(STEPS))
    (row,) = [r for r in rows if r.kind == "instance"]
    return row.state


def console(text: str):
    def hook(model, **kwargs):
        if model.name == "GetConsoleOutput":  # AWS sends it base64-encoded (botocore decodes it after the call)
            return answer({"InstanceId": "i-0", "Output": base64.b64encode(text.encode()).decode()})
    return ("before-call.ec2.GetConsoleOutput", hook)


def test_a_setup_that_finished_says_so(ctx, make_ctx, cfg, tmp_path):
    build(ctx, STEPS)
    text = console_after_boot(cfg, tmp_path, installed=True)
    assert "awsprac-nat: setup started" in text and "awsprac-nat: ready: forwarding on" in text
    assert status_of_the_nat(make_ctx, console(text)) == "running; NAT setup finished"


def test_a_setup_that_failed_at_boot_says_where_and_what_to_do(ctx, make_ctx, cfg, tmp_path):
    build(ctx, STEPS)
    text = console_after_boot(cfg, tmp_path, installed=False)
    state = status_of_the_nat(make_ctx, console(text))
    assert state.startswith("running; NAT setup failed at install_iptables_services (exit 1): it is not forwarding; ")
    assert "/var/log/cloud-init-output.log" in state and "`awsprac nat verify --env stg`" in state


def test_a_setup_still_running_or_cut_off_is_not_finished(ctx, make_ctx):
    build(ctx, STEPS)
    text = "awsprac-nat: setup started\nawsprac-nat: installing iptables-services failed (attempt 1 of 12; dnf may be busy at boot)\n"
    assert status_of_the_nat(make_ctx, console(text)).startswith("running; NAT setup not finished (started at boot, no result on its console yet)")


def test_the_last_boot_counts(ctx, make_ctx):
    """Launched from a baked AMI the script runs again: its latest result is the one shown."""
    build(ctx, STEPS)
    text = "awsprac-nat: setup started\nawsprac-nat: setup FAILED at configure_nat (exit 2)\nawsprac-nat: setup started\nawsprac-nat: ready: forwarding on\n"
    assert status_of_the_nat(make_ctx, console(text)) == "running; NAT setup finished"


def test_in_the_sandbox_it_is_unknown(ctx, make_ctx):
    build(ctx, STEPS)
    assert status_of_the_nat(make_ctx) == "running; NAT setup unknown (no result on its console)"


def test_a_console_that_cannot_be_read_is_unknown_and_status_goes_on(ctx, make_ctx):
    build(ctx, STEPS)

    def refuse(model, **kwargs):
        return aws_error("UnauthorizedOperation", "You are not authorized to perform this operation.", 403)

    state = status_of_the_nat(make_ctx, ("before-call.ec2.GetConsoleOutput", refuse))
    assert state == "running; NAT setup unknown (console output not readable: UnauthorizedOperation)"


def test_a_stopped_instance_is_not_asked(ctx, make_ctx, calls):
    build(ctx, STEPS)
    import boto3

    boto3.client("ec2", region_name="ap-northeast-1").stop_instances(InstanceIds=[the_instance()["InstanceId"]])
    assert status_of_the_nat(make_ctx, ("before-call.*.*", calls)) == "stopped"
    assert "GetConsoleOutput" not in calls.names


def test_up_never_reads_the_console(ctx, make_ctx, calls):
    build(ctx, STEPS)
    again = make_ctx(hooks=[("before-call.*.*", calls)])
    steps = runner.resolve(STEPS)
    assert runner.apply(again, steps, runner.plan(again, steps)).applied == []
    assert "GetConsoleOutput" not in calls.names
