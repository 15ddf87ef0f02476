"""Env files: SPEC defaults, and one clear line (file, key, value) for every bad input."""

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
        ('region = "ap-northeast-1"', 'region = "tokyo"', "region: 'tokyo' is not an AWS region name"),
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
