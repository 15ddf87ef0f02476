"""`awsprac profile import | check` and step profile: real console CSVs, a temporary HOME whose other
profiles and comments must survive byte-for-byte, nothing written on any refusal, no secret printed."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import boto3
import pytest


from conftest import ENVS, FIXTURES, aws_error, hook_every_session, missing_capability, run_cli

CSV = FIXTURES / "aws-practice-terraform-stg_accessKeys.csv"
OLD_CSV = FIXTURES / "older-console-format_credentials.csv"
KEY_ID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
OLD_KEY_ID, OLD_SECRET = "AKIAI44QH8DHBEXAMPLE", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
PROFILE = "aws-practice-terraform-stg"

CREDENTIALS = (
    "# my keys: never commit this file\n"
    "[default]\n"
    "aws_access_key_id = AKIADEFAULTEXAMPLE00\n"
    "aws_secret_access_key = defaultsecret\n"
    "\n"
    "; the work account\n"
    "[work]\n"
    "aws_access_key_id=AKIAWORKEXAMPLE00000\n"
    "aws_secret_access_key=worksecret   \n"
)
CONFIG = (
    "# hand-edited, keep my comments\n"
    "[default]\n"
    "region = us-east-1\n"
    "output = text\n"
    "\n"
    "[profile work]\n"
    "region=eu-west-1\n"
    "s3 =\n"
    "    max_concurrent_requests = 20\n"
    "# a trailing comment\n"
)
NEW_CREDENTIALS = f"\n[{PROFILE}]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
NEW_CONFIG = f"\n[profile {PROFILE}]\nregion = ap-northeast-1\noutput = json\n"


@pytest.fixture
def files():
    """The temporary HOME's credentials and config (conftest points AWS_*_FILE at them), holding other profiles."""
    creds, config = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]), Path(os.environ["AWS_CONFIG_FILE"])
    creds.write_bytes(CREDENTIALS.encode())
    config.write_bytes(CONFIG.encode())
    return creds, config


def run(capsys, *args, envs=ENVS):
    """Every profile command's output is checked: the secret key never shows."""
    code, out, err = run_cli(capsys, *args, envs=envs)
    assert SECRET not in out + err and OLD_SECRET not in out + err
    return code, out, err


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def home() -> Path:
    return Path(os.environ["HOME"])


def pinned_envs(tmp_path, account):
    from awsprac.engine import envfiles

    folder = tmp_path / "pinned"
    folder.mkdir()
    (folder / "stg.toml").write_text(envfiles.render("stg", account_id=account))
    return folder


# --- the CSV ---


def test_both_console_csv_shapes_are_read():
    from awsprac.steps.profile.keys import read_csv

    assert CSV.read_bytes().startswith(b"\xef\xbb\xbf") and b"\r\n" in CSV.read_bytes()
    key = read_csv(CSV)
    assert (key.key_id, key.secret, key.user_name) == (KEY_ID, SECRET, None)
    old = read_csv(OLD_CSV)
    assert (old.key_id, old.secret, old.user_name) == (OLD_KEY_ID, OLD_SECRET, PROFILE)
    assert SECRET not in repr(key)


BAD_CSVS = {
    "wrong columns": ("User name,Password\r\nme,pw\r\n", "not an access-key CSV: expected a header row with columns 'Access key ID' and 'Secret access key'"),
    "no header (the secret on the first line)": (f"{KEY_ID},{SECRET}\r\n", "not an access-key CSV"),
    "no rows": ("\ufeffAccess key ID,Secret access key\r\n", "no access key row under the header"),
    "empty": ("", "empty: expected a header row and one access key row"),
    "two rows": (f"\ufeffAccess key ID,Secret access key\r\n{KEY_ID},{SECRET}\r\n{OLD_KEY_ID},{OLD_SECRET}\r\n", "2 access key rows; expected exactly one"),
    "malformed key id": (f"\ufeffAccess key ID,Secret access key\r\nAKIA-nope,{SECRET}\r\n", "the 'Access key ID' value is not an access key ID"),
    "columns swapped": (f"\ufeffAccess key ID,Secret access key\r\n{SECRET},{KEY_ID}\r\n", "the 'Access key ID' value is not an access key ID"),
    "short secret": (f"\ufeffAccess key ID,Secret access key\r\n{KEY_ID},abc\r\n", "the 'Secret access key' value is not a secret access key"),
}


