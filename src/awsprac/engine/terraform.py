"""Terraform for `awsprac export terraform`: the structure a family's export_terraform facet builds
(files -> resources, each with its Terraform type, a stable readable name, its attributes and the
import id of what exists), the helpers families share while building it, and the HCL writer, which
renders that structure and nothing else (so tests and `--json` see exactly what is written).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from awsprac.engine.errors import UsageError

DEFAULT_ROUTE = "0.0.0.0/0"
MANAGED_BY = "Managed by Terraform"
AWS_PROVIDER = ">= 5.0"
TERRAFORM = ">= 1.5.0"


# --- the structure ---


@dataclass(frozen=True)
class Expr:
    """An HCL expression written as is: a reference (aws_vpc.main.id) or a function call."""

    text: str


@dataclass(frozen=True)
class Block:
    """A nested block (target { ... }), as opposed to a map attribute (tags = { ... })."""

    attrs: dict


@dataclass
class Resource:
    type: str
    name: str
    attrs: dict
    import_id: str | None  # None: the resource type cannot be imported
    comment: str = ""

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"

    def ref(self, attribute: str = "id") -> Expr:
        return Expr(f"{self.address}.{attribute}")


@dataclass
class TfFile:
    name: str
    comment: str
    resources: list[Resource] = field(default_factory=list)
    raw: str = ""  # providers.tf: written as text

    def add(self, resource: Resource) -> Resource:
        self.resources.append(resource)
        return resource


@dataclass
class Export:
    env: str
    files: list[TfFile]
    skipped: list[str] = field(default_factory=list)  # what awsprac would build but does not exist yet
    warnings: list[str] = field(default_factory=list)

    @property
    def resources(self) -> list[Resource]:
        return [r for f in self.files for r in f.resources]

    def to_json(self) -> dict:
        return {
            "env": self.env,
            "files": {
                f.name: [
                    {"address": r.address, "type": r.type, "name": r.name, "import_id": r.import_id, "attributes": _jsonable(r.attrs)}
                    for r in f.resources
                ]
                for f in self.files
            },
            "not_built": self.skipped,
            "warnings": self.warnings,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Expr):
        return {"expr": value.text}
    if isinstance(value, Json):
        return {"jsonencode": value.value}
    if isinstance(value, Block):
        return {"block": _jsonable(value.attrs)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def address_name(text: str) -> str:
    """A Terraform name from anything: lower-case letters, digits and '_', starting with a letter."""
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return name if name and name[0].isalpha() else f"r_{name}"


@dataclass(frozen=True)
class Json:
    """A JSON document written as jsonencode({...}): the provider compares policies as JSON, not as text."""

    value: Any


def jsonencode(value: Any) -> Json:
    return Json(value)


# --- what a family's export_terraform(ctx, out) writes into ---


class Exporter:
    """The export being built, walked family by family in the registry's order: a family adds its
    resources to its file(s), and refers to those of families before it by their import ids."""

    def __init__(self, ctx, export: Export):
        self.ctx, self.cfg, self.export = ctx, ctx.cfg, export

    def file(self, name: str, comment: str) -> TfFile:
        """The file of that name, made (with its comment) by the first family that writes to it."""
        for f in self.export.files:
            if f.name == name:
                return f
        f = TfFile(name, comment)
        self.export.files.append(f)
        return f

    def providers(self) -> None:
        from awsprac.engine import tags

        f = self.file("providers.tf", "Provider and versions. The ownership tags awsprac reads are default_tags, so every resource keeps them.")
        f.raw = "\n".join([
            "terraform {",
            f"  required_version = {_string(TERRAFORM)}",
            "  required_providers {",
            "    aws = {",
            f"      source  = {_string('hashicorp/aws')}",
            f"      version = {_string(AWS_PROVIDER)}",
            "    }",
            "  }",
            "}",
            "",
            'provider "aws" {',
            f"  region  = {_string(self.cfg.region)}",
            f"  profile = {_string(self.cfg.profile_name)}",
            "",
            "  default_tags {",
            "    tags = " + _hcl(tags.ownership(self.cfg.project, self.cfg.env), 2),
            "  }",
            "}",
            "",
        ])

    def missing(self, what: str) -> None:
        self.export.skipped.append(what)

    def warn(self, text: str) -> None:
        self.export.warnings.append(text)

    def tags(self, name: str) -> dict:
        # The ownership tags come from the provider's default_tags.
        return {"Name": name}

    def of_type(self, type: str) -> list[Resource]:
        return [r for r in self.export.resources if r.type == type]

    def find(self, type: str, import_id: str | None) -> Resource | None:
        return next((r for r in self.of_type(type) if import_id is not None and r.import_id == import_id), None)

    def named(self, type: str, name: str) -> Resource | None:
        return next((r for r in self.of_type(type) if r.attrs.get("tags", {}).get("Name") == name), None)

    def ref(self, type: str, import_id: str, attribute: str = "id") -> Any:
        """A reference to the exported resource with that id, or the id as is when it is not exported."""
        found = self.find(type, import_id)
        return found.ref(attribute) if found else import_id

    def role_description(self, role) -> str | None:
        """The account-wide IAM read the steps make (GetAccountAuthorizationDetails) carries no role
        descriptions: asked for by name."""
        if "Description" in role.raw:
            return role.raw["Description"]
        from awsprac.engine.aws import translate

        with translate("looking up", f"IAM role {role.name}"):
            return self.ctx.aws.client("iam").get_role(RoleName=role.name)["Role"].get("Description")


    def iam_role(self, f: TfFile, label: str, role, inline: dict, attached) -> Resource:
        """An IAM role, its inline policies and the managed policies attached to it."""
        resource = f.add(Resource("aws_iam_role", label, {
            "name": role.name,
            "description": self.role_description(role),
            "assume_role_policy": jsonencode(policy(role.raw.get("AssumeRolePolicyDocument"))),
            "tags": self.tags(role.name),
        }, role.name))
        for policy_name, document in sorted(inline.items()):
            f.add(Resource("aws_iam_role_policy", f"{label}_{address_name(policy_name)}", {
                "name": policy_name, "role": resource.ref(), "policy": jsonencode(policy(document)),
            }, f"{role.name}:{policy_name}"))
        for arn in sorted(attached):
            f.add(Resource("aws_iam_role_policy_attachment", f"{label}_{address_name(arn.rsplit('/', 1)[-1])}", {
                "role": resource.ref("name"), "policy_arn": arn,
            }, f"{role.name}/{arn}"))
        return resource

    def security_group(self, f: TfFile, label: str, found, name: str) -> Resource | None:
        """The group and each of its rules, imported by their sgr- ids."""
        if found is None:
            self.missing(f"security group {name}")
            return None
        sg = f.add(Resource("aws_security_group", label, {
            "name": found.raw.get("GroupName", name),
            "description": found.raw.get("Description", MANAGED_BY),
            "vpc_id": self.ref("aws_vpc", found.raw.get("VpcId")),
            "tags": self.tags(found.name or name),
        }, found.id))
        ec2 = self.ctx.aws.ec2
        pages = ec2.get_paginator("describe_security_group_rules").paginate(Filters=[{"Name": "group-id", "Values": [found.id]}])
        rules = sorted((r for page in pages for r in page["SecurityGroupRules"]), key=lambda r: (r.get("IsEgress", False), r.get("CidrIpv4") or "", r["SecurityGroupRuleId"]))
        subnet_by_cidr = {r.attrs["cidr_block"]: r for r in self.of_type("aws_subnet")}
        used: set[str] = set()
        for rule in rules:
            egress = rule.get("IsEgress", False)
            attrs: dict = {"security_group_id": sg.ref(), "ip_protocol": rule.get("IpProtocol", "-1")}
            if rule.get("IpProtocol") not in ("-1", None):
                attrs["from_port"], attrs["to_port"] = rule.get("FromPort"), rule.get("ToPort")
            peer = rule.get("CidrIpv4")
            if peer:
                attrs["cidr_ipv4"] = peer
            elif rule.get("CidrIpv6"):
                attrs["cidr_ipv6"] = rule["CidrIpv6"]
            elif rule.get("PrefixListId"):
                attrs["prefix_list_id"] = rule["PrefixListId"]
            elif (rule.get("ReferencedGroupInfo") or {}).get("GroupId"):
                attrs["referenced_security_group_id"] = rule["ReferencedGroupInfo"]["GroupId"]
            if rule.get("Description"):
                attrs["description"] = rule["Description"]
            if peer == DEFAULT_ROUTE:
                readable = "all_out" if egress else "from_anywhere"
            elif peer in subnet_by_cidr:
                readable = f"from_{subnet_by_cidr[peer].name}" if not egress else f"to_{subnet_by_cidr[peer].name}"
            else:
                readable = rule["SecurityGroupRuleId"].replace("-", "_")
            rule_name = f"{label}_{readable}"
            if rule_name in used:
                rule_name = f"{rule_name}_{rule['SecurityGroupRuleId'].replace('-', '_')}"
            used.add(rule_name)
            kind = "aws_vpc_security_group_egress_rule" if egress else "aws_vpc_security_group_ingress_rule"
            f.add(Resource(kind, rule_name, attrs, rule["SecurityGroupRuleId"]))
        return sg


def policy(document: Any) -> Any:
    if isinstance(document, str):
        import urllib.parse

        return json.loads(urllib.parse.unquote(document))
    return document or {}


# --- writing HCL ---

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _string(text: str) -> str:
    # JSON's escapes are HCL's; "${" and "%{" start templates in HCL and are doubled to stay literal.
    return json.dumps(text, ensure_ascii=False).replace("${", "$${").replace("%{", "%%{")


def _key(key: str) -> str:
    return key if IDENTIFIER.match(key) else _string(key)


def _hcl(value: Any, indent: int, json_object: bool = False) -> str:
    """An attribute's value. Map keys are quoted inside jsonencode (they are JSON keys, verbatim)."""
    pad = "  " * (indent + 1)
    if isinstance(value, Expr):
        return value.text
    if isinstance(value, Json):
        return f"jsonencode({_hcl(value.value, indent, json_object=True)})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        items = [_hcl(v, indent + 1, json_object) for v in value]
        if all("\n" not in i for i in items) and sum(len(i) for i in items) < 80:
            return "[" + ", ".join(items) + "]"
        return "[\n" + "".join(f"{pad}{i},\n" for i in items) + "  " * indent + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        keys = [(_string(k) if json_object else _key(k)) for k in value]
        lines = _assignments(pad, [(k, _hcl(v, indent + 1, json_object)) for k, v in zip(keys, value.values())])
        return "{\n" + "\n".join(lines) + "\n" + "  " * indent + "}"
    raise TypeError(f"cannot write {type(value).__name__} as HCL")


