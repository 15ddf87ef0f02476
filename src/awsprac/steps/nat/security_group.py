"""The NAT instance's security group: one all-traffic rule per private subnet, reconciled rule by rule
(rules someone added are reported, and removed only with `up --prune`)."""

from __future__ import annotations

import dataclasses

from awsprac.engine import lookup, tags
from awsprac.engine.aws import error_code
from awsprac.engine.context import Context
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import delete_when_free, eventually, gone_is_fine, network_interfaces, retag, revoke_references, update
from awsprac.steps.nat import ANYWHERE, NAME, Observed, SG, SecurityGroupSpec, desired


def read_rules(ctx: Context, sg: lookup.Found) -> tuple[dict, ...]:
    """The group's rules, as its description lists them; read one by one (with their ids, which a
    prune needs) only when there are rules the env file does not list."""
    rules = rules_of(sg.raw)
    spec = next((s for s in desired(ctx.cfg) if s.kind == SG), None)
    if spec is None or not rule_gaps(spec, rules)[2]:
        return rules
    pages = ctx.aws.ec2.get_paginator("describe_security_group_rules").paginate(Filters=[{"Name": "group-id", "Values": [sg.id]}])
    return tuple(r for page in pages for r in page["SecurityGroupRules"])


def rules_of(group: dict) -> tuple[dict, ...]:
    """A group's IpPermissions as rules (the shape DescribeSecurityGroupRules answers), one per peer."""
    rules = []
    for egress, key in ((False, "IpPermissions"), (True, "IpPermissionsEgress")):
        for permission in group.get(key, []):
            base = {"IpProtocol": permission.get("IpProtocol"), "FromPort": permission.get("FromPort"), "ToPort": permission.get("ToPort"), "IsEgress": egress}
            rules += [{**base, "CidrIpv4": r["CidrIp"]} for r in permission.get("IpRanges", [])]
            rules += [{**base, "CidrIpv6": r["CidrIpv6"]} for r in permission.get("Ipv6Ranges", [])]
            rules += [{**base, "PrefixListId": r["PrefixListId"]} for r in permission.get("PrefixListIds", [])]
            rules += [{**base, "ReferencedGroupInfo": {"GroupId": r.get("GroupId")}} for r in permission.get("UserIdGroupPairs", [])]
    return tuple(rules)


def find_security_group(ec2, name: str, vpc_id: str) -> lookup.Found | None:
    """By Name tag; else by group name (the console asks for both; a hand-made one may lack the tag)."""
    found = lookup.find_by_names(ec2, lookup.SECURITY_GROUP, [name], vpc_id).get(name)
    if found is not None:
        return found
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    if not groups:
        return None
    return dataclasses.replace(lookup.to_found(lookup.SECURITY_GROUP, groups[0]), name=name)


def diff_security_group(ctx: Context, spec: SecurityGroupSpec, have: Observed) -> list[Change]:
    sg = have.sg
    if sg is None:
        fields = (
            FieldDiff("description", None, spec.description),
            *(FieldDiff("inbound", None, f"all traffic from {cidr} ({name})") for cidr, name in spec.ingress),
            FieldDiff("outbound", None, f"all traffic to {ANYWHERE}"),
        )
        return [Change(NAME, Action.CREATE, SG, spec.name, fields=fields, spec=spec)]
    missing, egress_missing, extra = rule_gaps(spec, have.rules)
    fields = [FieldDiff("inbound", None, f"all traffic from {cidr} ({name})") for cidr, name in missing]
    if egress_missing:
        fields.append(FieldDiff("outbound", None, f"all traffic to {ANYWHERE}"))
    if ctx.options.prune:
        fields += [FieldDiff("outbound" if r.get("IsEgress") else "inbound", rule_text(r), None) for r in extra]
    changes = update(ctx, NAME, sg, fields, spec)
    if extra and not ctx.options.prune:
        changes.append(Change(
            NAME, Action.REPORT, SG, spec.name, sg.id,
            tuple(FieldDiff("outbound" if r.get("IsEgress") else "inbound", rule_text(r), None) for r in extra),
            note="rules the env file does not list, left in place (someone may have added them on purpose); `awsprac up --prune` removes them",
        ))
    if sg.raw.get("Description") != spec.description:
        changes.append(Change(
            NAME, Action.REPORT, SG, spec.name, sg.id, (FieldDiff("description", sg.raw.get("Description"), spec.description),),
            note="a security group's description cannot change: delete the group (nothing may use it), then `awsprac up`",
        ))
    return changes


