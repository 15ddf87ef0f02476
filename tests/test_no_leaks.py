"""No secret leaks: every command, run as a user would with --verbose and --debug, never shows the
generated database password or the access key's secret, on the screen or in any file it writes
(but the one place a key belongs: ~/.aws/credentials)."""

import json
import os
from pathlib import Path

import boto3
import pytest

from conftest import FIXTURES

pytestmark = pytest.mark.e2e

ACCESS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # the fixture CSV's (AWS's documentation example)


def files_under(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_no_command_shows_a_secret(awsprac, server, tmp_path):
    home = Path(os.environ["HOME"])
    loud = ["--verbose", "--debug"]
    outputs = []

    def run(*args, input=None, code=0):
        """Every command must also do its job: a secret unseen because the command broke proves nothing."""
        result = awsprac(*args, *loud, input=input)
        outputs.append((args, result.stdout + result.stderr))
        assert result.returncode == code, f"`awsprac {' '.join(args)}` exited {result.returncode}: {result.stderr[-2000:]}"
        return result

    run("up", "--env", "stg", "--yes")
    secrets = boto3.client("secretsmanager", region_name="ap-northeast-1", endpoint_url=server.endpoint)
    password = json.loads(secrets.get_secret_value(SecretId="rds-main-stg")["SecretString"])["DB_PASSWORD"]
    assert len(password) >= 32

    run("up", "--env", "stg", "--yes")
    run("plan", "--env", "stg")
    run("plan", "--env", "stg", "--json")
    run("status", "--env", "stg")
    run("status", "--env", "stg", "--json")
    run("outputs", "--env", "stg")
    run("outputs", "--env", "stg", "--json")
    for step in ("secrets", "rds"):
        run("step", step, "--env", "stg", "--yes")
    run("db", "reset-password", "--env", "stg", "--yes")
    new_password = json.loads(secrets.get_secret_value(SecretId="rds-main-stg")["SecretString"])["DB_PASSWORD"]
    assert new_password != password
    run("cost", "--env", "stg")
    run("doctor", "--env", "stg")
    run("export", "terraform", "--env", "stg")  # writes terraform/stg/*.tf, scanned below
    assert (awsprac.cwd / "terraform" / "stg" / "database.tf").is_file()
    run("stop", "--env", "stg", "--yes")
    run("start", "--env", "stg", "--yes")
    run("profile", "import", "--env", "stg", "--csv", str(FIXTURES / "aws-practice-terraform-stg_accessKeys.csv"), "--direnv")
    run("profile", "check", "--env", "stg")
    run("destroy", "--env", "stg", "--yes")

    for args, text in outputs:
        for secret in (password, new_password, ACCESS_SECRET):
            assert secret not in text, f"`awsprac {' '.join(args)}` showed a secret"
    credentials = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    assert ACCESS_SECRET in credentials.read_text(), "profile import did write the key where it belongs"
    written = {**files_under(awsprac.cwd), **files_under(home)}
    assert len(written) >= 4, sorted(written)  # env files, .envrc, ~/.aws config and credentials at least
    for path, content in written.items():
        if path.parent == credentials.parent and path.name.startswith(credentials.name):
            continue  # the access key's home (and its backups)
        for secret in (password, new_password, ACCESS_SECRET):
            assert secret.encode() not in content, f"{path} holds a secret"
