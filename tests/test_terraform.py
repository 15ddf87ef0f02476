"""`awsprac export terraform`: an env built on in-process moto, exported, and the files read back with an
independent HCL parser (python-hcl2) and checked against what AWS (moto) holds: every resource awsprac
built has an import block with the right Terraform type and import id, and the attributes that would
force a replacement match what exists."""

import dataclasses
import json
import re

import hcl2
import pytest

from awsprac.commands import export as terraform
from awsprac.engine import terraform as tf
from awsprac.engine.errors import UsageError

from conftest import ENVS
from db_helpers import DB, SECRET, client, secret_value, up

GROUP = "aws-practice-stg"
REF = re.compile(r"^\$\{(.*)\}$")


def value(v):
    """python-hcl2 keeps string quotes and wraps expressions in ${...}: back to Python values."""
    if isinstance(v, str):
        if v.startswith('"') and v.endswith('"'):
            return json.loads(v)
        m = REF.match(v)
        return {"expr": m.group(1)} if m else v
    if isinstance(v, list):
        return [value(i) for i in v]
    if isinstance(v, dict):
        return {value(k) if k.startswith('"') else k: value(x) for k, x in v.items() if k != "__is_block__"}
    return v


def parse(folder):
    """({address: import id}, {address: attributes}, {file name: text}) of every .tf file."""
    imports, resources, texts = {}, {}, {}
    for path in sorted(folder.glob("*.tf")):
        texts[path.name] = path.read_text()
        doc = hcl2.loads(texts[path.name])
        for block in doc.get("import", []):
            to = value(block["to"])["expr"]
            assert to not in imports, f"{to} imported twice"
            imports[to] = value(block["id"])
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, attrs in named.items():
                    address = f"{value(rtype)}.{value(name)}"
                    assert address not in resources, f"{address} declared twice"
                    resources[address] = value(attrs)
    return imports, resources, texts


ASSIGNMENT = re.compile(r'^(\s*)("(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_-]*)( *)=(?!=) ?(.*)$')


def _net_brackets(text: str) -> int:
    depth, quoted, escaped = 0, False, False
    for ch in text:
        if quoted:
            escaped, quoted = (not escaped and ch == "\\"), quoted and (escaped or ch != '"')
        elif ch == '"':
            quoted = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
    return depth


def fmt_alignment_problems(text: str) -> list[str]:
    """`terraform fmt`'s `=` rule, checked independently of the writer: consecutive lines that each hold a
    whole `key = value` have their `=` in one column, one space after the longest key; a line whose value
    opens a bracket it does not close has one space before `=` and ends the run (as do blank lines,
    comments, block headers and closing brackets)."""
    problems: list[str] = []
    run: list[tuple[int, str, int]] = []  # (line number, text, length of indent + key)

    def close() -> None:
        width = max((key for _, _, key in run), default=0)
        problems.extend(f"{n}: {line!r}: `=` not one space after the run's longest key" for n, line, key in run
                        if line.index("=", key) != width + 1)
        run.clear()

    for n, line in enumerate(text.splitlines(), 1):
        m = ASSIGNMENT.match(line)
        if m is None:
            close()
            continue
        key = len(m.group(1)) + len(m.group(2))
        if _net_brackets(m.group(4)) > 0:
            close()
            if m.group(3) != " ":
                problems.append(f"{n}: {line!r}: a value over several lines takes one space before `=`")
        else:
            run.append((n, line, key))
    close()
    return problems


def test_the_alignment_check_knows_terraform_fmt():
    assert fmt_alignment_problems('  a   = 1\n  bcd = "x = y"\n\n  e = [\n    1,\n  ]\n  fg = 2\n') == []
    assert fmt_alignment_problems("  a = 1\n  bcd = 2\n") != []  # not aligned
    assert fmt_alignment_problems("  a    = 1\n  bcd  = 2\n") != []  # two spaces after the longest key
    assert fmt_alignment_problems("  a    = 1\n  tags = {\n  }\n") != []  # an opener padded to the run