@pytest.mark.parametrize("case", BAD_CSVS)
def test_bad_csv_is_one_line_exit_2_and_nothing_written(case, capsys, monkeypatch, tmp_path, files, mocked):
    text, message = BAD_CSVS[case]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # --direnv writes ./.envrc: never in the checkout
    path = tmp_path / "bad.csv"
    path.write_bytes(text.encode("utf-8"))
    before = snapshot(home())
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(path), "--direnv")
    assert code == 2
    assert err.startswith(f"error: {path}: ") and message in err and err.count("\n") == 1, err
    assert SECRET not in err and KEY_ID not in err
    assert snapshot(home()) == before and list(work.iterdir()) == []


def test_missing_or_binary_csv_is_exit_2(capsys, tmp_path, files, mocked):
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(tmp_path / "nope.csv"))
    assert code == 2 and err == f"error: {tmp_path / 'nope.csv'}: no such file (the CSV the IAM console downloads when an access key is created)\n"
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00A\x00c")
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(tmp_path / "bin.csv"))
    assert code == 2 and "not a UTF-8 CSV file" in err
    assert Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]).read_bytes() == CREDENTIALS.encode()


# --- import ---


def test_import_keeps_every_other_byte_and_prints_the_identity(capsys, files, mocked):
    creds, config = files
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))
    assert code == 0, err
    assert creds.read_bytes() == (CREDENTIALS + NEW_CREDENTIALS).encode()
    assert config.read_bytes() == (CONFIG + NEW_CONFIG).encode()
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600 and stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "account  123456789012" in out and "arn      arn:aws:" in out
    assert f"delete {CSV} now" in err
    # timestamped backups of what was there, private too
    backups = sorted(p for p in creds.parent.iterdir() if p.name.endswith(".bak"))
    assert [b.read_bytes() for b in backups] == [CONFIG.encode(), CREDENTIALS.encode()]
    assert all(stat.S_IMODE(b.stat().st_mode) == 0o600 for b in backups)
    assert all(b.name.startswith(("config.2", "credentials.2")) for b in backups)
    # the SDK resolves the profile to the imported key, whatever the environment says
    session = boto3.Session(profile_name=PROFILE)
    assert session.get_credentials().access_key == KEY_ID and session.region_name == "ap-northeast-1"


def test_import_again_writes_nothing(capsys, files, mocked):
    run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))
    before = snapshot(home())
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))
    assert code == 0 and "already holds this key and the env's region: nothing written" in err
    assert snapshot(home()) == before


def test_crlf_files_stay_crlf_and_intact(capsys, files, mocked):
    creds, config = files
    creds.write_bytes(CREDENTIALS.replace("\n", "\r\n").encode())
    config.write_bytes(CONFIG.replace("\n", "\r\n").encode())
    assert run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))[0] == 0
    assert creds.read_bytes() == (CREDENTIALS + NEW_CREDENTIALS).replace("\n", "\r\n").encode()
    assert config.read_bytes() == (CONFIG + NEW_CONFIG).replace("\n", "\r\n").encode()


def test_a_different_key_is_not_replaced_without_force(capsys, files, mocked):
    creds, config = files
    existing = (
        CREDENTIALS
        + f"\n[{PROFILE}]\n# rotated by hand\naws_access_key_id = {OLD_KEY_ID}\naws_secret_access_key = {OLD_SECRET}\naws_session_token = stale\n"
        + "\n[last]\naws_access_key_id = AKIALASTEXAMPLE00000\n"
    )
    creds.write_bytes(existing.encode())
    before = snapshot(home())
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))
    assert code == 2
    assert err == f"error: profile {PROFILE} in {creds} already holds another access key (****************MPLE); --force replaces it (the old file is kept as a timestamped backup)\n"
    assert snapshot(home()) == before

    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV), "--force")
    assert code == 0, err
    assert creds.read_text() == existing.replace(OLD_KEY_ID, KEY_ID).replace(OLD_SECRET, SECRET).replace("aws_session_token = stale\n", "")
    assert [p.read_text() for p in creds.parent.glob("credentials.*.bak")] == [existing]


