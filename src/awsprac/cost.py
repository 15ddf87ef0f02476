"""`awsprac cost`: what the env costs per month, running and parked (stopped), from list prices kept in
awsprac (prices/<region>.json, with their date and source pages), and what the NAT gateway design would
cost instead of the NAT instance (the guide's reason for the instance).

Which resources exist comes from observing the env through the steps (read-only), plus three reads
cost alone needs: the NAT instance's root volume size, the ECR images' size, the DB's manual snapshots.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources

from awsprac.aws import translate
from awsprac.context import Context
from awsprac.errors import UsageError

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


def _money(x: float) -> float:
    return round(x + 1e-9, 2)


def lines(ctx: Context, prices: dict, nat_gb: float) -> tuple[list[Line], list[str]]:
    """One line per resource that costs money; and notes on what has no price in the table."""
    from awsprac import runner

    runner.observe_all(ctx, runner.resolve(None))
    seen = ctx.observed
    hours = prices["hours_per_month"]
    ipv4 = prices["public_ipv4_hour"] * hours
    out: list[Line] = []
    notes: list[str] = []

    nat = seen["nat"]
    if nat.instance is not None:
        raw = nat.instance.raw
        itype = raw.get("InstanceType", "")
        hourly = prices["ec2_instance_hour"].get(itype)
        if hourly is None:
            notes.append(f"no price for instance type {itype} in the {prices['region']} table: NAT instance hours left out")
        out.append(Line("NAT instance", nat.instance.name, nat.instance.id, nat.instance.state,
                        _money((hourly or 0) * hours), 0.0, f"{itype} {hourly}/h x {hours} h; nothing while stopped"))
        for volume in _volumes(ctx, raw):
            vtype, size = volume["VolumeType"], volume["Size"]
            gb = prices["ebs_gb_month"].get(vtype)
            if gb is None:
                notes.append(f"no price for EBS {vtype} in the table: volume {volume['VolumeId']} left out")
                continue
            monthly = _money(size * gb)
            out.append(Line("EBS volume", f"{nat.instance.name} root", volume["VolumeId"], nat.instance.state, monthly, monthly,
                            f"{size} GiB {vtype} x {gb}/GB-month, also while stopped"))
        if raw.get("PublicIpAddress") or nat.instance.state == "stopped":
            if not nat.addresses.get(_address_name(ctx)):
                out.append(Line("public IPv4", f"{nat.instance.name} (auto-assigned)", raw.get("PublicIpAddress") or "-",
                                nat.instance.state, _money(ipv4), 0.0, f"{prices['public_ipv4_hour']}/h x {hours} h; released while stopped"))
    for name, address in sorted(nat.addresses.items()):
        out.append(Line("Elastic IP", name, address.raw.get("PublicIp", address.id), address.state or "allocated",
                        _money(ipv4), _money(ipv4), f"{prices['public_ipv4_hour']}/h x {hours} h, attached or not"))
    if nat.gateway is not None:
        monthly = _money(prices["nat_gateway_hour"] * hours + prices["nat_gateway_gb"] * nat_gb)
        out.append(Line("NAT gateway", nat.gateway.name, nat.gateway.id, nat.gateway.state, monthly, monthly,
                        f"{prices['nat_gateway_hour']}/h x {hours} h + {prices['nat_gateway_gb']}/GB x {nat_gb:g} GB; cannot be stopped"))

    db = seen["rds"].db
    if db is not None:
        raw = db.raw
        cls, engine = raw.get("DBInstanceClass", ""), raw.get("Engine", "postgres")
        hourly = prices["rds_instance_hour"].get(engine, {}).get(cls)
        if hourly is None:
            notes.append(f"no price for {engine} {cls} in the {prices['region']} table: DB instance hours left out")
        if raw.get("MultiAZ"):
            notes.append("the DB is multi-AZ: its instance hours cost twice the single-AZ price used here")
        out.append(Line("DB instance", db.name, db.id, db.state, _money((hourly or 0) * hours), 0.0,
                        f"{cls} {hourly}/h x {hours} h; nothing while stopped (AWS starts it again after 7 days)"))
        stype, size = raw.get("StorageType", "gp3"), raw.get("AllocatedStorage", 0)
        gb = prices["rds_storage_gb_month"].get(stype)
        if gb is None:
            notes.append(f"no price for RDS {stype} storage in the table: left out")
        else:
            monthly = _money(size * gb)
            out.append(Line("DB storage", db.name, db.id, db.state, monthly, monthly, f"{size} GiB {stype} x {gb}/GB-month, also while stopped"))
        snapshots = _snapshots(ctx, db.id)
        if snapshots:
            size = sum(s.get("AllocatedStorage", 0) for s in snapshots)
            monthly = _money(size * prices["rds_snapshot_gb_month"])
            out.append(Line("DB snapshots", f"{len(snapshots)} manual snapshot(s)", db.id, "available", monthly, monthly,
                            f"at most {size} GiB x {prices['rds_snapshot_gb_month']}/GB-month (snapshots are incremental)"))

    secret = seen["secrets"].secret
    if secret is not None:
        monthly = _money(prices["secret_month"])
        out.append(Line("secret", secret.found.name, secret.found.id, secret.found.state or "exists", monthly, monthly,
                        f"{prices['secret_month']}/secret-month (API calls extra, negligible here)"))

    repo = seen["ecr"].repo
    if repo is not None:
        size = _image_bytes(ctx, repo.name) / GIB
        monthly = _money(size * prices["ecr_gb_month"])
        out.append(Line("ECR repository", repo.name, repo.name, "exists", monthly, monthly, f"{size:.2f} GB x {prices['ecr_gb_month']}/GB-month"))
    return out, notes


def _address_name(ctx: Context) -> str:
    from awsprac.steps import nat

    return nat.names(ctx.cfg).instance_address


def _volumes(ctx: Context, instance: dict) -> list[dict]:
    ids = [m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("VolumeId")]
    if not ids:
        return []
    with translate("looking up", "the NAT instance's volumes"):
        return ctx.aws.ec2.describe_volumes(VolumeIds=ids)["Volumes"]


def _snapshots(ctx: Context, db_id: str) -> list[dict]:
    rds = ctx.aws.client("rds")
    with translate("looking up", f"the manual snapshots of DB instance {db_id}"):
        pages = rds.get_paginator("describe_db_snapshots").paginate(DBInstanceIdentifier=db_id, SnapshotType="manual")
        return [s for page in pages for s in page["DBSnapshots"]]


def _image_bytes(ctx: Context, repository: str) -> int:
    ecr = ctx.aws.client("ecr")
    with translate("looking up", f"the images of ECR repository {repository}"):
        pages = ecr.get_paginator("describe_images").paginate(repositoryName=repository)
        return sum(i.get("imageSizeInBytes", 0) for page in pages for i in page["imageDetails"])


def gateway_alternative(prices: dict, nat_gb: float, lines_: list[Line]) -> dict:
    """The NAT gateway design next to the NAT instance one (instance hours, its disk and its public IPv4)."""
    hours = prices["hours_per_month"]
    gateway = _money(prices["nat_gateway_hour"] * hours + prices["public_ipv4_hour"] * hours + prices["nat_gateway_gb"] * nat_gb)
    instance_kinds = ("NAT instance", "EBS volume", "public IPv4")
    mine = [line for line in lines_ if line.kind in instance_kinds]
    instance_type = "t2.micro"
    for line in mine:
        if line.kind == "NAT instance":
            instance_type = line.basis.split()[0]
    if mine:
        running, parked = sum(line.running for line in mine), sum(line.parked for line in mine)
    else:  # no NAT instance built: what the default one would cost
        running = prices["ec2_instance_hour"].get(instance_type, 0) * hours + 8 * prices["ebs_gb_month"]["gp3"] + prices["public_ipv4_hour"] * hours
        parked = 8 * prices["ebs_gb_month"]["gp3"]
    return {
        "nat_gateway_monthly": gateway,
        "nat_gateway_basis": f"{prices['nat_gateway_hour']}/h + {prices['public_ipv4_hour']}/h IPv4, x {hours} h, + {prices['nat_gateway_gb']}/GB x {nat_gb:g} GB",
        "nat_gb": nat_gb,
        "nat_instance_running": _money(running),
        "nat_instance_parked": _money(parked),
        "nat_instance_type": instance_type,
    }


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
            "running": _money(sum(line.running for line in found)),
            "parked": _money(sum(line.parked for line in found)),
            "now": _money(sum(line.now for line in found)),
        },
        "nat_gateway_design": gateway_alternative(prices, nat_gb, found),
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
    from awsprac.layout import Column

    columns = [Column("resource"), Column("name"), Column("state"), Column("running", right=True), Column("parked", right=True),
               Column("how", wrap=True)]
    rows = [[(r["kind"], ""), (r["name"], ""), (r["state"], ""), (f"${r['running']:.2f}", ""), (f"${r['parked']:.2f}", ""), (r["basis"], "")]
            for r in result["resources"]]
    t = result["totals"]
    rows.append([("total", ""), ("", ""), ("", ""), (f"${t['running']:.2f}", ""), (f"${t['parked']:.2f}", ""), (f"now: ${t['now']:.2f}/month", "")])
    report.table(title, columns, rows, head=3)
    if not result["resources"]:
        report.line(f"nothing built in env {result['env']} that costs money: `awsprac up --env {result['env']}` builds it")
    g = result["nat_gateway_design"]
    report.line(
        f"NAT gateway design instead of the NAT instance: ${g['nat_gateway_monthly']:.2f}/month ({g['nat_gateway_basis']}), "
        f"always on; the NAT instance ({g['nat_instance_type']}): ${g['nat_instance_running']:.2f} running, ${g['nat_instance_parked']:.2f} parked."
    )
    for note in result["notes"]:
        report.warn(note)
    p = result["prices"]
    report.line(f"List prices in {result['currency']} for {result['region']} as of {p['as_of']}, {p['hours_per_month']} h/month, "
                "no free tier: an estimate, not a quote (awsprac/prices/" + result["region"] + ".json names its sources).")
