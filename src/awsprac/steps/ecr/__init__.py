"""Step `ecr`: the container registry `{project}-{env}` and its lifecycle policy (docs/reference.md section 7).

Tag mutability is reconciled; encryption is fixed at creation, so a difference is reported
with what it would take, never "fixed" by deleting a repository that holds images. The
lifecycle policy is a JSON string in AWS: it is compared parsed, and written only when it differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from awsprac.engine import tags
from awsprac.engine.aws import error_code, translate
from awsprac.config import EnvConfig
from awsprac.engine.context import Context
from awsprac.engine.errors import AwsError
from awsprac.engine.lookup import Found
from awsprac.engine.plan import Action, Change, FieldDiff
from awsprac.engine.reconcile import add_missing_tags, applying, delete_change, gone_is_fine, resource, update

NAME = "ecr"
REQUIRES: tuple[str, ...] = ()

REPOSITORY = "ECR repository"
LIFECYCLE = "lifecycle policy"
DEFAULT_ENCRYPTION = "AES256"  # what AWS uses when a create names none


@dataclass(frozen=True)
class RepositorySpec:
    name: str
    tag_mutability: str
    encryption: str
    kind: str = REPOSITORY


@dataclass(frozen=True)
class LifecycleSpec:
    name: str  # the repository's: a lifecycle policy belongs to one repository
    keep_images: int
    kind: str = LIFECYCLE

    @property
    def description(self) -> str:
        return f"keep only the latest {self.keep_images} images"

    @property
    def document(self) -> dict:
        return {"rules": [{
            "rulePriority": 1,
            "description": self.description,
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": self.keep_images},
            "action": {"type": "expire"},
        }]}


@dataclass(frozen=True)
class Observed:
    repo: Found | None
    policy: Any = None  # the lifecycle policy, parsed (a str when AWS holds text that is not JSON); None: no policy
    images: int = 0  # distinct images (digests), counted only when the encryption differs

    @property
    def ready(self) -> bool:
        return self.repo is not None

    @property
    def uri(self) -> str | None:
        return self.repo.raw["repositoryUri"] if self.repo else None

    @property
    def arn(self) -> str | None:
        return self.repo.raw["repositoryArn"] if self.repo else None

    def resources(self) -> list[Found]:
        if self.repo is None:
            return []
        found = [self.repo]
        if self.policy is not None:
            # The policy has no id or tags of its own: it is owned with its repository.
            found.append(Found(LIFECYCLE, self.repo.name, "", summary(self.policy), self.repo.tags, {}))
        return found

    def outputs(self) -> dict:
        return {"ecr_repository_uri": self.uri, "ecr_repository_arn": self.arn} if self.repo else {}


def repository_name(cfg: EnvConfig) -> str:
    return cfg.name("{project}-{env}")


def desired(cfg: EnvConfig) -> list:
    name = repository_name(cfg)
    return [RepositorySpec(name, cfg.ecr.tag_mutability, cfg.ecr.encryption), LifecycleSpec(name, cfg.ecr.keep_images)]


def find_repository(ecr, name: str) -> dict | None:
    """The repository as DescribeRepositories gives it, or None. Names are unique in a registry: no duplicates."""
    try:
        (repo,) = ecr.describe_repositories(repositoryNames=[name])["repositories"]
    except Exception as exc:
        if error_code(exc) == "RepositoryNotFoundException":
            return None
        raise
    return repo


def observe(ctx: Context) -> Observed:
    ecr, name = ctx.aws.client("ecr"), repository_name(ctx.cfg)
    with translate("looking up", f"{REPOSITORY} {name}"):
        repo = find_repository(ecr, name)
        if repo is None:
            return Observed(None)
        repo_tags = tags.as_dict(ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"]).get("tags"))
        try:
            text = ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"]
        except Exception as exc:
            if error_code(exc) != "LifecyclePolicyNotFoundException":
                raise
            text = None
        # Images are counted only where the count matters (an encryption that differs; destroy):
        # a converged `up` does not list them.
        encryption = (repo.get("encryptionConfiguration") or {}).get("encryptionType", DEFAULT_ENCRYPTION)
        images = count_images(ecr, name) if encryption != ctx.cfg.ecr.encryption else 0
    found = Found(REPOSITORY, name, repo["repositoryUri"], "exists", repo_tags, repo)
    return Observed(found, None if text is None else _parse(text), images)


def status_states(ctx: Context, have: Observed) -> dict:
    """For `awsprac status` only: the repository's state is its image count."""
    if have.repo is None:
        return {}
    with translate("counting", f"the images in {REPOSITORY} {have.repo.name}"):
        return {(REPOSITORY, have.repo.name): f"{count_images(ctx.aws.client('ecr'), have.repo.name)} image(s)"}