def test_default_locations_get_private_modes(capsys, monkeypatch, mocked):
    monkeypatch.delenv("AWS_SHARED_CREDENTIALS_FILE")
    monkeypatch.delenv("AWS_CONFIG_FILE")
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(OLD_CSV))
    assert code == 0, err
    aws = home() / ".aws"
    assert stat.S_IMODE(aws.stat().st_mode) == 0o700
    assert stat.S_IMODE((aws / "credentials").stat().st_mode) == 0o600
    assert (aws / "credentials").read_text() == f"[{PROFILE}]\naws_access_key_id = {OLD_KEY_ID}\naws_secret_access_key = {OLD_SECRET}\n"
    assert (aws / "config").read_text() == f"[profile {PROFILE}]\nregion = ap-northeast-1\noutput = json\n"
    assert not list(aws.glob("*.bak"))  # nothing was there to back up


def _unwritable_how(scratch: Path) -> str:
    """How this machine can make a folder unwritable even for the user running the tests ('' if it cannot)."""
    if os.geteuid() != 0:
        return "chmod"
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(scratch)], capture_output=True, timeout=30).returncode == 0:
        subprocess.run(["chattr", "-i", str(scratch)], check=True, timeout=30)
        return "chattr"
    return ""


@pytest.fixture
def read_only(tmp_path_factory):
    """Make a folder unwritable even for root (the immutable attribute), or by its mode for other users.
    Whether this machine can is found out before the test starts (never a skip halfway through it)."""
    how = _unwritable_how(tmp_path_factory.mktemp("probe"))
    if not how:
        missing_capability("cannot make a folder unwritable for root here: needs chattr (e2fsprogs) on a file system that supports it")
    made = []

    def make(folder: Path) -> None:
        if how == "chattr":
            subprocess.run(["chattr", "+i", str(folder)], check=True, timeout=30)
        else:
            folder.chmod(0o500)
        made.append(folder)

    yield make
    for folder in made:
        if how == "chattr":
            subprocess.run(["chattr", "-i", str(folder)], check=True, timeout=30)
        else:
            folder.chmod(0o700)


def test_unwritable_aws_folder_is_exit_2_and_nothing_written(capsys, monkeypatch, read_only, mocked):
    monkeypatch.delenv("AWS_SHARED_CREDENTIALS_FILE")
    monkeypatch.delenv("AWS_CONFIG_FILE")
    aws = home() / ".aws"
    aws.mkdir(mode=0o700)
    (aws / "config").write_text(CONFIG)
    read_only(aws)
    before = snapshot(home())
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))
    assert code == 2 and err.startswith(f"error: cannot write {aws}") and err.endswith("; nothing was written\n"), err
    assert err.count("\n") == 1 and snapshot(home()) == before


def test_an_aws_path_that_is_a_file_is_exit_2(capsys, monkeypatch, mocked):
    monkeypatch.delenv("AWS_SHARED_CREDENTIALS_FILE")
    monkeypatch.delenv("AWS_CONFIG_FILE")
    (home() / ".aws").write_text("not a folder\n")
    before = snapshot(home())
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))
    assert code == 2 and err == f"error: {home() / '.aws' / 'credentials'}: cannot read it: Not a directory\n"
    assert snapshot(home()) == before


def test_one_unwritable_file_means_neither_is_written(capsys, monkeypatch, tmp_path, files, read_only, mocked):
    creds, _ = files
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "config").write_text(CONFIG)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(locked / "config"))
    read_only(locked)
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))
    assert code == 2 and err.startswith(f"error: cannot write {locked}") and "nothing was written" in err
    assert creds.read_bytes() == CREDENTIALS.encode() and (locked / "config").read_text() == CONFIG
    assert sorted(p.name for p in creds.parent.iterdir()) == ["config", "credentials"]  # no temporary file, no backup left


def test_a_symlinked_credentials_file_is_edited_where_it_points(capsys, files, tmp_path, mocked):
    creds, _ = files
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "aws-credentials"
    real.write_bytes(CREDENTIALS.encode())
    creds.unlink()
    creds.symlink_to(real)
    assert run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))[0] == 0
    assert creds.is_symlink() and real.read_bytes() == (CREDENTIALS + NEW_CREDENTIALS).encode()


def test_direnv_exports_the_profile_never_keys(capsys, monkeypatch, tmp_path, files, mocked):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV), "--direnv")
    assert code == 0
    assert (work / ".envrc").read_text() == f"export AWS_PROFILE={PROFILE}\n"
    assert f"run `direnv allow` in {work}" in err
    # an existing .envrc: only the AWS_PROFILE line changes
    (work / ".envrc").write_text("# project env\nexport AWS_PROFILE=old-one\nexport FOO=bar\nexport AWS_ACCESS_KEY_ID=AKIAOLDEXAMPLE000000")
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV), "--direnv")
    assert (work / ".envrc").read_text() == f"# project env\nexport AWS_PROFILE={PROFILE}\nexport FOO=bar\nexport AWS_ACCESS_KEY_ID=AKIAOLDEXAMPLE000000"
    assert "also sets AWS_ACCESS_KEY_ID" in err
    assert KEY_ID not in (work / ".envrc").read_text()


