"""The routes family's Terraform: both route tables, their default routes, subnet associations and the
main association (routes.tf)."""

from __future__ import annotations

from awsprac.engine.context import Context
from awsprac.engine.terraform import DEFAULT_ROUTE, Resource


def export_terraform(ctx: Context, out) -> None:
    """Both tables (step public-routes' and step routes') in routes.tf, once step nat's resources are known."""
    from awsprac import steps

    f = out.file("routes.tf", "Route tables, default routes, subnet associations; the private table is the VPC's main (docs/reference.md section 4).")
    subnets = ctx.observed["subnets"].subnets
    vpc = out.ref("aws_vpc", ctx.observed["vpc"].vpc.id)
    for step in (steps.load("public-routes"), steps.load("routes")):
        for spec in step.desired(ctx.cfg):
            _table(ctx, out, f, vpc, subnets, ctx.observed[step.NAME], spec)


def _table(ctx: Context, out, f, vpc, subnets: dict, have, spec) -> None:
    from awsprac.steps.routes import default_route

    table = have.tables.get(spec.name)
    if table is None:
        out.missing(f"route table {spec.name}")
        return
    rt = f.add(Resource("aws_route_table", spec.tier, {"vpc_id": vpc, "tags": out.tags(table.name)}, table.id))
    route = default_route(table)
    if route is not None:
        attrs: dict = {"route_table_id": rt.ref(), "destination_cidr_block": DEFAULT_ROUTE}
        attrs.update(_route_target(ctx, out, route))
        f.add(Resource("aws_route", f"{spec.tier}_default", attrs, f"{table.id}_{DEFAULT_ROUTE}"))
    for subnet_name in spec.subnets:
        subnet = subnets.get(subnet_name)
        current = have.association(subnet.id) if subnet else None
        if subnet is None or current is None or current[0] != table.id:
            continue
        r = out.named("aws_subnet", subnet_name)
        f.add(Resource("aws_route_table_association", r.name, {"subnet_id": r.ref(), "route_table_id": rt.ref()}, f"{subnet.id}/{table.id}"))
    main = have.main
    if spec.main and main is not None and main[0] == table.id:
        f.add(Resource("aws_main_route_table_association", "main", {"vpc_id": vpc, "route_table_id": rt.ref()}, None, comment=(
            "The provider cannot import a main route table association: `terraform plan` shows it to add, and\n"
            "applying it only re-asserts what already holds (ReplaceRouteTableAssociation to this same table).\n"
            "Terraform then records this table as the \"original\" main one: before `terraform destroy`, make\n"
            "another table main, or remove this resource from the state (`terraform state rm`)."
        )))


def _route_target(ctx: Context, out, route: dict) -> dict:
    nat_instance = next(iter(out.of_type("aws_instance")), None)
    if route.get("NatGatewayId"):
        return {"nat_gateway_id": out.ref("aws_nat_gateway", route["NatGatewayId"])}
    if route.get("NetworkInterfaceId"):
        eni = route["NetworkInterfaceId"]
        if nat_instance is not None and ctx.observed["nat"].interface == eni:
            return {"network_interface_id": nat_instance.ref("primary_network_interface_id")}
        return {"network_interface_id": eni}
    if route.get("GatewayId"):
        return {"gateway_id": out.ref("aws_internet_gateway", route["GatewayId"])}
    if route.get("InstanceId"):
        return {"network_interface_id": nat_instance.ref("primary_network_interface_id") if nat_instance else route["InstanceId"]}
    return {}
