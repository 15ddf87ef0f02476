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


def _kms_repository_by_hand():
    """An ECR repository made by hand with KMS encryption: drift awsprac reports but cannot fix."""
    import boto3

    boto3.client("ecr", region_name="ap-northeast-1").create_repository(
        repositoryName="aws-practice-stg", imageTagMutability="IMMUTABLE", encryptionConfiguration={"encryptionType": "KMS"})


def test_plan_detailed_exitcode_0_nothing_2_changes_1_error(capsys, mocked, tmp_path):
    assert run(capsys, "plan", "--env", "stg")[0] == 0  # without the flag: 0 even with everything to create
    assert run(capsys, "plan", "--env", "stg", "--detailed-exitcode")[0] == 2
    assert run(capsys, "plan", "--env", "stg", "--detailed-exitcode", "--json")[0] == 2
    run(capsys, "up", "--env", "stg", "--yes")
    assert run(capsys, "plan", "--env", "stg", "--detailed-exitcode")[0] == 0
    code, out, err = run(capsys, "plan", "--env", "qa", "--detailed-exitcode")  # bad input is an error here, not "changes"
    assert code == 1 and err.startswith("error: unknown env 'qa'")


def test_plan_detailed_exitcode_2_for_drift_only_and_up_says_it_is_left(capsys, mocked):
    run(capsys, "up", "--env", "stg", "--yes")
    import boto3

    boto3.client("ecr", region_name="ap-northeast-1").delete_repository(repositoryName="aws-practice-stg", force=True)
    _kms_repository_by_hand()
    code, out, err = run(capsys, "up", "--env", "stg", "--yes")  # adopts it; its encryption stays drift
    assert code == 0 and err.splitlines()[-1].startswith("up done: 2 change(s) applied to env stg; 1 drift item(s) marked ! above are left")
    assert run(capsys, "plan", "--env", "stg", "--detailed-exitcode")[0] == 2
    code, out, err = run(capsys, "up", "--env", "stg", "--yes")
    assert code == 0 and "! " in out
    assert err.splitlines()[-1] == ("up done: nothing awsprac can change; 1 drift item(s) marked ! above are left as they are: "
                                    "resolve them as each one says.")


def test_every_json_is_an_object_with_the_env_and_its_rows(capsys, mocked):
    import json

    run(capsys, "up", "--env", "stg", "--yes")
    shapes = {
        ("plan",): "changes", ("status",): "resources", ("outputs",): "outputs", ("cost",): "resources",
        ("doctor",): "findings", ("export", "terraform"): "files",
    }
    for command, rows in shapes.items():
        code, out, err = run(capsys, *command, "--env", "stg", "--json")
        data = json.loads(out)
        assert isinstance(data, dict) and data["env"] == "stg" and rows in data, command
    assert json.loads(run(capsys, "status", "--env", "stg", "--json")[1])["resources"][0]["name"] == "aws-practice-stg"
    assert json.loads(run(capsys, "outputs", "--env", "stg", "--json")[1])["outputs"]["vpc_id"].startswith("vpc-")


def test_unlock_says_not_locked_without_asking(capsys, mocked, monkeypatch):
    code, out, err = run(capsys, "unlock", "--env", "stg", stdin="", monkeypatch=monkeypatch)  # closed stdin: no question asked
    assert code == 0 and err == "env stg is not locked: nothing to remove\n"


def test_unlock_asks_naming_the_holder_then_removes(capsys, mocked, monkeypatch):
    import json

    import boto3

    ssm = boto3.client("ssm", region_name="ap-northeast-1")
    lease = {"host": "elsewhere", "pid": 12345, "command": "up", "since": "then", "expires": "later"}
    ssm.put_parameter(Name="run-lock-aws-practice-stg", Value=json.dumps(lease), Type="String")
    code, out, err = run(capsys, "unlock", "--env", "stg", stdin="n\n", monkeypatch=monkeypatch)
    assert code == 1 and "held by up on elsewhere pid 12345" in err
    assert ssm.get_parameter(Name="run-lock-aws-practice-stg")
    code, out, err = run(capsys, "unlock", "--env", "stg", stdin="y\n", monkeypatch=monkeypatch)
    assert code == 0 and "removed the lock held by up on elsewhere pid 12345" in err
    assert ssm.describe_parameters()["Parameters"] == []