def test_written_files_are_what_terraform_fmt_writes(tmp_path):
    f = tf.TfFile("x.tf", "comment")
    f.add(tf.Resource("aws_db_instance", "main", {
        "identifier": "db",
        "tags": {"Name": "db", "awsprac:env": "stg"},  # several lines, in the middle of one-line values
        "allocated_storage": 20,
        "policy": tf.jsonencode({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["a", "b"]}]}),
        "performance_insights_retention_period": 7,
        "x": "y",
    }, "db"))
    text = tf.render(f)
    assert fmt_alignment_problems(text) == []
    hcl2.loads(text)
    import shutil
    import subprocess

    exe = shutil.which("terraform")
    if exe is None:
        pytest.skip("terraform is not installed: the alignment check above stands in for `terraform fmt -check`")
    (tmp_path / "x.tf").write_text(text)
    done = subprocess.run([exe, "fmt", "-check", "-diff", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


def export(ctx, folder, force=False):
    result = terraform.build(ctx)
    tf.write(result, folder, force)
    return result


def ec2_id(describe, key, id_field, name):
    items = getattr(client("ec2"), describe)(Filters=[{"Name": "tag:Name", "Values": [name]}])[key]
    if key == "Reservations":
        items = [i for r in items for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    (item,) = items
    return item[id_field], item


def rules(group_id):
    return client("ec2").describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]


def refs(attrs):
    """Every reference expression in a resource's attributes."""
    found = []
    if isinstance(attrs, dict):
        if set(attrs) == {"expr"}:
            # References (aws_x.name.attr); not function calls (jsonencode) nor ignore_changes' names.
            return [attrs["expr"]] if re.fullmatch(r"aws_\w+\.\w+\.\w+", attrs["expr"]) else []
        for v in attrs.values():
            found += refs(v)
    elif isinstance(attrs, list):
        for v in attrs:
            found += refs(v)
    return found


def test_every_resource_awsprac_built_is_imported_with_its_terraform_type_and_id(ctx, tmp_path):
    up(ctx)
    result = export(ctx, tmp_path / "tf")
    assert result.skipped == []
    imports, resources, texts = parse(tmp_path / "tf")
    assert {name: fmt_alignment_problems(text) for name, text in texts.items()} == {name: [] for name in texts}
    assert sorted(texts) == ["database.tf", "ecr.tf", "nat.tf", "network.tf", "providers.tf", "routes.tf", "scheduler.tf", "secrets.tf"]

    vpc_id, vpc = ec2_id("describe_vpcs", "Vpcs", "VpcId", "aws-practice-stg")
    subnets = {z: ec2_id("describe_subnets", "Subnets", "SubnetId", f"{t}-subnet-{z[-2:]}-stg") for t in ("public", "private") for z in ("1a", "1c") for z in [f"{t}_{z}"]}
    subnets = {k: ec2_id("describe_subnets", "Subnets", "SubnetId", f"{k.split('_')[0]}-subnet-{k.split('_')[1]}-stg") for k in subnets}
    igw_id, _ = ec2_id("describe_internet_gateways", "InternetGateways", "InternetGatewayId", "aws-practice-igw-stg")
    nat_sg = client("ec2").describe_security_groups(Filters=[{"Name": "group-name", "Values": ["aws-practice-nat-stg"]}])["SecurityGroups"][0]
    db_sg = client("ec2").describe_security_groups(Filters=[{"Name": "group-name", "Values": ["aws-practice-db-stg"]}])["SecurityGroups"][0]
    instance_id, instance = ec2_id("describe_instances", "Reservations", "InstanceId", "aws-practice-nat-1a-stg")
    public_rtb, _ = ec2_id("describe_route_tables", "RouteTables", "RouteTableId", "aws-practice-rtb-public-stg")
    private_rtb, _ = ec2_id("describe_route_tables", "RouteTables", "RouteTableId", "aws-practice-rtb-private-stg")
    secret_arn = client("secretsmanager").describe_secret(SecretId=SECRET)["ARN"]
    ssm = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"

    expected = {
        "aws_vpc.main": vpc_id,
        **{f"aws_subnet.{k}": sid for k, (sid, _) in subnets.items()},
        "aws_internet_gateway.main": igw_id,
        "aws_security_group.nat": nat_sg["GroupId"],
        "aws_iam_role.nat": "aws-practice-nat-stg",
        "aws_iam_role_policy_attachment.nat_amazonssmmanagedinstancecore": f"aws-practice-nat-stg/{ssm}",
        "aws_iam_instance_profile.nat": "aws-practice-nat-stg",
        "aws_instance.nat": instance_id,
        "aws_route_table.public": public_rtb,
        "aws_route_table.private": private_rtb,
        "aws_route.public_default": f"{public_rtb}_0.0.0.0/0",
        "aws_route.private_default": f"{private_rtb}_0.0.0.0/0",
        **{f"aws_route_table_association.{k}": f"{sid}/{public_rtb if k.startswith('public') else private_rtb}" for k, (sid, _) in subnets.items()},
        "aws_secretsmanager_secret.db": secret_arn,
        "aws_security_group.db": db_sg["GroupId"],
        "aws_db_subnet_group.main": "aws-practice-db-subnet-group-stg",
        "aws_db_parameter_group.main": "aws-practice-db-parameter-group-stg",
        "aws_db_instance.main": DB,
        "aws_ecr_repository.main": "aws-practice-stg",
        "aws_ecr_lifecycle_policy.main": "aws-practice-stg",
        "aws_iam_role.scheduler": "aws-practice-scheduler-stg",
        "aws_iam_role_policy.scheduler_start_stop_db": "aws-practice-scheduler-stg:start-stop-db",
        "aws_scheduler_schedule_group.main": GROUP,
        "aws_scheduler_schedule.db_start": f"{GROUP}/aws-practice-db-start-stg",
        "aws_scheduler_schedule.db_stop": f"{GROUP}/aws-practice-db-stop-stg",
    }
    # Security group rules: one resource per rule, imported by its sgr- id.
    for group, label in ((nat_sg, "nat"), (db_sg, "db")):
        for rule in rules(group["GroupId"]):
            kind = "egress" if rule["IsEgress"] else "ingress"
            matching = [a for a, i in imports.items() if i == rule["SecurityGroupRuleId"]]
            assert len(matching) == 1 and matching[0].startswith(f"aws_vpc_security_group_{kind}_rule.{label}_"), rule
            expected[matching[0]] = rule["SecurityGroupRuleId"]
            if rule.get("ReferencedGroupInfo"):  # the DB's: 5432 from the NAT's group (database.tunnel)
                assert (label, resources[matching[0]]["referenced_security_group_id"]) == ("db", nat_sg["GroupId"])
                assert (resources[matching[0]]["ip_protocol"], resources[matching[0]]["from_port"]) == ("tcp", 5432)
            else:
                assert resources[matching[0]]["cidr_ipv4"] == rule["CidrIpv4"] and resources[matching[0]]["ip_protocol"] == "-1"
            assert resources[matching[0]]["security_group_id"] == {"expr": f"aws_security_group.{label}.id"}
    assert len([a for a in expected if a.startswith("aws_vpc_security_group_ingress_rule.nat_")]) == 2
    assert imports == expected

    # Every import has its resource block; the one resource without an import cannot be imported.
    assert set(resources) - set(imports) == {"aws_main_route_table_association.main"}
    assert resources["aws_main_route_table_association.main"] == {"vpc_id": {"expr": "aws_vpc.main.id"}, "route_table_id": {"expr": "aws_route_table.private.id"}}
    # References only name declared resources.
    for address, attrs in resources.items():
        for ref in refs(attrs):
            assert ".".join(ref.split(".")[:2]) in resources, f"{address} refers to {ref}"

    # What forces a replacement matches what exists.
    assert resources["aws_vpc.main"]["cidr_block"] == vpc["CidrBlock"] == "10.0.0.0/16"
    for k, (_, subnet) in subnets.items():
        r = resources[f"aws_subnet.{k}"]
        assert (r["cidr_block"], r["availability_zone"], r["vpc_id"]) == (subnet["CidrBlock"], subnet["AvailabilityZone"], {"expr": "aws_vpc.main.id"})
    assert resources["aws_internet_gateway.main"]["vpc_id"] == {"expr": "aws_vpc.main.id"}
    for label, group in (("nat", nat_sg), ("db", db_sg)):
        r = resources[f"aws_security_group.{label}"]
        assert (r["name"], r["description"]) == (group["GroupName"], "Managed by Terraform")
        assert "ingress" not in r and "egress" not in r  # rules are their own resources
    nat = resources["aws_instance.nat"]
    assert nat["ami"] == instance["ImageId"] and nat["instance_type"] == "t2.micro"
    assert nat["subnet_id"] == {"expr": "aws_subnet.public_1a.id"}
    assert nat["vpc_security_group_ids"] == [{"expr": "aws_security_group.nat.id"}]
    assert nat["source_dest_check"] is False and nat["associate_public_ip_address"] is True
    assert nat["iam_instance_profile"] == {"expr": "aws_iam_instance_profile.nat.name"}
    assert nat["lifecycle"][0]["ignore_changes"] == ["ami", "user_data", "user_data_base64"]
    assert resources["aws_route.private_default"]["network_interface_id"] == {"expr": "aws_instance.nat.primary_network_interface_id"}
    assert resources["aws_route.public_default"]["gateway_id"] == {"expr": "aws_internet_gateway.main.id"}

    db = client("rds").describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]
    r = resources["aws_db_instance.main"]
    assert (r["identifier"], r["engine"], r["engine_version"]) == (DB, "postgres", db["EngineVersion"].split(".")[0])
    assert (r["storage_encrypted"], r["availability_zone"], r["username"], r["db_name"]) == (True, "ap-northeast-1a", "postgres", "aws_practice")
    assert r["db_subnet_group_name"] == {"expr": "aws_db_subnet_group.main.name"}
    assert r["parameter_group_name"] == {"expr": "aws_db_parameter_group.main.name"}
    assert r["vpc_security_group_ids"] == [{"expr": "aws_security_group.db.id"}]
    assert r["lifecycle"][0]["ignore_changes"] == ["password", "final_snapshot_identifier"]
    # A second destroy must not collide with the first one's final snapshot: the name carries the time.
    assert r["final_snapshot_identifier"] == {"expr": 'format("%s-final-%s", "aws-practice-stg", formatdate("YYYYMMDD-hhmmss", timestamp()))'}
    assert "password" not in r and "manage_master_user_password" not in r
    assert sorted(x["expr"] for x in resources["aws_db_subnet_group.main"]["subnet_ids"]) == ["aws_subnet.private_1a.id", "aws_subnet.private_1c.id"]
    assert resources["aws_db_parameter_group.main"]["family"] == "postgres17"
    assert resources["aws_db_parameter_group.main"]["description"] == "Managed by Terraform"
    # A role's description is updated in place, but a Terraform plan would still show it: as AWS holds it.
    for address, name in (("aws_iam_role.nat", "aws-practice-nat-stg"), ("aws_iam_role.scheduler", "aws-practice-scheduler-stg")):
        described = client("iam").get_role(RoleName=name)["Role"]["Description"]
        assert described and resources[address]["description"] == described
    ecr = resources["aws_ecr_repository.main"]
    assert ecr["encryption_configuration"][0]["encryption_type"] == "AES256" and ecr["image_tag_mutability"] == "IMMUTABLE"
    schedule = resources["aws_scheduler_schedule.db_stop"]
    assert schedule["group_name"] == {"expr": "aws_scheduler_schedule_group.main.name"}
    assert schedule["target"][0]["role_arn"] == {"expr": "aws_iam_role.scheduler.arn"}
    held = client("scheduler").get_schedule(Name="aws-practice-db-stop-stg", GroupName=GROUP)
    assert schedule["target"][0]["input"] == held["Target"]["Input"]
    assert (schedule["schedule_expression"], schedule["schedule_expression_timezone"]) == ("cron(30 5 ? * SUN *)", "Asia/Tokyo")

    # Ownership tags through the provider; each resource names itself.
    provider = hcl2.loads(texts["providers.tf"])["provider"][0]['"aws"']
    assert (value(provider["region"]), value(provider["profile"])) == ("ap-northeast-1", "aws-practice-terraform-stg")
    assert value(provider["default_tags"][0]["tags"]) == {"awsprac:project": "aws-practice", "awsprac:env": "stg"}
    assert resources["aws_vpc.main"]["tags"] == {"Name": "aws-practice-stg"}

    # Nothing secret: not the password, not the secret's value.
    password = secret_value()["DB_PASSWORD"]
    assert all(password not in text for text in texts.values())
    assert not any(a.startswith("aws_secretsmanager_secret_version") for a in resources)


def test_gateway_mode_exports_the_elastic_ip_and_nat_gateway(make_ctx, cfg, tmp_path):
    gateway = dataclasses.replace(cfg, nat=dataclasses.replace(cfg.nat, mode="gateway"))
    ctx = make_ctx(config=gateway)
    up(ctx, ["vpc", "subnets", "igw", "public-routes", "nat", "routes"])
    result = export(ctx, tmp_path / "tf")
    imports, resources, texts = parse(tmp_path / "tf")
    assert {name: fmt_alignment_problems(text) for name, text in texts.items()} == {name: [] for name in texts}
    (gw,) = client("ec2").describe_nat_gateways(Filter=[{"Name": "tag:Name", "Values": ["aws-practice-nat-1a-stg"]}])["NatGateways"]
    allocation = gw["NatGatewayAddresses"][0]["AllocationId"]
    assert imports["aws_eip.nat"] == allocation and imports["aws_nat_gateway.nat"] == gw["NatGatewayId"]
    assert resources["aws_nat_gateway.nat"]["allocation_id"] == {"expr": "aws_eip.nat.id"}
    assert resources["aws_nat_gateway.nat"]["subnet_id"] == {"expr": "aws_subnet.public_1a.id"}
    assert resources["aws_eip.nat"]["domain"] == "vpc"
    assert resources["aws_route.private_default"]["nat_gateway_id"] == {"expr": "aws_nat_gateway.nat.id"}
    assert not any(a.startswith(("aws_instance", "aws_iam_instance_profile")) for a in resources)
    # What is not built is said, not invented.
    assert "DB instance aws-practice-stg" in result.skipped and not any(a.startswith("aws_db_instance") for a in resources)


def test_nothing_built_is_a_usage_error(ctx, tmp_path):
    with pytest.raises(UsageError, match="nothing built yet"):
        terraform.build(ctx)


def test_a_folder_that_holds_anything_is_only_overwritten_with_force(ctx, tmp_path):
    up(ctx, ["vpc", "subnets", "igw"])
    folder = tmp_path / "tf"
    folder.mkdir()
    (folder / "main.tf").write_text("# mine\n")
    with pytest.raises(UsageError, match="not empty: pass --force"):
        export(ctx, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["main.tf"]
    export(ctx, folder, force=True)
    assert (folder / "main.tf").read_text() == "# mine\n"  # files of other names are left alone
    assert "aws_vpc" in (folder / "network.tf").read_text()


def test_strings_are_written_literally_whatever_they_hold():
    tricky = 'say "hi" \\ ${not_a_ref} %{not_a_directive} \n ünïcode'
    f = tf.TfFile("x.tf", "comment")
    f.add(tf.Resource("aws_vpc", "main", {
        "description": tricky,
        "tags": {"Name": tricky, "awsprac:env": "stg"},
        "policy": tf.jsonencode({"Statement": [{"Action": tricky}]}),
        "list": [1, True, None, "x"],
    }, "vpc-1"))
    parsed = hcl2.loads(tf.render(f))
    attrs = value(parsed["resource"][0]['"aws_vpc"']['"main"'])
    # python-hcl2 keeps HCL's escapes; decoding them as JSON gives the text back.
    assert attrs["description"].replace("$${", "${").replace("%%{", "%{") == tricky
    assert attrs["tags"]["awsprac:env"] == "stg"
    assert value(parsed["import"][0]["id"]) == "vpc-1"


def test_cli_writes_the_folder_refuses_to_overwrite_and_prints_json(mocked, cfg, make_ctx, tmp_path, monkeypatch, capsys):
    from awsprac.commands import cli

    up(make_ctx(), ["vpc", "subnets", "igw"])
    monkeypatch.chdir(tmp_path)
    cli.main(["export", "terraform", "--env", "stg", "--envs-dir", str(ENVS)])
    out = capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "terraform" / "stg").iterdir()) == ["network.tf", "providers.tf"]
    assert "to import" in out.err and "terraform/stg/network.tf" in out.out

    with pytest.raises(SystemExit) as refused:
        cli.main(["export", "terraform", "--env", "stg", "--envs-dir", str(ENVS)])
    assert refused.value.code == 2
    assert "not empty: pass --force" in capsys.readouterr().err

    cli.main(["export", "terraform", "--env", "stg", "--envs-dir", str(ENVS), "--out", "elsewhere", "--json"])
    data = json.loads(capsys.readouterr().out)
    vpc = data["files"]["network.tf"][0]
    assert (vpc["address"], vpc["import_id"]) == ("aws_vpc.main", client("ec2").describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["aws-practice-stg"]}])["Vpcs"][0]["VpcId"])
    assert vpc["attributes"]["cidr_block"] == "10.0.0.0/16"
    assert "DB instance aws-practice-stg" in data["not_built"]
    assert not (tmp_path / "elsewhere").exists()  # --json writes nothing


def test_export_only_reads(make_ctx, calls, tmp_path):
    up(make_ctx(), ["vpc", "subnets", "igw", "public-routes", "nat-iam", "nat", "routes"])
    ctx = make_ctx(hooks=[("before-call.*.*", calls)])
    export(ctx, tmp_path / "tf")
    assert calls.names and calls.writes == []


def test_a_stopped_nat_instance_is_warned_about(make_ctx, tmp_path):
    ctx = make_ctx()
    up(ctx, ["vpc", "subnets", "igw", "nat-iam", "nat"])
    instance_id, _ = ec2_id("describe_instances", "Reservations", "InstanceId", "aws-practice-nat-1a-stg")
    client("ec2").stop_instances(InstanceIds=[instance_id])
    result = terraform.build(make_ctx())
    assert any("is stopped: start it and export again" in w for w in result.warnings)