def count_images(ecr, name: str) -> int:
    """Distinct images (digests) in the repository."""
    digests = set()
    for page in ecr.get_paginator("list_images").paginate(repositoryName=name):
        digests.update(i["imageDigest"] for i in page.get("imageIds", []) if i.get("imageDigest"))
    return len(digests)


def diff(ctx: Context, want: list, have: Observed) -> list[Change]:
    repo_spec, policy_spec = want
    if have.repo is None:
        return [
            Change(NAME, Action.CREATE, REPOSITORY, repo_spec.name, fields=(
                FieldDiff("imageTagMutability", None, repo_spec.tag_mutability),
                FieldDiff("encryption", None, repo_spec.encryption),
            ), spec=repo_spec),
            Change(NAME, Action.CREATE, LIFECYCLE, policy_spec.name, fields=(
                FieldDiff("rule", None, summary(policy_spec.document)),
            ), spec=policy_spec),
        ]
    repo = have.repo
    changes = []
    encryption = (repo.raw.get("encryptionConfiguration") or {}).get("encryptionType", DEFAULT_ENCRYPTION)
    if encryption != repo_spec.encryption:
        changes.append(Change(
            NAME, Action.REPORT, REPOSITORY, repo.name, repo.id, (FieldDiff("encryption", encryption, repo_spec.encryption),),
            note=(
                "a repository's encryption is fixed at creation: it would take a new repository "
                f"(`awsprac destroy --env {ctx.cfg.env} --force` deletes this one with its {have.images} image(s), "
                "then `awsprac up` and push the images again); awsprac will not delete images by itself"
            ),
        ))
    fields = []
    mutability = repo.raw.get("imageTagMutability")
    if mutability != repo_spec.tag_mutability:
        fields.append(FieldDiff("imageTagMutability", mutability, repo_spec.tag_mutability))
    changes += update(ctx, NAME, repo, fields, repo_spec)
    if have.policy is None:
        changes.append(Change(NAME, Action.CREATE, LIFECYCLE, policy_spec.name, fields=(
            FieldDiff("rule", None, summary(policy_spec.document)),
        ), spec=policy_spec))
    elif have.policy != policy_spec.document:
        changes.append(Change(NAME, Action.UPDATE, LIFECYCLE, policy_spec.name, fields=(
            FieldDiff("rules", summary(have.policy), summary(policy_spec.document)),
        ), spec=policy_spec))
    return changes


def apply(ctx: Context, change: Change) -> None:
    ecr, spec = ctx.aws.client("ecr"), change.spec
    with applying(change):
        if change.action is Action.DELETE:
            _delete(ctx, ecr, change)
        elif change.kind == LIFECYCLE:
            ecr.put_lifecycle_policy(repositoryName=spec.name, lifecyclePolicyText=json.dumps(spec.document))
        elif change.action is Action.CREATE:
            try:
                ecr.create_repository(
                    repositoryName=spec.name,
                    imageTagMutability=spec.tag_mutability,
                    encryptionConfiguration={"encryptionType": spec.encryption},
                    tags=tags.as_list(ctx.tags(spec.name)),
                )
            except Exception as exc:
                # A create retried after an ambiguous failure meets the one it made: the re-observe
                # that follows every apply shows whether it is as wanted.
                if error_code(exc) != "RepositoryAlreadyExistsException":
                    raise
        else:
            repo = ctx.observed[NAME].repo
            add_missing_tags(ctx, repo.tags, repo.name, lambda tag_list: ecr.tag_resource(resourceArn=repo.raw["repositoryArn"], tags=tag_list))
            if repo.raw.get("imageTagMutability") != spec.tag_mutability:
                ecr.put_image_tag_mutability(repositoryName=repo.name, imageTagMutability=spec.tag_mutability)