def rule_gaps(spec: SecurityGroupSpec, rules: tuple[dict, ...]) -> tuple[list[tuple[str, str]], bool, list[dict]]:
    """(missing inbound (cidr, subnet), outbound all-traffic missing, rules the spec does not list)."""
    wanted_in = {cidr for cidr, _ in spec.ingress}
    present_in, egress_ok, extra = set(), False, []
    for r in rules:
        everything = r.get("IpProtocol") == "-1"
        if r.get("IsEgress"):
            if everything and r.get("CidrIpv4") == ANYWHERE:
                egress_ok = True
                continue
        elif everything and r.get("CidrIpv4") in wanted_in:
            present_in.add(r["CidrIpv4"])
            continue
        extra.append(r)
    return [(c, n) for c, n in spec.ingress if c not in present_in], not egress_ok, extra


def rule_text(rule: dict) -> str:
    protocol = rule.get("IpProtocol")
    if protocol == "-1":
        what = "all traffic"
    else:
        low, high = rule.get("FromPort"), rule.get("ToPort")
        ports = "" if low in (None, -1) else (f" {low}" if low == high else f" {low}-{high}")
        what = f"{protocol}{ports}"
    peer = rule.get("CidrIpv4") or rule.get("CidrIpv6") or rule.get("PrefixListId") or (rule.get("ReferencedGroupInfo") or {}).get("GroupId") or "?"
    return f"{what} {'to' if rule.get('IsEgress') else 'from'} {peer} ({rule.get('SecurityGroupRuleId')})"


def apply_security_group(ctx: Context, change: Change) -> None:
    ec2, have, spec = ctx.aws.ec2, ctx.observed[NAME], change.spec
    if change.action is Action.DELETE:
        revoke_references(ctx, change.id, ctx.observed["vpc"].id)  # e.g. step db-ingress's rule into the DB's group
        delete_when_free(ctx, change, ec2.delete_security_group, lambda: network_interfaces(ec2, group_id=change.id), GroupId=change.id)
        return
    if change.action is Action.CREATE:
        vpc_id = ctx.observed["vpc"].id
        try:
            group_id = eventually(
                ctx, f"vpc {vpc_id}", ec2.create_security_group, GroupName=spec.name, Description=spec.description, VpcId=vpc_id,
                TagSpecifications=tags.specification("security-group", ctx.tags(spec.name)),
            )["GroupId"]
        except Exception as exc:
            if error_code(exc) != "InvalidGroup.Duplicate":  # made by a run that crashed before it saw the answer
                raise
            existing = find_security_group(ec2, spec.name, vpc_id)
            if existing is None:
                raise
            retag(ctx, existing)
            group_id = existing.id
        ctx.made[(SG, spec.name)] = group_id  # the instance's launch, next, needs it: no second look
        rules: tuple[dict, ...] = ()
    else:
        retag(ctx, have.sg)
        group_id, rules = have.sg.id, have.rules
    missing, egress_missing, extra = rule_gaps(spec, rules)
    if change.action is Action.CREATE:
        egress_missing = False  # AWS gives every new group the all-traffic outbound rule
    if missing:
        _authorize(ctx, group_id, [{"CidrIp": cidr, "Description": f"all traffic from {name}"} for cidr, name in missing], ingress=True)
    if egress_missing:
        _authorize(ctx, group_id, [{"CidrIp": ANYWHERE}], ingress=False)
    if ctx.options.prune and extra:
        ingress = [r["SecurityGroupRuleId"] for r in extra if not r.get("IsEgress")]
        egress = [r["SecurityGroupRuleId"] for r in extra if r.get("IsEgress")]
        if ingress:
            gone_is_fine(ec2.revoke_security_group_ingress, GroupId=group_id, SecurityGroupRuleIds=ingress)
        if egress:
            gone_is_fine(ec2.revoke_security_group_egress, GroupId=group_id, SecurityGroupRuleIds=egress)


def _authorize(ctx: Context, group_id: str, ranges: list[dict], ingress: bool) -> None:
    call = ctx.aws.ec2.authorize_security_group_ingress if ingress else ctx.aws.ec2.authorize_security_group_egress
    try:
        eventually(ctx, f"security group {group_id}", call, GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": ranges}])
    except Exception as exc:
        if error_code(exc) != "InvalidPermission.Duplicate":
            raise
        # One of them is there already (AWS then adds none of the call's): one range at a time.
        for one in ranges:
            try:
                call(GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [one]}])
            except Exception as again:
                if error_code(again) != "InvalidPermission.Duplicate":
                    raise
