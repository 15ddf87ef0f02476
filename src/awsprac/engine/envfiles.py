"""`awsprac init`: write envs/<env>.toml from the commented template of the defaults in docs/reference.md."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from awsprac.engine.errors import UsageError

# prd differs from stg only in what protects production data.
ENV_DEFAULTS = {
    "stg": {"deletion_protection": False, "apply_immediately": True, "tunnel": True},
    "prd": {"deletion_protection": True, "apply_immediately": False, "tunnel": False},
}


TEMPLATE_REGION, TEMPLATE_ZONES = "ap-northeast-1", ("ap-northeast-1a", "ap-northeast-1c")


def render(env: str, account_id: str = "", region: str = "") -> str:
    template = resources.files("awsprac").joinpath("templates/env.toml").read_text(encoding="utf-8")
    if region and region != TEMPLATE_REGION:  # `init --region`: that region and two of its zones
        from awsprac.known import default_zones

        template = template.replace(f'region = "{TEMPLATE_REGION}"        # Tokyo', f'region = "{region}"')
        for old, new in zip(TEMPLATE_ZONES, default_zones(region)):
            template = template.replace(f'"{old}"', f'"{new}"')
    defaults = ENV_DEFAULTS.get(env, ENV_DEFAULTS["stg"])
    text = template.replace("@ENV@", env).replace("@ACCOUNT_ID@", account_id)
    for key, value in defaults.items():
        text = text.replace(f"@{key.upper()}@", "true" if value else "false")
    return text


def write_defaults(envs_dir: Path, accounts: dict[str, str], force: bool, region: str = "") -> list[tuple[Path, str]]:
    """Write stg and prd env files. Returns (path, 'written' | 'kept') for each."""
    results = []
    try:
        envs_dir.mkdir(parents=True, exist_ok=True)
        for env in ENV_DEFAULTS:
            path = envs_dir / f"{env}.toml"
            if path.exists() and not force:
                results.append((path, "kept (exists; --force overwrites)"))
                continue
            path.write_text(render(env, accounts.get(env, ""), region), encoding="utf-8")
            results.append((path, "written"))
    except OSError as exc:
        raise UsageError(f"cannot write env files in {envs_dir}: {exc.strerror}") from None
    return results