def test_a_key_from_another_account_is_refused_before_writing(capsys, tmp_path, files, mocked):
    envs = pinned_envs(tmp_path, "111122223333")
    before = snapshot(home())
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV), envs=envs)
    assert code == 2
    assert "the access key ****************MPLE belongs to account 123456789012" in err and "to account 111122223333; nothing was written" in err
    assert snapshot(home()) == before


def test_a_key_aws_rejects_is_exit_1_and_nothing_written(capsys, monkeypatch, files, mocked):
    rejected = aws_error("InvalidClientTokenId", "The security token included in the request is invalid.", status=403)
    hook_every_session(monkeypatch, [("before-call.sts.GetCallerIdentity", lambda **kwargs: rejected)])
    before = snapshot(home())
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))
    assert code == 1 and err.count("\n") == 1
    assert "checking the access key ****************MPLE" in err and "InvalidClientTokenId" in err
    assert "the key was deleted, deactivated, or the CSV is not the one just downloaded; nothing was written" in err
    assert snapshot(home()) == before


def test_an_unparsable_config_is_left_for_a_person(capsys, files, mocked):
    _, config = files
    config.write_text(CONFIG + "[profile work]\nregion = us-west-2\n")
    before = snapshot(home())
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))
    assert code == 2 and err.startswith(f"error: {config}: cannot parse it (") and "fix it by hand" in err
    assert snapshot(home()) == before


def test_import_works_while_direnv_already_exports_the_profile(capsys, monkeypatch, files, mocked):
    monkeypatch.setenv("AWS_PROFILE", PROFILE)  # .envrc written first, direnv loaded it: the profile does not exist yet
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))
    assert code == 0, err
    assert files[0].read_bytes() == (CREDENTIALS + NEW_CREDENTIALS).encode()


def test_a_missing_aws_profile_is_one_line_exit_2_for_every_command(capsys, monkeypatch, mocked):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")  # environment keys would beat the profile (with a warning)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.setenv(variable, "nope")
        code, out, err = run(capsys, "plan", "--env", "stg")
        assert code == 2 and err.startswith(f"error: AWS profile 'nope' (from {variable}) not found in ") and err.count("\n") == 1
        monkeypatch.delenv(variable)


def test_profile_commands_refuse_the_sandbox(capsys, files):
    code, out, err = run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV), "--sandbox")
    assert code == 2 and err == "error: profile commands edit your real ~/.aws files: they do not run with --sandbox\n"


# --- check ---


def test_check_after_import(capsys, files, mocked):
    assert run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))[0] == 0
    code, out, err = run(capsys, "profile", "check", "--env", "stg")
    assert code == 0, err
    assert f"profile           {PROFILE}" in out and "access key        ****************MPLE" in out
    assert "account           123456789012 (the env file pins no account)" in out and "region            ap-northeast-1" in out
    assert KEY_ID not in out and f"profile {PROFILE} is ready for env stg" in err


