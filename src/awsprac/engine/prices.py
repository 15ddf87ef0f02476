"""List prices kept in awsprac (prices/<region>.json, with their date and source pages), and the Line a
family's cost_lines facet gives for each resource that costs money."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from awsprac.engine.errors import UsageError

GIB = 1024 ** 3


@dataclass(frozen=True)
class Line:
    kind: str
    name: str
    id: str
    state: str
    running: float  # USD per month with everything started
    parked: float  # USD per month with the NAT instance and the DB stopped
    basis: str  # how it is computed

    @property
    def now(self) -> float:
        return self.parked if self.state == "stopped" else self.running


def regions() -> list[str]:
    folder = resources.files("awsprac") / "prices"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def price_table(region: str) -> dict:
    known = regions()
    if region not in known:
        raise UsageError(f"no price table for region {region}: awsprac has one for {', '.join(known)} (src/awsprac/prices/<region>.json)")
    return json.loads((resources.files("awsprac") / "prices" / f"{region}.json").read_text(encoding="utf-8"))


def money(x: float) -> float:
    return round(x + 1e-9, 2)
