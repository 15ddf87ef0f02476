"""`awsprac export terraform`: hand what awsprac built over to Terraform (1.5+ `import` blocks).

The env is observed read-only with the steps' own observe() (the same reads as `awsprac outputs`),
and turned into a plain Python structure: files -> resources, each with its Terraform type, a stable
readable name, its attributes and the import id of what exists. The HCL writer renders that structure
and nothing else, so tests (and `--json`) can inspect exactly what is written.

Choices that keep `terraform plan` free of replacements:
- Attributes that force a new resource (CIDRs, AZs, AMI, subnet, names, SG descriptions, the DB's
  engine, subnet group, encryption, the ECR encryption) are written as AWS reports them.
- Security group rules are separate `aws_vpc_security_group_{ingress,egress}_rule` resources imported
  by their `sgr-` ids (the provider's current practice); the groups have no inline rules, so Terraform
  neither duplicates nor fights over them. Route tables have no inline routes: the default routes are
  `aws_route` resources, imported as `<rtb>_0.0.0.0/0`.
- `aws_internet_gateway` with `vpc_id` covers the attachment (no separate attachment resource).
- The main route table association cannot be imported (the provider has no importer): its resource
  block is written with a comment; Terraform's create re-asserts what already holds.
- Nothing secret is written: the DB's password stays in Secrets Manager (`password` is ignored by
  Terraform), and the secret's value (`aws_secretsmanager_secret_version`) is not managed, since
  importing it would copy the password into Terraform's state.
"""

from __future__ import annotations

from pathlib import Path

from awsprac.engine.errors import UsageError
from awsprac.engine.terraform import Export, Exporter, write


def build(ctx) -> Export:
    """Observe the env (read-only) and describe every resource awsprac built as Terraform: each family
    with an export_terraform facet adds its own, in the registry's order."""
    from awsprac.engine import runner

    steps = runner.resolve(None)
    runner.observe_all(ctx, steps)
    out = Export(ctx.cfg.env, [])
    exporter = Exporter(ctx, out)
    exporter.providers()
    for step in steps:
        facet = getattr(step, "export_terraform", None)
        if facet is not None:
            facet(ctx, exporter)
    out.files = [f for f in out.files if f.resources or f.raw]
    return out


def default_folder(env: str) -> Path:
    return Path("terraform") / env


def export_command(app, out: Path | None, force: bool, as_json: bool) -> None:
    """`awsprac export terraform`: observe, build, write (or print the structure as JSON)."""
    ctx = app.context(all_clients=True)
    folder = out or default_folder(app.cfg.env)
    if not as_json and folder.is_dir() and any(folder.iterdir()) and not force:
        raise UsageError(f"{folder} is not empty: pass --force to overwrite the files awsprac writes there, or choose another --out")
    export = build(ctx)
    for what in export.skipped:
        app.report.warn(f"not built, so not exported: {what} (`awsprac up --env {app.cfg.env}` builds it)")
    for text in export.warnings:
        app.report.warn(text)
    if as_json:
        app.report.json(export.to_json())
        return
    written = write(export, folder, force)
    imports = sum(1 for r in export.resources if r.import_id is not None)
    app.report.info(
        f"wrote {len(written)} file(s) to {folder}: {len(export.resources)} resource(s), {imports} to import. "
        f"Next: cd {folder} && terraform init && terraform plan"
    )
    for path in written:
        app.report.line(str(path))
