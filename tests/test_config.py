"""Env files: the documented defaults, and one clear line (file, key, value) for every bad input."""

from pathlib import Path

import pytest

from awsprac import config
from awsprac.engine import envfiles
from awsprac.engine.errors import ConfigError, UsageError

from conftest import ENVS


def test_committed_env_files_are_what_init_writes():
    assert (ENVS / "stg.toml").read_text() == envfiles.render("stg")
    assert (ENVS / "prd.toml").read_text() == envfiles.render("prd")


def test_stg_file_holds_spec_defaults():
    cfg = config.load(ENVS, "stg")
    defaults = config.EnvConfig(env="stg", path=cfg.path)
    assert cfg == defaults
    assert cfg.vpc_name == "aws-practice-stg" and cfg.igw_name == "aws-practice-igw-stg"
    assert cfg.profile_name == "aws-practice-terraform-stg"
    assert cfg.network.vpc_cidr == "10.0.0.0/16" and cfg.network.azs == ("ap-northeast-1a", "ap-northeast-1c")
    assert cfg.database.deletion_protection is False


def test_prd_protects_its_database():
    assert config.load(ENVS, "prd").database.deletion_protection is True


def write(tmp_path: Path, text: str, env: str = "stg") -> Path:
    (tmp_path / f"{env}.toml").write_text(text)
    return tmp_path


def edited(tmp_path: Path, old: str, new: str) -> Path:
    text = envfiles.render("stg")
    assert old in text
    return write(tmp_path, text.replace(old, new, 1))


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ('vpc_cidr = "10.0.0.0/16"', 'vpc_cidr = "10.0.0.0/33"', "stg.toml: network.vpc_cidr: '10.0.0.0/33' is not an IPv4 CIDR block"),
        ('vpc_cidr = "10.0.0.0/16"', 'vpc_cidr = "10.0.0.1/16"', "network.vpc_cidr: '10.0.0.1/16' is not an IPv4 CIDR block (10.0.0.1/16 has host bits set)"),
        ('vpc_cidr = "10.0.0.0/16"', 'vpc_cidr = "10.0.0.0/27"', "network.vpc_cidr: '10.0.0.0/27': too small for 4 subnets: each would be a /29"),
        ('vpc_cidr = "10.0.0.0/16"', 'vpc_cidr = "10.0.0.0/8"', "network.vpc_cidr: '10.0.0.0/8': AWS allows VPC blocks from /16 to /28"),
        ('azs = ["ap-northeast-1a", "ap-northeast-1c"]', 'azs = ["us-east-1a", "us-east-1b"]', "network.azs: 'us-east-1a' is not a zone of region 'ap-northeast-1'"),
        ('azs = ["ap-northeast-1a", "ap-northeast-1c"]', 'azs = ["ap-northeast-1a", "ap-northeast-1a"]', "lists a zone twice"),
        ('azs = ["ap-northeast-1a", "ap-northeast-1c"]', 'azs = "ap-northeast-1a"', "network.azs: must be a list, got 'ap-northeast-1a'"),
        ("dns_support = true", 'dns_support = "yes"', "network.dns_support: must be a bool, got 'yes'"),
        ("allocated_storage = 20", "allocated_storage = true", "database.allocated_storage: must be an integer, got True"),
        ("max_allocated_storage = 1000", "max_allocated_storage = 10", "database.max_allocated_storage: 10 must exceed allocated_storage (20)"),
        ('mode = "instance"', 'mode = "natgw"', "nat.mode: 'natgw' must be one of instance, gateway, none"),
        ('region = "ap-northeast-1"', 'region = "tokyo"', "region: 'tokyo' is not an AWS region"),
        ('account_id = ""', 'account_id = "1234"', "account_id: '1234' must be 12 digits"),
        ("[network]", "[network]\nvpc_cdir = \"10.0.0.0/16\"", "network.vpc_cdir: unknown key (known: azs, dns_hostnames, dns_support, instance_tenancy, vpc_cidr)"),
        ('project = "aws-practice"', 'project = "aws-practice"\ncolour = "blue"', "colour: unknown key"),
        ('env = "stg"', 'env = "prd"', "env: says 'prd' but the file is for env 'stg'"),
    ],
)
def test_bad_values_name_file_key_and_value(tmp_path, old, new, expected):
    envs = edited(tmp_path, old, new)
    with pytest.raises(ConfigError) as err:
        config.load(envs, "stg")
    message = str(err.value)
    assert expected in message
    assert message.startswith(str(envs / "stg.toml"))
    assert "\n" not in message
    assert err.value.exit_code == 2


def test_malformed_toml_is_one_line(tmp_path):
    envs = write(tmp_path, 'project = "aws-practice\n')
    with pytest.raises(ConfigError) as err:
        config.load(envs, "stg")
    assert "stg.toml: not valid TOML" in str(err.value)


def test_unknown_env_lists_known_ones():
    with pytest.raises(UsageError, match=r"unknown env 'qa': .*qa.toml does not exist \(known envs in .*: prd, stg\)"):
        config.load(ENVS, "qa")