def test_a_parked_env_is_parked_not_drift(capsys, mocked, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one line per resource
    run(capsys, "up", "--env", "stg", "--yes")
    assert run(capsys, "stop", "--env", "stg", "--yes")[0] == 0
    code, out, err = run(capsys, "plan", "--env", "stg", "--detailed-exitcode")
    assert code == 0 and "no changes" in out and "aws ec2" not in out + err and "!" not in out
    assert ("env stg is parked (instance aws-practice-nat-1a-stg, DB instance aws-practice-stg stopped): "
            "`awsprac start --env stg` brings it back") in err
    code, out, err = run(capsys, "status", "--env", "stg")
    parked = [line for line in out.splitlines() if "parked" in line]
    assert len(parked) == 2 and all("`awsprac start --env stg` starts it" in line for line in parked), out
    assert "drifted" not in out
    assert "brings it back" in err
    import boto3

    boto3.client("rds", region_name="ap-northeast-1").modify_db_instance(
        DBInstanceIdentifier="aws-practice-stg", BackupRetentionPeriod=3, ApplyImmediately=True)
    code, out, err = run(capsys, "plan", "--env", "stg", "--detailed-exitcode")
    flat = " ".join(out.split())
    assert code == 2 and "run `awsprac start --env stg`, then `awsprac up --env stg`" in flat and "aws rds" not in flat


def test_step_names_every_missing_prerequisite_at_once_in_order(capsys, mocked):
    code, out, err = run(capsys, "step", "rds", "--env", "stg", "--yes")
    assert code == 2 and out == ""
    assert err == ("error: step rds needs steps vpc, subnets, secrets, which are not built yet: run `awsprac step vpc --env stg`, "
                   "then `awsprac step subnets --env stg`, then `awsprac step secrets --env stg` first (or `awsprac up --env stg`)\n")


def test_step_says_what_the_step_did(capsys, mocked):
    code, out, err = run(capsys, "step", "vpc", "--env", "stg", "--yes")
    assert code == 0 and err.splitlines()[-1] == "step vpc done: 1 change(s) applied to env stg."
    code, out, err = run(capsys, "step", "vpc", "--env", "stg", "--yes")
    assert code == 0 and out.endswith(": no changes, step vpc is in sync.\n") and "everything" not in out + err


GLOBAL = ("--profile", "--region", "--envs-dir", "--yes", "--verbose", "--debug", "--sandbox")


def test_global_options_are_shown_once_on_the_group_and_accepted_after_the_command(capsys, mocked):
    code, out, err = run(capsys, "--help")
    assert all(f" {option} " in out or f", {option}" in out for option in GLOBAL)
    for command in (["plan"], ["up"], ["nat", "verify"], ["profile", "check"], ["db", "reset-password"]):
        out = run(capsys, *command, "--help")[1]
        options = out.split("Options:")[1].split("\n\n")[0]
        assert not [o for o in GLOBAL if o in options], (command, options)
        assert "see `awsprac --help`" in out
    code, out, err = run(capsys, "plan", "--env", "stg", "--region", "ap-northeast-1", "--verbose")  # after the command: still taken
    assert code == 0 and "region ap-northeast-1" in err


def _complete(words: str, cwd, shell: str = "bash"):
    import os

    env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
           "_AWSPRAC_COMPLETE": f"{shell}_complete"}
    proc = subprocess.run([sys.executable, "-m", "awsprac"], capture_output=True, text=True, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines()]


def test_completion_scripts_and_what_they_complete(capsys, tmp_path):
    for shell, marker in (("bash", "complete -o nosort -F _awsprac_completion awsprac"), ("zsh", "#compdef awsprac"),
                          ("fish", "complete --no-files --command awsprac")):
        code, out, err = run(capsys, "completion", shell)
        assert code == 0 and marker in out and "_AWSPRAC_COMPLETE" in out, shell
    (tmp_path / "envs").mkdir()
    for env in ("stg", "prd", "qa"):
        (tmp_path / "envs" / f"{env}.toml").write_text("")
    assert _complete("awsprac plan --env ", tmp_path) == ["prd", "qa", "stg"]  # from ./envs
    assert _complete("awsprac --envs-dir envs status -e q", tmp_path) == ["qa"]
    assert _complete("awsprac step na", tmp_path) == ["nat-iam", "nat", "nat-leftovers"]
    assert "completion" in _complete("awsprac comp", tmp_path)
    assert run(capsys, "completion", "tcsh")[0] == 2


def test_region_flag_that_does_not_fit_the_env_file_says_the_flag_is_the_problem(capsys, mocked):
    code, out, err = run(capsys, "plan", "--env", "stg", "--region", "us-east-1")
    assert code == 2 and out == "" and err.startswith("error: --region us-east-1 does not fit env stg: ")
    assert "builds in ap-northeast-1 (zones ap-northeast-1a, ap-northeast-1c); leave --region out" in err and err.count("\n") == 1
    code, out, err = run(capsys, "status", "--region", "ap-northeast-9", "--env", "stg")
    assert code == 2 and err == "error: --region: 'ap-northeast-9' is not an AWS region (like ap-northeast-1 or us-east-1)\n"


def test_init_region_writes_that_region_and_its_zones(capsys, mocked, tmp_path):
    envs = tmp_path / "envs"
    code, out, err = run(capsys, "init", "--region", "us-east-1", envs=envs)
    assert code == 0, err
    text = (envs / "stg.toml").read_text()
    assert 'region = "us-east-1"' in text and 'azs = ["us-east-1a", "us-east-1b"]' in text
    assert 'availability_zone = "us-east-1a"' in text and "ap-northeast-1" not in text
    code, out, err = run(capsys, "plan", "--env", "prd", "--region", "us-east-1", envs=envs)  # the files load, the flag fits
    assert code == 0 and "public-subnet-1b-prd" in out and "us-east-1b" in out
    code, out, err = run(capsys, "init", "--region", "ap-northeast-9", envs=tmp_path / "other")
    assert code == 2 and err == "error: --region: 'ap-northeast-9' is not an AWS region (like ap-northeast-1 or us-east-1)\n"
    assert not (tmp_path / "other").exists()
