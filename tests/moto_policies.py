"""The AWS managed policies awsprac attaches, and moto made to load only those.

moto loads all ~1,600 when asked to, for each of six partitions, again after every reset: ~0.7 s per
in-process test that touches IAM, ~2 s of the test server's time per end-to-end test. Trimmed once for
the whole process (keep the list complete): attaching any other still fails, as it would on an account
without it.
"""

AWS_MANAGED_POLICIES = (
    "AmazonSSMManagedInstanceCore", "AdministratorAccess",
    "AmazonECSTaskExecutionRolePolicy", "AmazonS3ReadOnlyAccess", "CloudWatchLogsFullAccess",  # the app tier's
)


def load_only_the_managed_policies_awsprac_uses() -> None:
    import json

    import moto.iam.models as iam_models

    data = json.loads(iam_models.aws_managed_policies_data)
    if set(data) != set(AWS_MANAGED_POLICIES):
        iam_models.aws_managed_policies_data = json.dumps({name: data[name] for name in AWS_MANAGED_POLICIES})
