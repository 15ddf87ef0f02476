"""The repository carries its own reference: docs/reference.md names every resource awsprac builds, the
README links it, and nothing the project ships cites a document it does not have (SPEC.md)."""

import re

import pytest

from awsprac import config, steps
from awsprac.engine import envfiles

from conftest import ENVS, REPO

REFERENCE = REPO / "docs" / "reference.md"


@pytest.mark.parametrize("env", ["stg", "prd"])
def test_the_reference_names_every_resource_of_each_env(env):
    text = REFERENCE.read_text()
    cfg = config.load(ENVS, env)
    names = [spec.name for step in steps.all_steps() for spec in step.desired(cfg)]
    assert len(names) > 20
    missing = [n for n in names if n.replace(cfg.project, "{project}").replace(f"-{env}", "-{env}") not in text]
    assert missing == []


def test_the_readme_links_the_reference():
    assert "](docs/reference.md)" in (REPO / "README.md").read_text()


def test_nothing_cites_a_spec_the_repository_does_not_have():
    shipped = [REPO / "README.md", *REPO.glob("envs/*.toml"), *REPO.glob("docs/*.md"), *(REPO / "src").rglob("*.py"),
               *(REPO / "src").rglob("*.toml"), *REPO.glob("tests/*.py")]
    citing = [str(p.relative_to(REPO)) for p in shipped if p.name != "test_docs.py" and re.search(r"\bSPEC\b(?!_)", p.read_text())]
    assert citing == []
    assert "SPEC" not in envfiles.render("stg")