def test_check_says_what_is_wrong(capsys, tmp_path, files, mocked, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # each value on its key's line (at 80, a long one goes on the next)
    code, out, err = run(capsys, "profile", "check", "--env", "stg")
    assert code == 2 and err.startswith(f"error: profile {PROFILE} not found in ") and "awsprac profile import --env stg --csv FILE" in err
    run(capsys, "profile", "import", "--env", "stg", "--csv", str(CSV))
    _, config = files
    config.write_text(config.read_text().replace("region = ap-northeast-1", "region = us-east-1"))
    code, out, err = run(capsys, "profile", "check", "--env", "stg")
    assert code == 2 and err.endswith(f"error: profile {PROFILE} has region us-east-1 but env stg uses ap-northeast-1: `awsprac profile import` sets it, or edit {config}\n")
    code, out, err = run(capsys, "profile", "check", "--env", "stg", envs=pinned_envs(tmp_path, "111122223333"))
    assert code == 2 and "account           123456789012 (NOT the account" in out
    assert f"error: profile {PROFILE} reaches account 123456789012, but " in err


# --- the step ---


def test_step_profile_is_read_only_and_reports_region_drift(capsys, files, mocked, calls, monkeypatch, sent):
    from awsprac.engine import aws, runner
    from awsprac import config
    from awsprac.engine.context import Context, Options
    from awsprac.engine.report import Reporter

    cfg = config.load(ENVS, "stg")
    clients, _ = aws.make(None, "", cfg.region)
    clients.register("before-call.*.*", calls)
    ctx = Context(cfg, clients, Reporter(), Options())
    assert runner.plan(ctx, runner.resolve(["profile"])).changes == []
    assert ctx.observed["profile"].outputs() == {"account_id": "123456789012", "caller_arn": ctx.observed["profile"].arn, "aws_profile": "(environment / default chain)"}

    # awsprac running with the env's profile, whose region in ~/.aws/config is not the env file's
    monkeypatch.setenv("COLUMNS", "400")  # one line per plan row
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    creds, config_file = files
    creds.write_text(CREDENTIALS + NEW_CREDENTIALS)
    config_file.write_text(CONFIG + f"\n[profile {PROFILE}]\nregion = us-east-1\n")
    before = snapshot(home())
    code, out, err = run(capsys, "step", "profile", "--env", "stg", "--yes")
    assert code == 0, err
    flat = " ".join(out.split())
    assert f"! profile AWS CLI profile {PROFILE}" in flat and "region: us-east-1 -> ap-northeast-1" in flat
    assert snapshot(home()) == before and calls.writes == []
    assert "GetCallerIdentity" in sent and writes(sent) == []
    code, out, err = run(capsys, "outputs", "--env", "stg", "--json")
    assert '"aws_profile": "aws-practice-terraform-stg"' in out


# --- the installed command, as a person runs it ---


@pytest.mark.e2e
def test_import_through_the_installed_command(server, tmp_path, files):
    exe = shutil.which("awsprac", path=str(Path(sys.executable).parent))
    env = {**os.environ, "AWS_ENDPOINT_URL": server.endpoint, "COLUMNS": "200", "NO_COLOR": "1"}
    result = subprocess.run(
        [exe, "--envs-dir", str(ENVS), "profile", "import", "--env", "stg", "--csv", str(CSV), "--direnv"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    creds, config = files
    assert creds.read_bytes() == (CREDENTIALS + NEW_CREDENTIALS).encode()
    assert config.read_bytes() == (CONFIG + NEW_CONFIG).encode()
    assert (tmp_path / ".envrc").read_text() == f"export AWS_PROFILE={PROFILE}\n"
    assert "account  123456789012" in result.stdout


# --- create-user (administrator credentials: the environment's keys here) ---


@pytest.fixture
def iam_mocked(monkeypatch):
    """In-process moto with AWS's managed policies (AdministratorAccess) loaded, as on AWS."""
    from moto import mock_aws

    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    with mock_aws():
        yield boto3.client("iam", region_name="ap-northeast-1")


@pytest.fixture
def sent(monkeypatch):
    """Every AWS call awsprac makes (service, operation), seen from botocore's before-call event."""
    names = []
    hook_every_session(monkeypatch, [("before-call.*.*", lambda model, **kw: names.append(model.name))])
    return names


def writes(names):
    return [n for n in names if not n.startswith(("Get", "List", "Describe"))]


def test_create_user_makes_user_policy_and_key_straight_into_the_profile(capsys, files, iam_mocked, sent):
    iam = iam_mocked
    code, out, err = run(capsys, "profile", "create-user", "--env", "stg")
    assert code == 0, err
    user = iam.get_user(UserName=PROFILE)["User"]
    assert {t["Key"]: t["Value"] for t in user["Tags"]} == {"Name": PROFILE, "awsprac:project": "aws-practice", "awsprac:env": "stg"}
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_login_profile(UserName=PROFILE)  # no console access
    assert [p["PolicyName"] for p in iam.list_attached_user_policies(UserName=PROFILE)["AttachedPolicies"]] == ["AdministratorAccess"]
    (key,) = iam.list_access_keys(UserName=PROFILE)["AccessKeyMetadata"]
    creds, config = files
    text = creds.read_text()
    assert text.startswith(CREDENTIALS) and f"[{PROFILE}]\naws_access_key_id = {key['AccessKeyId']}\naws_secret_access_key = " in text
    assert config.read_text() == CONFIG + NEW_CONFIG
    secret = text.rsplit("aws_secret_access_key = ", 1)[1].strip()
    assert secret not in out + err
    assert writes(sent) == ["CreateUser", "AttachUserPolicy", "CreateAccessKey"]
    assert f"created access key ****************{key['AccessKeyId'][-4:]} for {PROFILE}" in err
    assert "account  123456789012" in out and f"arn      arn:aws:iam::123456789012:user/{PROFILE}" in out
    assert boto3.Session(profile_name=PROFILE).get_credentials().access_key == key["AccessKeyId"]

    # again: everything is in place, nothing is written, in AWS or on disk
    before, sent[:] = snapshot(home()), []
    code, out, err = run(capsys, "profile", "create-user", "--env", "stg")
    assert code == 0, err
    assert writes(sent) == [] and snapshot(home()) == before
    assert f"profile {PROFILE} already holds {PROFILE}'s access key" in err
    assert len(iam.list_access_keys(UserName=PROFILE)["AccessKeyMetadata"]) == 1


def test_create_user_refuses_before_writing_anything(capsys, files, iam_mocked, sent, monkeypatch, tmp_path, read_only):
    iam = iam_mocked
    creds, config = files
    # 1. the profile holds a key that is not this user's: not replaced without --force
    creds.write_text(CREDENTIALS + f"\n[{PROFILE}]\naws_access_key_id = {OLD_KEY_ID}\naws_secret_access_key = {OLD_SECRET}\n")
    code, out, err = run(capsys, "profile", "create-user", "--env", "stg")
    assert code == 2 and "already holds another access key (****************MPLE); --force replaces it" in err
    assert writes(sent) == []
    creds.write_text(CREDENTIALS)

    # 2. the files cannot be written: the secret, shown only once, is never asked for
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(locked / "credentials"))
    read_only(locked)
    code, out, err = run(capsys, "profile", "create-user", "--env", "stg")
    assert code == 2 and f"cannot write {locked}" in err
    assert writes(sent) == []
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))

    # 3. a user with two keys already (AWS's limit), neither in the profile
    iam.create_user(UserName=PROFILE)
    ids = [iam.create_access_key(UserName=PROFILE)["AccessKey"]["AccessKeyId"] for _ in range(2)]
    code, out, err = run(capsys, "profile", "create-user", "--env", "stg")
    assert code == 2 and err.count("\n") == 1
    assert f"user {PROFILE} already has 2 access keys" in err and f"aws iam delete-access-key --user-name {PROFILE}" in err
    assert sorted(k["AccessKeyId"] for k in iam.list_access_keys(UserName=PROFILE)["AccessKeyMetadata"]) == sorted(ids)
    assert creds.read_text() == CREDENTIALS and writes(sent) == []


