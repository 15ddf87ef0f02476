"""What people see: one live display shared by concurrent waits; tables never read AWS text as markup."""

import io
import threading

from rich.console import Console

from awsprac.engine.plan import Action, Change, FieldDiff, Plan
from awsprac.engine.report import Reporter


def terminal_reporter() -> tuple[Reporter, io.StringIO]:
    reporter = Reporter()
    buffer = io.StringIO()
    reporter.err = Console(file=buffer, force_terminal=True, width=100, markup=False)
    return reporter, buffer


def test_waits_from_steps_running_at_once_share_one_display():
    reporter, buffer = terminal_reporter()
    both_inside = threading.Barrier(2, timeout=60)
    errors = []

    def wait(name):
        try:
            with reporter.waiting(f"{name} becoming available") as line:
                both_inside.wait()
                line.update(f"{name}: creating")
        except Exception as exc:  # rich raises LiveError for a second live display
            errors.append(exc)

    threads = [threading.Thread(target=wait, args=(n,)) for n in ("db aws-practice-stg", "nat aws-practice-nat-1a-stg")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and errors == []
    assert reporter._progress is None, "the display stops when the last wait ends"


def test_plan_table_shows_aws_text_verbatim():
    reporter = Reporter()
    out = io.StringIO()
    reporter.out = Console(file=out, width=200, markup=False)
    plan = Plan([Change("vpc", Action.UPDATE, "vpc", "[bold]odd[/bold]", "vpc-1", (FieldDiff("enableDnsHostnames", False, True),))])
    reporter.plan(plan, "Plan")
    text = out.getvalue()
    assert "[bold]odd[/bold]" in text
    assert "enableDnsHostnames: false -> true" in text
    assert "Plan: 0 to create, 1 to update, 0 to delete." in text
