"""The command line as a user meets it: exit codes, exact one-line messages, nothing changed on refusal."""

import re
import subprocess
import sys

import boto3
import pytest

from awsprac.commands.cli import main

from conftest import ENVS, STG_RESOURCE_COUNT, aws_error, hook_every_session, run_cli as run

N = STG_RESOURCE_COUNT


def vpcs():
    return [v for v in boto3.client("ec2", region_name="ap-northeast-1").describe_vpcs()["Vpcs"] if not v.get("IsDefault")]


def test_help_teaches_the_first_command():
    proc = subprocess.run([sys.executable, "-m", "awsprac", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "awsprac up --env stg --sandbox" in proc.stdout
    for command in ("init", "plan", "up", "step", "status", "outputs", "destroy", "sandbox"):
        assert f"  {command} " in proc.stdout


def test_help_imports_no_aws_sdk_and_no_rich():
    code = (
        "import sys\n"
        "from awsprac.commands.cli import main\n"
        "try:\n    main(['up', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('boto3', 'botocore', 'moto', 'rich') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr


def test_unknown_env_is_one_line_exit_2(capsys, mocked):
    code, out, err = run(capsys, "plan", "--env", "qa")
    assert code == 2
    assert err.startswith("error: unknown env 'qa': ") and err.count("\n") == 1
    assert "known envs in" in err and "prd, stg" in err


def test_unknown_step_is_one_line_exit_2(capsys, mocked):
    code, out, err = run(capsys, "step", "vcp", "--env", "stg")
    assert code == 2
    assert err.startswith("error: Invalid value for 'STEP': 'vcp' is not one of") and err.count("\n") == 1


def test_missing_env_option_is_one_line_exit_2(capsys):
    code, out, err = run(capsys, "plan")
    assert code == 2 and err == "error: Missing option '--env' / '-e'. (see `awsprac plan --help`)\n"


def test_bad_config_is_exit_2_before_any_aws_call(capsys, tmp_path, monkeypatch):
    (tmp_path / "stg.toml").write_text('[network]\nvpc_cidr = "10.0.0.0/30"\n')
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # any request would fail loudly
    with pytest.raises(SystemExit) as exit:
        main(["--envs-dir", str(tmp_path), "up", "--env", "stg", "--yes"])
    err = capsys.readouterr().err
    assert exit.value.code == 2
    assert err == f"error: {tmp_path / 'stg.toml'}: network.vpc_cidr: '10.0.0.0/30': AWS allows VPC blocks from /16 to /28\n"


def test_missing_credentials_is_one_line_exit_2(capsys, monkeypatch, mocked):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, out, err = run(capsys, "plan", "--env", "stg")
    assert code == 2
    assert err.startswith("error: no AWS credentials found: run `awsprac profile import") and err.count("\n") == 1


def test_unknown_profile_is_one_line_exit_2(capsys, mocked):
    code, out, err = run(capsys, "plan", "--env", "stg", "--profile", "nope")
    assert code == 2 and err.startswith("error: AWS profile 'nope' (from --profile) not found")


def test_wrong_account_is_refused_naming_both(capsys, tmp_path, mocked):
    from awsprac.engine import envfiles

    (tmp_path / "stg.toml").write_text(envfiles.render("stg", account_id="111122223333"))
    with pytest.raises(SystemExit) as exit:
        main(["--envs-dir", str(tmp_path), "up", "--env", "stg", "--yes"])
    err = capsys.readouterr().err
    assert exit.value.code == 2
    assert "refusing to touch account 123456789012" in err and "to account 111122223333" in err
    assert vpcs() == []


def test_environment_keys_overriding_the_profile_are_warned_about(capsys, monkeypatch, mocked, tmp_path):
    (tmp_path / "config").write_text("[profile aws-practice-terraform-stg]\nregion = ap-northeast-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    code, out, err = run(capsys, "plan", "--env", "stg")
    assert code == 0
    assert "warning: AWS_ACCESS_KEY_ID in the environment overrides profile 'aws-practice-terraform-stg' (from the env file)" in err


def test_plan_changes_nothing(capsys, mocked):
    code, out, err = run(capsys, "plan", "--env", "stg")
    assert code == 0
    assert re.search(r"^\+\s+vpc\s+vpc\s+aws-practice-stg\s", out, re.M), out
    assert out.rstrip().endswith(f"Plan: {N} to create, 0 to update, 0 to delete.")
    assert vpcs() == []


def test_up_declined_changes_nothing(capsys, monkeypatch, mocked):
    code, out, err = run(capsys, "up", "--env", "stg", stdin="n\n", monkeypatch=monkeypatch)
    assert code == 1 and "error: cancelled: nothing was changed" in err
    assert vpcs() == []


def test_up_with_closed_stdin_changes_nothing(capsys, monkeypatch, mocked):
    code, out, err = run(capsys, "up", "--env", "stg", stdin="", monkeypatch=monkeypatch)
    assert code == 1 and "no answer (standard input is closed)" in err and "pass --yes" in err
    assert vpcs() == []


def test_up_then_destroy_needs_the_env_name_typed(capsys, monkeypatch, mocked):
    code, out, err = run(capsys, "up", "--env", "stg", "--yes")
    assert code == 0 and f"up done: {N} change(s) applied to env stg." in err
    code, out, err = run(capsys, "destroy", "--env", "stg", stdin="yes\n", monkeypatch=monkeypatch)
    assert code == 1 and "the env name was not typed; nothing was deleted" in err
    assert len(vpcs()) == 1
    code, out, err = run(capsys, "destroy", "--env", "stg", stdin="stg\n", monkeypatch=monkeypatch)
    assert code == 0 and vpcs() == []


def test_flags_work_before_and_after_the_command(capsys, mocked):
    code, _, _ = run(capsys, "--yes", "up", "--env", "stg")
    assert code == 0 and len(vpcs()) == 1


def test_aws_failure_says_what_where_and_what_to_do(capsys, monkeypatch, mocked):
    deny = aws_error("UnauthorizedOperation", "You are not authorized to perform this operation.", status=403)
    hook_every_session(monkeypatch, [("before-call.ec2.CreateVpc", lambda **kwargs: deny)])
    code, out, err = run(capsys, "up", "--env", "stg", "--yes")
    assert code == 1
    assert "error: step vpc: creating vpc aws-practice-stg failed: UnauthorizedOperation: You are not authorized" in err
    assert "the credentials lack permission ec2:CreateVpc; the CLI user needs AdministratorAccess" in err
    assert "warning: step subnets not attempted: step vpc did not finish" in err
    assert "Traceback" not in err


def test_verbose_never_turns_on_sdk_debug_logs(capsys, mocked):
    import logging

    code, out, err = run(capsys, "--verbose", "plan", "--env", "stg")
    assert code == 0
    logging.getLogger("botocore").setLevel(logging.DEBUG)
    assert logging.getLogger("botocore").getEffectiveLevel() == logging.WARNING
    assert "DEBUG" not in err and "testing" not in err


def test_outputs_json_for_scripts(capsys, mocked):
    import json

    run(capsys, "up", "--env", "stg", "--yes")
    code, out, err = run(capsys, "outputs", "--env", "stg", "--json")
    data = json.loads(out)["outputs"]
    assert data["vpc_id"].startswith("vpc-") and data["igw_id"].startswith("igw-")
    assert sorted(data["subnet_ids"]) == ["private-subnet-1a-stg", "private-subnet-1c-stg", "public-subnet-1a-stg", "public-subnet-1c-stg"]


def test_status_shows_missing_then_in_sync(capsys, mocked):
    import json

    code, out, err = run(capsys, "status", "--env", "stg", "--json")
    assert {r["sync"] for r in json.loads(out)["resources"]} == {"missing"}
    run(capsys, "up", "--env", "stg", "--yes")
    code, out, err = run(capsys, "status", "--env", "stg")
    assert out.count("in sync") == N and "missing" not in out


def test_init_writes_env_files(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit:
        main(["--envs-dir", str(tmp_path / "envs"), "init", "--prd-account", "210987654321"])
        raise SystemExit(0)
    assert exit.value.code in (0, None)
    assert (tmp_path / "envs" / "stg.toml").read_text() == (ENVS / "stg.toml").read_text()
    assert 'account_id = "210987654321"' in (tmp_path / "envs" / "prd.toml").read_text()