def _delete(ctx: Context, ecr, change: Change) -> None:
    try:
        gone_is_fine(ecr.delete_repository, repositoryName=change.name, force=ctx.options.force)
    except Exception as exc:
        if error_code(exc) != "RepositoryNotEmptyException":
            raise
        raise AwsError(
            "deleting", resource(change), "RepositoryNotEmptyException", "the repository holds images (pushed since the plan was made)",
            f"`awsprac destroy --env {ctx.cfg.env} --force` deletes it with its images",
        ) from None


def teardown(ctx: Context, have: Observed) -> list[Change]:
    """The lifecycle policy goes with its repository. A repository holding images is kept unless --force."""
    changes = delete_change(NAME, have.repo, ctx)
    if not changes or changes[0].action is not Action.DELETE:
        return changes
    (change,) = changes
    with translate("counting", f"the images in {REPOSITORY} {change.name}"):
        images = count_images(ctx.aws.client("ecr"), change.name)
    if not images:
        return changes
    if ctx.options.force:
        return [Change(NAME, Action.DELETE, change.kind, change.name, change.id, note=f"with its {images} image(s) (--force)")]
    return [Change(
        NAME, Action.REPORT, change.kind, change.name, change.id,
        note=f"left alone: it still holds {images} image(s); `awsprac destroy --env {ctx.cfg.env} --force` deletes it with them",
    )]


def summary(policy: Any) -> str:
    """One line for a plan or status: our rule in words, anything else as compact JSON."""
    if isinstance(policy, dict):
        rules = policy.get("rules")
        if isinstance(rules, list) and len(rules) == 1 and isinstance(rules[0], dict):
            rule = rules[0]
            selection = rule.get("selection") or {}
            if (
                selection.get("tagStatus") == "any" and selection.get("countType") == "imageCountMoreThan"
                and (rule.get("action") or {}).get("type") == "expire"
            ):
                return f"priority {rule.get('rulePriority')}: {rule.get('description') or '(no description)'} (expire when more than {selection.get('countNumber')}, any tag)"
        return json.dumps(policy, sort_keys=True, separators=(",", ":"))
    return str(policy)


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# --- facets ---


def export_terraform(ctx: Context, out) -> None:
    from awsprac.engine.terraform import Block, Resource, jsonencode

    f = out.file("ecr.tf", "The container registry and its lifecycle policy (docs/reference.md section 7).")
    have: Observed = ctx.observed[NAME]
    if have.repo is None:
        out.missing(f"ECR repository {repository_name(ctx.cfg)}")
        return
    raw = have.repo.raw
    encryption = raw.get("encryptionConfiguration") or {"encryptionType": DEFAULT_ENCRYPTION}
    enc: dict = {"encryption_type": encryption["encryptionType"]}
    if encryption.get("kmsKey"):
        enc["kms_key"] = encryption["kmsKey"]
    repo = f.add(Resource("aws_ecr_repository", "main", {
        "name": have.repo.name,
        "image_tag_mutability": raw.get("imageTagMutability"),
        "encryption_configuration": Block(enc),
        "tags": out.tags(have.repo.name),
    }, have.repo.name))
    if have.policy is None:
        out.missing(f"lifecycle policy of {have.repo.name}")
        return
    policy = jsonencode(have.policy) if isinstance(have.policy, dict) else str(have.policy)
    f.add(Resource("aws_ecr_lifecycle_policy", "main", {"repository": repo.ref("name"), "policy": policy}, have.repo.name))


def cost_lines(ctx: Context, prices: dict, nat_gb: float) -> tuple[list, list[str]]:
    from awsprac.engine.prices import GIB, Line, money

    out: list[Line] = []
    repo = ctx.observed[NAME].repo
    if repo is not None:
        size = _image_bytes(ctx, repo.name) / GIB
        monthly = money(size * prices["ecr_gb_month"])
        out.append(Line("ECR repository", repo.name, repo.name, "exists", monthly, monthly, f"{size:.2f} GB x {prices['ecr_gb_month']}/GB-month"))
    return out, []


def _image_bytes(ctx: Context, repository: str) -> int:
    ecr = ctx.aws.client("ecr")
    with translate("looking up", f"the images of ECR repository {repository}"):
        pages = ecr.get_paginator("describe_images").paginate(repositoryName=repository)
        return sum(i.get("imageSizeInBytes", 0) for page in pages for i in page["imageDetails"])
