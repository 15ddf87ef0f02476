"""Step ecr against in-process moto: docs/reference.md section 7 exactly, what is sent, drift, adoption, teardown."""

import dataclasses
import json

import boto3
import botocore.awsrequest
import pytest

from awsprac.engine import runner, tags
from awsprac.engine.errors import AwsError
from awsprac.engine.plan import Action

from conftest import ENVS, build

REGION = "ap-northeast-1"
NAME = "aws-practice-stg"
OWNED = {"awsprac:project": "aws-practice", "awsprac:env": "stg"}
SPEC_POLICY = {"rules": [{
    "rulePriority": 1,
    "description": "keep only the latest 3 images",
    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 3},
    "action": {"type": "expire"},
}]}
ECR = ["ecr"]


def ecr():
    return boto3.client("ecr", region_name=REGION)


def up(ctx):
    return build(ctx, ECR)


def plan(ctx):
    return runner.plan(ctx, runner.resolve(ECR)).changes


def repository():
    (repo,) = ecr().describe_repositories(repositoryNames=[NAME])["repositories"]
    return repo


def policy():
    return json.loads(ecr().get_lifecycle_policy(repositoryName=NAME)["lifecyclePolicyText"])


def push(tag, repo=NAME):
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": f"sha256:{tag:0>64}"},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": f"sha256:{tag:f>64}"}],
    }
    ecr().put_image(repositoryName=repo, imageManifest=json.dumps(manifest), imageTag=tag)


def error(code, message, status=400):
    def respond(**kwargs):
        return botocore.awsrequest.AWSResponse("https://ecr", status, {}, None), {
            "Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status},
        }

    return respond


def hand_made(**settings):
    return ecr().create_repository(repositoryName=NAME, **settings)["repository"]


def test_up_builds_spec_section_7_exactly(ctx):
    planned = up(ctx)
    assert [(c.action, c.kind, c.name) for c in planned.changes] == [
        (Action.CREATE, "ECR repository", NAME),
        (Action.CREATE, "lifecycle policy", NAME),
    ]
    assert [c.describe() for c in planned.changes] == [
        "+ ECR repository aws-practice-stg  imageTagMutability = IMMUTABLE; encryption = AES256",
        "+ lifecycle policy aws-practice-stg  rule = priority 1: keep only the latest 3 images (expire when more than 3, any tag)",
    ]
    repo = repository()
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["encryptionConfiguration"] == {"encryptionType": "AES256"}
    assert tags.as_dict(ecr().list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]) == {"Name": NAME, **OWNED}
    assert policy() == SPEC_POLICY
    assert ctx.observed["ecr"].outputs() == {"ecr_repository_uri": repo["repositoryUri"], "ecr_repository_arn": repo["repositoryArn"]}


def test_what_is_sent_tags_at_creation_and_the_policy_as_json(make_ctx):
    sent = []
    ctx = make_ctx(hooks=[("provide-client-params.ecr.*", lambda params, model, **kw: sent.append((model.name, params)))])
    up(ctx)
    writes = [(name, params) for name, params in sent if not name.startswith(("Describe", "Get", "List"))]
    assert [name for name, _ in writes] == ["CreateRepository", "PutLifecyclePolicy"]  # no TagResource after the create
    create, put = writes[0][1], writes[1][1]
    assert create == {
        "repositoryName": NAME, "imageTagMutability": "IMMUTABLE", "encryptionConfiguration": {"encryptionType": "AES256"},
        "tags": [{"Key": "Name", "Value": NAME}, {"Key": "awsprac:project", "Value": "aws-practice"}, {"Key": "awsprac:env", "Value": "stg"}],
    }
    assert put["repositoryName"] == NAME and json.loads(put["lifecyclePolicyText"]) == SPEC_POLICY


def test_second_run_plans_nothing_and_writes_nothing(ctx, make_ctx, calls):
    up(ctx)
    again = make_ctx(hooks=[("before-call.*.*", calls)])
    planned = runner.plan(again, runner.resolve(ECR))
    assert planned.changes == []
    assert runner.apply(again, runner.resolve(ECR), planned).applied == []
    assert calls.writes == [] and "DescribeRepositories" in calls.names


def test_keep_images_comes_from_the_env_file(cfg, make_ctx):
    five = dataclasses.replace(cfg, ecr=dataclasses.replace(cfg.ecr, keep_images=5))
    up(make_ctx(config=five))
    (rule,) = policy()["rules"]
    assert rule["description"] == "keep only the latest 5 images" and rule["selection"]["countNumber"] == 5
    # and going back to the default is an update of the policy alone
    (change,) = plan(make_ctx())
    assert (change.action, change.kind) == (Action.UPDATE, "lifecycle policy")
    assert str(change.fields[0]).startswith("rules: priority 1: keep only the latest 5 images (expire when more than 5")
    up(make_ctx())
    assert policy() == SPEC_POLICY


