"""The command line's own conventions: usage, exit codes, completion, global options."""

import subprocess
import sys

from conftest import run_cli as run


def test_bare_awsprac_prints_usage_and_exits_0():
    proc = subprocess.run([sys.executable, "-m", "awsprac"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.startswith("Usage: awsprac [OPTIONS] COMMAND") and "awsprac up --env stg --sandbox" in proc.stdout
    assert proc.stderr == ""


def test_bare_command_group_prints_its_usage_and_exits_0(capsys):
    code, out, err = run(capsys, "nat")
    assert code == 0 and out.startswith("Usage: awsprac nat [OPTIONS] COMMAND") and "verify" in out and err == ""