def test_a_key_that_cannot_be_stored_is_deleted_again(capsys, files, iam_mocked, monkeypatch):
    from awsprac.steps.profile import inifiles
    from awsprac.engine.errors import UsageError

    def disk_full(edits):
        raise UsageError("cannot write credentials: No space left on device; nothing was written")

    monkeypatch.setattr(inifiles, "write_all", disk_full)
    code, out, err = run(capsys, "profile", "create-user", "--env", "stg")
    assert code == 2 and "No space left on device" in err
    assert iam_mocked.list_access_keys(UserName=PROFILE)["AccessKeyMetadata"] == []


def test_check_follows_the_profile_precedence(capsys, files, mocked, monkeypatch):
    """--profile > AWS_PROFILE > the env file's profile, as the README says and every other command does."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("AWS_PROFILE", "nosuch")
    code, out, err = run(capsys, "profile", "check", "--env", "stg")
    assert code == 2 and err.startswith("error: profile nosuch (from AWS_PROFILE) not found in ") and PROFILE not in err.split(":")[1]
    monkeypatch.setenv("AWS_PROFILE", "work")
    code, out, err = run(capsys, "profile", "check", "--env", "stg")
    assert "profile           work (from AWS_PROFILE)" in out and "region            eu-west-1" in out
    assert code == 2 and err.endswith("error: profile work has region eu-west-1 but env stg uses ap-northeast-1: "
                                      f"`awsprac profile import` sets it, or edit {files[1]}\n")
    code, out, err = run(capsys, "profile", "check", "--env", "stg", "--profile", "default")  # the flag beats AWS_PROFILE
    assert "profile           default (from --profile)" in out and "region            us-east-1" in out
