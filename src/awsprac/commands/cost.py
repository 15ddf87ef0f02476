"""`awsprac cost`: what the env costs per month, running and parked (stopped), from list prices kept in
awsprac (prices/<region>.json, with their date and source pages), and what the NAT gateway design would
cost instead of the NAT instance (the guide's reason for the instance).

Which resources exist comes from observing the env through the steps (read-only); each family prices
its own (its cost_lines facet, with the reads cost alone needs: the NAT instance's root volume size,
the ECR images' size, the DB's manual snapshots), and may price another design next to it
(cost_comparison, cost_comparison_text).
"""

from __future__ import annotations

from dataclasses import asdict

from awsprac.engine.context import Context
from awsprac.engine.prices import Line, money, price_table

def lines(ctx: Context, prices: dict, nat_gb: float) -> tuple[list[Line], list[str]]:
    """One line per resource that costs money (each family's cost_lines facet, in the registry's order);
    and notes on what has no price in the table."""
    from awsprac.engine import runner

    steps = runner.resolve(None)
    runner.observe_all(ctx, steps)
    out: list[Line] = []
    notes: list[str] = []
    for step in steps:
        facet = getattr(step, "cost_lines", None)
        if facet is not None:
            more, more_notes = facet(ctx, prices, nat_gb)
            out += more
            notes += more_notes
    return out, notes


def comparisons(prices: dict, nat_gb: float, found: list[Line]) -> dict:
    """Other designs priced next to this one, by the families that have one (their cost_comparison)."""
    from awsprac import steps

    out: dict = {}
    for step in steps.all_steps():
        facet = getattr(step, "cost_comparison", None)
        if facet is not None:
            out.update(facet(prices, nat_gb, found))
    return out


def estimate(ctx: Context, nat_gb: float = 10.0) -> dict:
    prices = price_table(ctx.cfg.region)
    found, notes = lines(ctx, prices, nat_gb)
    return {
        "env": ctx.cfg.env,
        "region": ctx.cfg.region,
        "currency": prices["currency"],
        "prices": {"as_of": prices["as_of"], "sources": prices["sources"], "notice": prices["notice"], "hours_per_month": prices["hours_per_month"]},
        "resources": [{**asdict(line), "now": line.now} for line in found],
        "totals": {
            "running": money(sum(line.running for line in found)),
            "parked": money(sum(line.parked for line in found)),
            "now": money(sum(line.now for line in found)),
        },
        **comparisons(prices, nat_gb, found),
        "notes": notes,
    }


def command(app, as_json: bool, nat_gb: float) -> None:
    price_table(app.cfg.region)  # an unknown region says so before any AWS call
    ctx = app.context(all_clients=True)
    result = estimate(ctx, nat_gb)
    if as_json:
        app.report.json(result)
    else:
        show(app.report, result, f"Monthly cost of {app.title}")


def show(report, result: dict, title: str) -> None:
    from awsprac import steps
    from awsprac.engine.layout import Column

    columns = [Column("resource"), Column("name"), Column("state"), Column("running", right=True), Column("parked", right=True),
               Column("how", wrap=True)]
    rows = [[(r["kind"], ""), (r["name"], ""), (r["state"], ""), (f"${r['running']:.2f}", ""), (f"${r['parked']:.2f}", ""), (r["basis"], "")]
            for r in result["resources"]]
    t = result["totals"]
    rows.append([("total", ""), ("", ""), ("", ""), (f"${t['running']:.2f}", ""), (f"${t['parked']:.2f}", ""), (f"now: ${t['now']:.2f}/month", "")])
    report.table(title, columns, rows, head=3)
    if not result["resources"]:
        report.line(f"nothing built in env {result['env']} that costs money: `awsprac up --env {result['env']}` builds it")
    for step in steps.all_steps():
        facet = getattr(step, "cost_comparison_text", None)
        if facet is not None:
            report.line(facet(result))
    for note in result["notes"]:
        report.warn(note)
    p = result["prices"]
    report.line(f"List prices in {result['currency']} for {result['region']} as of {p['as_of']}, {p['hours_per_month']} h/month, "
                "no free tier: an estimate, not a quote (awsprac/prices/" + result["region"] + ".json names its sources).")