def test_missing_envs_dir_suggests_init(tmp_path):
    with pytest.raises(UsageError, match=r"run `awsprac init`"):
        config.load(tmp_path / "nowhere", "stg")


def test_env_name_with_path_characters_is_refused():
    with pytest.raises(UsageError, match="bad env name '../stg'"):
        config.load(ENVS, "../stg")


def test_other_cidr_and_three_azs_split_cleanly(tmp_path):
    text = envfiles.render("stg").replace('"10.0.0.0/16"', '"172.20.0.0/20"').replace(
        '["ap-northeast-1a", "ap-northeast-1c"]', '["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"]'
    )
    cfg = config.load(write(tmp_path, text), "stg")
    from awsprac.steps import subnets

    specs = subnets.desired(cfg)
    assert [(s.name, s.cidr) for s in specs] == [
        ("public-subnet-1a-stg", "172.20.0.0/23"),
        ("public-subnet-1c-stg", "172.20.2.0/23"),
        ("public-subnet-1d-stg", "172.20.4.0/23"),
        ("private-subnet-1a-stg", "172.20.6.0/23"),
        ("private-subnet-1c-stg", "172.20.8.0/23"),
        ("private-subnet-1d-stg", "172.20.10.0/23"),
    ]


def test_init_writes_both_files_and_keeps_existing(tmp_path):
    from awsprac.engine.envfiles import write_defaults

    results = write_defaults(tmp_path, {"prd": "210987654321"}, force=False)
    assert [what for _, what in results] == ["written", "written"]
    assert config.load(tmp_path, "prd").account_id == "210987654321"
    (tmp_path / "stg.toml").write_text("# mine\n")
    results = write_defaults(tmp_path, {}, force=False)
    assert results[0][1].startswith("kept") and (tmp_path / "stg.toml").read_text() == "# mine\n"


def test_a_section_that_is_not_a_table(tmp_path):
    with pytest.raises(ConfigError, match=r"stg.toml: network: must be a table \[network\], got 3"):
        config.load(write(tmp_path, "network = 3\n"), "stg")


def test_a_minimal_file_takes_every_other_default(tmp_path):
    cfg = config.load(write(tmp_path, '[network]\nvpc_cidr = "10.8.0.0/16"\n'), "stg")
    assert cfg.network.vpc_cidr == "10.8.0.0/16" and cfg.nat.mode == "instance"


def test_the_maintenance_window_is_in_the_env_file_and_clear_of_the_backup_window_and_schedules():
    cfg = config.load(ENVS, "stg")
    assert cfg.database.maintenance_window == "tue:20:00-tue:20:30"  # Wed 05:00 JST; backups 16:00-19:00, schedules Sat 20:00-20:30 UTC
    assert "maintenance_window" in envfiles.render("stg")


@pytest.mark.parametrize("window, expected", [
    ("sun:18:30-sun:19:00", "overlaps database.backup_window 16:00-19:00 (AWS refuses windows that overlap)"),
    ("tue:02:00-tue:03:00", ""),
    ("tuesday 02:00", "must look like tue:20:00-tue:20:30"),
    ("tue:20:00-tue:20:10", "at least 30 minutes"),
])
def test_maintenance_window_is_validated_at_load(tmp_path, window, expected):
    envs = edited(tmp_path, 'maintenance_window = "tue:20:00-tue:20:30"', f'maintenance_window = "{window}"')
    if not expected:
        assert config.load(envs, "stg").database.maintenance_window == window
        return
    with pytest.raises(ConfigError) as err:
        config.load(envs, "stg")
    assert f"database.maintenance_window: {window!r} " in str(err.value) and expected in str(err.value)
    assert err.value.exit_code == 2


def test_overlapping_windows_exit_2_through_the_cli(tmp_path, capsys):
    from conftest import run_cli

    envs = edited(tmp_path, 'backup_window = "16:00-19:00"', 'backup_window = "20:00-21:00"')
    code, out, err = run_cli(capsys, "plan", "--env", "stg", envs=envs)
    assert code == 2 and "database.maintenance_window: 'tue:20:00-tue:20:30' overlaps database.backup_window 20:00-21:00" in err
    assert err.count("\n") == 1


# --- what AWS would refuse, refused when the file is read: one line, exit 2, nothing sent ---

