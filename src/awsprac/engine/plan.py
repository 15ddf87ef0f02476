"""The plan as data: what `up` would do, built by read-only code, carried out by the runner."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    ADOPT = "adopt"  # found by name without our tags (made by hand): tag it, then reconcile
    DELETE = "delete"
    REPORT = "drift"  # drift awsprac will not fix by itself; the note says what it would take

    @property
    def symbol(self) -> str:
        return {"create": "+", "delete": "-", "drift": "!"}.get(self.value, "~")


@dataclass(frozen=True)
class FieldDiff:
    field: str
    have: Any
    want: Any

    def __str__(self) -> str:
        return f"{self.field}: {_show(self.have)} -> {_show(self.want)}"

    def text(self, creating: bool) -> str:
        """A setting of something new reads `field = value`; a change reads `field: old -> new`."""
        return f"{self.field} = {_show(self.want)}" if creating else str(self)


@dataclass(frozen=True)
class Change:
    step: str
    action: Action
    kind: str  # "vpc", "subnet", ...
    name: str  # the Name tag, our identity for the resource
    id: str | None = None  # AWS id when the resource exists
    fields: tuple[FieldDiff, ...] = ()
    spec: Any = None  # what apply needs (the step's desired spec); never shown
    note: str = ""

    @property
    def label(self) -> str:
        return self.action.value

    def details(self) -> list[str]:
        creating = self.action is Action.CREATE
        return [f.text(creating) for f in self.fields] + ([self.note] if self.note else [])

    def describe(self) -> str:
        parts = [f"{self.action.symbol} {self.kind} {self.name}"]
        if self.id:
            parts.append(f"({self.id})")
        details = self.details()
        return " ".join(parts) + ("  " + "; ".join(details) if details else "")


class RemovesOnly:
    """What a step that only removes (nat-leftovers, app-off) observed: always ready, no resource or output
    of its own (what it removes is another step's kind). A base for its Observed dataclass."""

    @property
    def ready(self) -> bool:
        return True

    def resources(self) -> list:
        return []

    def outputs(self) -> dict:
        return {}


@dataclass(frozen=True)
class StatusRow:
    step: str
    kind: str
    name: str
    id: str | None
    state: str
    sync: str  # "in sync" | "drifted" | "missing" | "not owned" | "parked" | "to be removed"
    detail: str = ""


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "delete": 0, "drift": 0}
        for c in self.changes:
            key = {Action.CREATE: "create", Action.DELETE: "delete", Action.REPORT: "drift"}.get(c.action, "update")
            out[key] += 1
        return out

    @property
    def actionable(self) -> list[Change]:
        return [c for c in self.changes if c.action is not Action.REPORT]

    def summary(self) -> str:
        n = self.counts()
        text = f"{n['create']} to create, {n['update']} to update, {n['delete']} to delete"
        if n["drift"]:
            text += f", {n['drift']} drift to resolve by hand"
        return text


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
