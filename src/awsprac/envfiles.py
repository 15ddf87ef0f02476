"""`awsprac init`: write envs/<env>.toml from the commented template of SPEC defaults."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from awsprac.errors import UsageError

# prd differs from stg only in what protects production data.
ENV_DEFAULTS = {"stg": {"deletion_protection": False}, "prd": {"deletion_protection": True}}


def render(env: str, account_id: str = "") -> str:
    template = resources.files("awsprac").joinpath("templates/env.toml").read_text(encoding="utf-8")
    protection = ENV_DEFAULTS.get(env, {}).get("deletion_protection", False)
    return (
        template.replace("@ENV@", env)
        .replace("@ACCOUNT_ID@", account_id)
        .replace("@DELETION_PROTECTION@", "true" if protection else "false")
    )


def write_defaults(envs_dir: Path, accounts: dict[str, str], force: bool) -> list[tuple[Path, str]]:
    """Write stg and prd env files. Returns (path, 'written' | 'kept') for each."""
    results = []
    try:
        envs_dir.mkdir(parents=True, exist_ok=True)
        for env in ENV_DEFAULTS:
            path = envs_dir / f"{env}.toml"
            if path.exists() and not force:
                results.append((path, "kept (exists; --force overwrites)"))
                continue
            path.write_text(render(env, accounts.get(env, "")), encoding="utf-8")
            results.append((path, "written"))
    except OSError as exc:
        raise UsageError(f"cannot write env files in {envs_dir}: {exc.strerror}") from None
    return results