REFUSED_BY_AWS = [
    ('start_expression = "cron(0 5 ? * SUN *)"', 'start_expression = "cron(0 5 * * SUN *)"',
     "scheduler.start_expression: 'cron(0 5 * * SUN *)': exactly one of day-of-month and day-of-week must be `?`"),
    ('start_expression = "cron(0 5 ? * SUN *)"', 'start_expression = "cron(0 5 ? * SUN)"',
     "scheduler.start_expression: 'cron(0 5 ? * SUN)': cron has 6 fields"),
    ('stop_expression = "cron(30 5 ? * SUN *)"', 'stop_expression = "cron(30 25 ? * SUN *)"',
     "scheduler.stop_expression: 'cron(30 25 ? * SUN *)': hours: '25' is outside 0-23"),
    ('stop_expression = "cron(30 5 ? * SUN *)"', 'stop_expression = "cron(30 5 ? * SUNDAY *)"',
     "scheduler.stop_expression: 'cron(30 5 ? * SUNDAY *)': day-of-week: 'SUNDAY' is not a value of this field"),
    ('start_expression = "cron(0 5 ? * SUN *)"', 'start_expression = "rate(0 days)"',
     "scheduler.start_expression: 'rate(0 days)': rate(...) takes a positive whole number"),
    ('start_expression = "cron(0 5 ? * SUN *)"', 'start_expression = "rate(7 weeks)"', "'rate(7 weeks)': rate(...) takes"),
    ('start_expression = "cron(0 5 ? * SUN *)"', 'start_expression = "at(2026-02-30T05:00:00)"', "'at(2026-02-30T05:00:00)': at(...): "),
    ('start_expression = "cron(0 5 ? * SUN *)"', 'start_expression = "weekly"', "'weekly': must be cron(...), rate(...) or at(...)"),
    ('timezone = "Asia/Tokyo"', 'timezone = "Asia/Tokio"', "scheduler.timezone: 'Asia/Tokio' is not an IANA time zone name"),
    ('timezone = "Asia/Tokyo"', 'timezone = "JST+9"', "scheduler.timezone: 'JST+9' is not an IANA time zone name"),
    ('instance_class = "db.t4g.micro"', 'instance_class = "t4g.micro"',
     "database.instance_class: 't4g.micro' is not an RDS instance class: they look like db.t4g.micro"),
    ('engine = "postgres"', 'engine = "podevres"', "database.engine: 'podevres' is not an RDS engine"),
    ('engine = "postgres"', 'engine = "aurora-postgresql"', "database.engine: 'aurora-postgresql' is an Aurora engine"),
    ('engine_major = "17"', 'engine_major = "71"', "database.engine_major: '71': RDS postgres never had that major version"),
    ('engine_major = "17"', 'engine_major = "17.4"', "database.engine_major: '17.4': RDS postgres never had that major version"),
    ('region = "ap-northeast-1"', 'region = "ap-northeast-9"', "region: 'ap-northeast-9' is not an AWS region"),
]


@pytest.mark.parametrize("old, new, expected", REFUSED_BY_AWS)
def test_what_aws_would_refuse_is_one_line_before_anything_is_sent(tmp_path, capsys, monkeypatch, mocked, calls, old, new, expected):
    from conftest import hook_every_session, run_cli

    envs = edited(tmp_path, old, new)
    hook_every_session(monkeypatch, [("before-call.*.*", calls)])
    for command in (("plan",), ("up", "--yes")):
        code, out, err = run_cli(capsys, *command, "--env", "stg", envs=envs)
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1
        assert str(envs / "stg.toml") in lines[0] and expected in lines[0], lines[0]
        assert out == ""
    assert calls.names == []  # not a read, let alone a write


@pytest.mark.parametrize("expression", [
    "cron(0 5 ? * SUN *)", "cron(0/15 * * * ? *)", "cron(0 8 1 * ? *)", "cron(0 10 ? * MON-FRI *)",
    "cron(0 18 L * ? *)", "cron(0 9 15W * ? 2027)", "cron(0 9 ? * 6L *)", "cron(0 9 ? * 2#1 *)", "cron(0,30 8-17 ? JAN,JUL MON,WED 2026-2030)",
    "rate(1 hour)", "rate(5 minutes)", "rate(7 days)", "at(2027-01-31T05:00:00)",
])
def test_expressions_scheduler_takes_pass(expression):
    from awsprac import known

    assert known.expression_problem(expression) is None


def test_the_timezones_people_use_pass(tmp_path):
    for zone in ("UTC", "Europe/Paris", "America/Argentina/Buenos_Aires"):
        envs = edited(tmp_path, 'timezone = "Asia/Tokyo"', f'timezone = "{zone}"')
        assert config.load(envs, "stg").scheduler.timezone == zone


def test_the_regions_are_the_ones_the_installed_sdk_knows_in_every_partition():
    import botocore.session

    from awsprac import known

    session = botocore.session.get_session()
    for partition in ("aws", "aws-cn", "aws-us-gov"):
        for region in session.get_available_regions("ec2", partition):
            assert known.region_problem(region) is None, region
    assert known.region_problem("ap-northeast-9") == "'ap-northeast-9' is not an AWS region (like ap-northeast-1 or us-east-1)"


def test_an_unknown_region_given_as_the_flag_names_the_flag(capsys, monkeypatch, mocked, calls):
    from conftest import hook_every_session, run_cli

    hook_every_session(monkeypatch, [("before-call.*.*", calls)])
    code, out, err = run_cli(capsys, "plan", "--env", "stg", "--region", "ap-northeast-9")
    assert code == 2
    assert "--region: 'ap-northeast-9' is not an AWS region" in err and "stg.toml" not in err
    assert calls.names == []


def test_the_env_files_and_readme_say_which_minor_the_plan_uses():
    from awsprac.steps.rds.instance import DEFAULT_MINOR

    readme = (ENVS.parent / "README.md").read_text()
    for text in (envfiles.render("stg"), readme):
        assert DEFAULT_MINOR in text and "newest" not in text.lower()
