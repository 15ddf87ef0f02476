"""Output people read at 80 and 200 columns: no name or id broken, cut or padded."""

import json
import re

import pytest

from conftest import run_cli as run


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield str(value)


def _check_lines(out: str, columns: int) -> None:
    for line in out.splitlines():
        assert line == line.rstrip(), f"padded: {line!r}"
        # past the width only when one value alone is longer than the line (it is never broken)
        assert len(line) <= columns or " " not in line.strip(), f"{len(line)} > {columns}: {line!r}"


@pytest.mark.parametrize("columns", [80, 200])
def test_every_name_and_id_is_intact_in_plan_status_and_outputs(capsys, mocked, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    plan = json.loads(run(capsys, "plan", "--env", "stg", "--json")[1])
    code, out, err = run(capsys, "plan", "--env", "stg")
    assert code == 0
    _check_lines(out, columns)
    for change in plan["changes"]:
        assert change["name"] in out
        for field in change["fields"]:
            for word in (field["want"].split() if isinstance(field["want"], str) else []):
                assert word in out, word  # a value inside the description is never split either

    run(capsys, "up", "--env", "stg", "--yes")
    rows = json.loads(run(capsys, "status", "--env", "stg", "--json")[1])["resources"]
    code, out, err = run(capsys, "status", "--env", "stg")
    _check_lines(out, columns)
    for row in rows:
        assert row["name"] in out
        long = row["id"].startswith("arn:") or ".dkr.ecr." in row["id"]
        shown = re.split("[/:]", row["id"])[-1] if long else row["id"]  # an ARN's own last part: the name (or the secret's id)
        assert shown in out, row
    assert "arn:" not in out and ".dkr.ecr." not in out  # names, not ARNs: the ARN is in --json
    assert any(row["id"].startswith("arn:") for row in rows)

    values = json.loads(run(capsys, "outputs", "--env", "stg", "--json")[1])["outputs"]
    code, out, err = run(capsys, "outputs", "--env", "stg")
    _check_lines(out, columns)
    for key in values:
        assert key in out
    for value in _leaves(values):
        assert value in out, value
    assert "…" not in out

    resources = json.loads(run(capsys, "cost", "--env", "stg", "--json")[1])["resources"]
    code, out, err = run(capsys, "cost", "--env", "stg")
    _check_lines(out.split("\nNAT gateway design")[0], columns)  # the notes after the table are sentences
    for resource in resources:
        assert resource["name"] in out and f"${resource['running']:.2f}" in out


def test_a_plan_that_fits_is_a_table_and_a_column_empty_for_every_row_is_dropped(capsys, mocked, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = run(capsys, "plan", "--env", "stg")[1]
    assert out.splitlines()[1].split() == ["step", "resource", "name", "changes"]  # no id: nothing exists yet
    monkeypatch.setenv("COLUMNS", "100")
    out = run(capsys, "plan", "--env", "stg")[1]
    assert "+  subnets        subnet               public-subnet-1a-stg\n    az = ap-northeast-1a\n    cidr = 10.0.0.0/18\n" in out
