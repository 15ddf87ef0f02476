"""`awsprac app deploy | url | logs | exec`: the API's service, once `up` has built the tier. Thin: each command
parses its flags and calls the module that does the work (imported only when the command runs)."""

from __future__ import annotations

import click

from awsprac.engine.options import ENV_OPTION, Group, app_for, global_options


@click.group("app", cls=Group)
@global_options
def group() -> None:
    """The API on ECS Fargate behind the load balancer: deploy an image, its URL, its logs, a shell in it.

    \b
      awsprac app deploy --env stg [--tag T]       roll the service to an image (default: the recorded tag)
      awsprac app url --env stg                    the load balancer's address
      awsprac app logs --env stg [--since 10m] [--follow]
      awsprac app exec --env stg                   a shell in a running task (needs session-manager-plugin)
    """


@group.command("deploy")
@ENV_OPTION
@click.option("--tag", default=None, metavar="TAG", help="Image tag in the env's ECR repository.  [default: the tag recorded by `image release --record-tag`]")
@global_options
def deploy(env: str, tag: str | None) -> None:
    """Register a task definition revision with the image, update the service, and watch until the new tasks run.

    Exit 1 when the rollout fails (the circuit breaker rolls back): the service's events and the stopped tasks'
    reasons are shown. Deploying the tag that already runs changes nothing.
    """
    from awsprac.steps.app import deploy as deploying

    deploying.deploy(app_for(env), tag)


@group.command("url")
@ENV_OPTION
@global_options
def url(env: str) -> None:
    """Print the API's address: http(s):// and the load balancer's DNS name."""
    from awsprac.steps.app import deploy as deploying

    deploying.url(app_for(env))


def _since(ctx: click.Context, param: click.Parameter, value: str) -> int:
    from awsprac.engine.errors import UsageError
    from awsprac.steps.app import logs

    try:
        return logs.parse_since(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc).partition(": ")[2], ctx, param) from None


@group.command("logs")
@ENV_OPTION
@click.option("--since", default="10m", show_default=True, callback=_since, metavar="AGE", help="How far back: 30s, 10m, 1h, 2d, 1w.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@global_options
def logs(env: str, since: int, follow: bool) -> None:
    """The API containers' output, from the CloudWatch Logs group /ecs/{project}-backend-ENV."""
    from awsprac.steps.app import logs as reading

    reading.show(app_for(env), since, follow)


@group.command("exec")
@ENV_OPTION
@global_options
def exec_(env: str) -> None:
    """Open a shell (/bin/sh) in the `api` container of a running task (ECS Exec, via session-manager-plugin)."""
    from awsprac.steps.app import exec as executing

    executing.shell(app_for(env))