def _assignments(pad: str, pairs: list[tuple[str, str]]) -> list[str]:
    """`key = value` lines as `terraform fmt` aligns them: the `=` of consecutive one-line values in one
    column; a value over several lines is written `key = {` (one space) and ends the run of aligned lines."""
    lines: list[str] = []
    run: list[tuple[str, str]] = []

    def flush() -> None:
        width = max((len(k) for k, _ in run), default=0)
        lines.extend(f"{pad}{k.ljust(width)} = {v}" for k, v in run)
        run.clear()

    for key, text in pairs:
        if "\n" in text:
            flush()
            lines.append(f"{pad}{key} = {text}")
        else:
            run.append((key, text))
    flush()
    return lines


def _body(attrs: dict, indent: int) -> list[str]:
    pad = "  " * indent
    plain = [(k, v) for k, v in attrs.items() if v is not None and not isinstance(v, Block)]
    blocks = [(k, v) for k, v in attrs.items() if isinstance(v, Block)]
    lines = _assignments(pad, [(k, _hcl(v, indent)) for k, v in plain])
    for name, block in blocks:
        lines.append("")
        lines.append(f"{pad}{name} {{")
        lines.extend(_body(block.attrs, indent + 1))
        lines.append(f"{pad}}}")
    return lines


def render(f: TfFile) -> str:
    out = [f"# {line}" if line else "#" for line in f"{f.comment}\n\nWritten by `awsprac export terraform`.".splitlines()]
    out.append("")
    if f.raw:
        out.append(f.raw)
    for r in f.resources:
        if r.comment:
            out.extend(f"# {line}" for line in r.comment.splitlines())
        if r.import_id is not None:
            out += ["import {", f"  to = {r.address}", f"  id = {_string(r.import_id)}", "}", ""]
        out.append(f"resource {_string(r.type)} {_string(r.name)} {{")
        out.extend(_body(r.attrs, 1))
        out += ["}", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def write(export: Export, folder: Path, force: bool) -> list[Path]:
    """Write the files; a folder that holds anything is only written into with force."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise UsageError(f"{folder} is not empty: pass --force to overwrite the files awsprac writes there, or choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for f in export.files:
        path = folder / f.name
        path.write_text(render(f), encoding="utf-8")
        written.append(path)
    return written


