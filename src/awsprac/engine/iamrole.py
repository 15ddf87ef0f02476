"""An IAM role's deletion, shared by the families that make roles with policies attached (nat, app)."""

from __future__ import annotations

from awsprac.engine.aws import is_not_found
from awsprac.engine.reconcile import gone_is_fine


def delete_role(iam, name: str) -> None:
    """A role goes only once nothing holds it: profiles, managed and inline policies first."""
    try:
        profiles = [p["InstanceProfileName"] for page in iam.get_paginator("list_instance_profiles_for_role").paginate(RoleName=name) for p in page["InstanceProfiles"]]
        attached = [p["PolicyArn"] for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name) for p in page["AttachedPolicies"]]
        inline = [n for page in iam.get_paginator("list_role_policies").paginate(RoleName=name) for n in page["PolicyNames"]]
    except Exception as exc:
        if is_not_found(exc):
            return
        raise
    for profile in profiles:
        gone_is_fine(iam.remove_role_from_instance_profile, InstanceProfileName=profile, RoleName=name)
    for arn in attached:
        gone_is_fine(iam.detach_role_policy, RoleName=name, PolicyArn=arn)
    for policy in inline:
        gone_is_fine(iam.delete_role_policy, RoleName=name, PolicyName=policy)
    gone_is_fine(iam.delete_role, RoleName=name)