def test_the_policy_is_compared_parsed_not_as_text(ctx, make_ctx, calls):
    up(ctx)
    # The same policy, written by hand with other spacing and key order.
    text = '{ "rules" : [ { "action": {"type":"expire"}, "selection": {"countNumber": 3, "countType": "imageCountMoreThan", "tagStatus": "any"},\n "description": "keep only the latest 3 images", "rulePriority": 1 } ] }'
    ecr().put_lifecycle_policy(repositoryName=NAME, lifecyclePolicyText=text)
    again = make_ctx(hooks=[("before-call.*.*", calls)])
    assert plan(again) == []
    assert "PutLifecyclePolicy" not in calls.names


def test_a_changed_or_deleted_policy_is_written_again(ctx, make_ctx):
    up(ctx)
    other = {"rules": [{"rulePriority": 1, "description": "expire untagged", "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}}]}
    ecr().put_lifecycle_policy(repositoryName=NAME, lifecyclePolicyText=json.dumps(other))
    (change,) = plan(make_ctx())
    assert change.action is Action.UPDATE and '"tagStatus":"untagged"' in change.describe()
    up(make_ctx())
    assert policy() == SPEC_POLICY
    ecr().delete_lifecycle_policy(repositoryName=NAME)
    (change,) = plan(make_ctx())
    assert (change.action, change.kind) == (Action.CREATE, "lifecycle policy")
    up(make_ctx())
    assert policy() == SPEC_POLICY and plan(make_ctx()) == []


def test_tag_mutability_drift_is_reconciled(ctx, make_ctx):
    up(ctx)
    ecr().put_image_tag_mutability(repositoryName=NAME, imageTagMutability="MUTABLE")
    (change,) = plan(make_ctx())
    assert change.action is Action.UPDATE and str(change.fields[0]) == "imageTagMutability: MUTABLE -> IMMUTABLE"
    sent = []
    up(make_ctx(hooks=[("provide-client-params.ecr.PutImageTagMutability", lambda params, **kw: sent.append(params))]))
    assert sent == [{"repositoryName": NAME, "imageTagMutability": "IMMUTABLE"}]
    assert repository()["imageTagMutability"] == "IMMUTABLE" and plan(make_ctx()) == []


def test_other_encryption_is_reported_never_fixed_by_deleting(make_ctx, calls):
    arn = hand_made(imageTagMutability="IMMUTABLE", encryptionConfiguration={"encryptionType": "KMS"}, tags=[{"Key": "Name", "Value": NAME}, *tags.as_list(OWNED)])["repositoryArn"]
    push("a1")
    ctx = make_ctx(hooks=[("before-call.*.*", calls)])
    changes = plan(ctx)
    (report,) = [c for c in changes if c.action is Action.REPORT]
    assert str(report.fields[0]) == "encryption: KMS -> AES256"
    assert "fixed at creation" in report.note and "with its 1 image(s)" in report.note and "will not delete images" in report.note
    assert runner.apply(ctx, runner.resolve(ECR), runner.Plan(changes)).ok
    assert "DeleteRepository" not in calls.names and "CreateRepository" not in calls.names
    assert repository()["repositoryArn"] == arn and len(ecr().list_images(repositoryName=NAME)["imageIds"]) == 1


def test_a_hand_made_repository_is_adopted_not_duplicated(ctx, make_ctx):
    arn = hand_made(imageTagMutability="MUTABLE")["repositoryArn"]
    changes = plan(ctx)
    assert [(c.action, c.kind) for c in changes] == [(Action.ADOPT, "ECR repository"), (Action.CREATE, "lifecycle policy")]
    assert "tags: Name=(none), awsprac:project=(none), awsprac:env=(none)" in changes[0].describe()
    assert "imageTagMutability: MUTABLE -> IMMUTABLE" in changes[0].describe()
    up(make_ctx())
    repo = repository()
    assert repo["repositoryArn"] == arn and repo["imageTagMutability"] == "IMMUTABLE"
    assert tags.as_dict(ecr().list_tags_for_resource(resourceArn=arn)["tags"]) == {"Name": NAME, **OWNED}
    assert policy() == SPEC_POLICY and plan(make_ctx()) == []


def test_a_create_that_meets_the_one_a_retry_made_is_success(make_ctx):
    def first_attempt_made_it(params, **kwargs):
        ecr().create_repository(repositoryName=NAME, imageTagMutability="IMMUTABLE", tags=[{"Key": "Name", "Value": NAME}, *tags.as_list(OWNED)])
        return error("RepositoryAlreadyExistsException", f"The repository with name '{NAME}' already exists")()

    ctx = make_ctx(hooks=[("before-call.ecr.CreateRepository", first_attempt_made_it)])
    up(ctx)
    assert len(ecr().describe_repositories()["repositories"]) == 1 and policy() == SPEC_POLICY


def test_teardown_deletes_an_empty_owned_repository_and_gone_is_fine(ctx, make_ctx):
    up(ctx)
    planned = runner.teardown_plan(make_ctx(), runner.resolve(ECR))
    assert [(c.action, c.kind, c.name) for c in planned.changes] == [(Action.DELETE, "ECR repository", NAME)]
    ecr().delete_repository(repositoryName=NAME)  # gone before the destroy gets to it
    assert runner.destroy(make_ctx(), runner.resolve(ECR), planned).ok
    assert runner.teardown_plan(make_ctx(), runner.resolve(ECR)).changes == []


def test_teardown_refuses_a_repository_with_images_unless_forced(ctx, make_ctx):
    up(ctx)
    push("a1")
    push("b2")
    planned = runner.teardown_plan(make_ctx(), runner.resolve(ECR))
    (change,) = planned.changes
    assert change.action is Action.REPORT
    assert change.note == "left alone: it still holds 2 image(s); `awsprac destroy --env stg --force` deletes it with them"
    runner.destroy(make_ctx(), runner.resolve(ECR), planned)
    assert repository()

    sent = []
    forced = make_ctx(hooks=[("provide-client-params.ecr.DeleteRepository", lambda params, **kw: sent.append(params))], force=True)
    planned = runner.teardown_plan(forced, runner.resolve(ECR))
    (change,) = planned.changes
    assert change.action is Action.DELETE and change.note == "with its 2 image(s) (--force)"
    assert runner.destroy(forced, runner.resolve(ECR), planned).ok
    assert sent == [{"repositoryName": NAME, "force": True}]
    assert ecr().describe_repositories()["repositories"] == []


def test_images_pushed_after_the_plan_make_a_clear_error(ctx, make_ctx):
    up(ctx)
    ctx2 = make_ctx(hooks=[("before-call.ecr.DeleteRepository", error("RepositoryNotEmptyException", "cannot be deleted because it still contains images"))])
    planned = runner.teardown_plan(ctx2, runner.resolve(ECR))
    outcome = runner.destroy(ctx2, runner.resolve(ECR), planned)
    exc = outcome.failed["ecr"]
    assert isinstance(exc, AwsError)
    assert str(exc).startswith("deleting ECR repository aws-practice-stg (")
    assert "RepositoryNotEmptyException" in str(exc) and "`awsprac destroy --env stg --force` deletes it with its images" in str(exc)


def test_teardown_leaves_an_unowned_repository(ctx):
    hand_made()
    push("a1")
    (change,) = runner.teardown_plan(ctx, runner.resolve(ECR)).changes
    assert change.action is Action.REPORT and "left alone: not tagged awsprac:env=stg" in change.note


def test_status_shows_the_repository_and_its_policy(ctx, make_ctx):
    up(ctx)
    push("a1")
    rows = runner.status(make_ctx(), runner.resolve(ECR))
    assert [(r.kind, r.name, r.sync) for r in rows] == [("ECR repository", NAME, "in sync"), ("lifecycle policy", NAME, "in sync")]
    assert rows[0].id == repository()["repositoryUri"] and rows[0].state == "1 image(s)"
    assert rows[1].state.startswith("priority 1: keep only the latest 3 images")


def test_destroy_from_the_command_line_says_how_many_images(capsys, mocked, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per plan row
    from awsprac.commands.cli import main

    def run(*args):
        with pytest.raises(SystemExit) as exit:
            main(["--envs-dir", str(ENVS), *args])
            raise SystemExit(0)
        out, err = capsys.readouterr()
        return exit.value.code or 0, out, err

    assert run("step", "ecr", "--env", "stg", "--yes")[0] == 0
    push("a1")
    code, out, err = run("destroy", "--env", "stg", "--yes")
    assert code == 0 and "left alone: it still holds 1 image(s)" in " ".join(out.split())  # table cells fold
    assert "nothing to delete: 1 resource(s) left alone" in err
    assert repository()
    code, out, err = run("destroy", "--env", "stg", "--yes", "--force")
    assert code == 0 and "deleted ECR repository aws-practice-stg" in err
    assert ecr().describe_repositories()["repositories"] == []
