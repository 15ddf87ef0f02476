"""`awsprac app exec`: a shell in a running task of the API's service (ECS Exec), as `aws ecs execute-command` does.

ECS answers ExecuteCommand with a session; the Session Manager plugin carries it. The plugin is looked
for before anything is sent to AWS, so without it nothing is opened that no one would close. The plugin
gets the session the way the AWS CLI gives it (awscli/customizations/ecs/executecommand.py): in the
environment variable AWS_SSM_START_SESSION_RESPONSE (plugins after 1.2.497.0), so the session token
never shows in the process list; older plugins take it as an argument. Ctrl-C and friends belong to the
remote shell while it runs: this process ignores them until the plugin exits.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from contextlib import contextmanager

from awsprac.engine.errors import AwspracError, UsageError

PLUGIN = "session-manager-plugin"
INSTALL = "https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html"
SESSION_VARIABLE = "AWS_SSM_START_SESSION_RESPONSE"
LAST_VERSION_WITHOUT_VARIABLE = (1, 2, 497, 0)
COMMAND = "/bin/sh"


def shell(app) -> None:
    from awsprac.engine.aws import error_code, translate
    from awsprac.steps.app.deploy import CONTAINER, find_service, names

    plugin = shutil.which(PLUGIN)
    if plugin is None:
        raise UsageError(f"{PLUGIN} is not installed or not on PATH: `awsprac app exec` needs it (install: {INSTALL}); nothing was sent")
    ctx = app.context()
    n, env = names(app.cfg), app.cfg.env
    service = find_service(ctx)
    task = running_task(ctx, service)
    version = plugin_version(plugin)
    ecs = ctx.aws.client("ecs")
    task_id = task["taskArn"].rpartition("/")[2]
    with translate("opening", f"an ECS Exec session in task {task_id} ({CONTAINER})"):
        try:
            answer = ecs.execute_command(cluster=n.cluster, task=task["taskArn"], container=CONTAINER, interactive=True, command=COMMAND)
        except Exception as exc:
            if error_code(exc) != "TargetNotConnectedException":
                raise
            raise AwspracError(
                f"task {task_id} does not accept ECS Exec (TargetNotConnectedException): its task role needs the "
                f"ssmmessages permissions and the service enableExecuteCommand; `awsprac up --env {env}` sets both, "
                f"for tasks started after it (`awsprac app deploy --env {env}` of a new tag replaces them)"
            ) from None
    runtime_id = next(c.get("runtimeId", "") for c in task["containers"] if c["name"] == CONTAINER)
    target = f"ecs:{answer['clusterArn'].rpartition('/')[2]}_{answer['taskArn'].rpartition('/')[2]}_{runtime_id}"
    session = json.dumps(answer["session"])
    environment = os.environ.copy()
    if version > LAST_VERSION_WITHOUT_VARIABLE:
        environment[SESSION_VARIABLE] = session
        session = SESSION_VARIABLE
    args = [plugin, session, ecs.meta.region_name, "StartSession", ctx.aws.profile or "", json.dumps({"Target": target}), ecs.meta.endpoint_url]
    app.report.info(f"shell in {n.service} task {task_id} ({CONTAINER}); `exit` ends it")
    with user_signals_ignored():
        code = subprocess.call(args, env=environment)
    if code != 0:
        raise AwspracError(f"{PLUGIN} ended with exit code {code}")


def running_task(ctx, service: dict) -> dict:
    """A RUNNING task of the service whose `api` container runs and accepts ECS Exec; exit 2 when none does."""
    from awsprac.engine.aws import translate
    from awsprac.steps.app.deploy import CONTAINER, names

    n, env = names(ctx.cfg), ctx.cfg.env
    ecs = ctx.aws.client("ecs")
    with translate("reading", f"the running tasks of ECS service {n.service}"):
        arns = ecs.list_tasks(cluster=n.cluster, serviceName=n.service, desiredStatus="RUNNING")["taskArns"][:100]
        tasks = ecs.describe_tasks(cluster=n.cluster, tasks=arns)["tasks"] if arns else []
    running = [
        t for t in tasks
        if t.get("lastStatus") == "RUNNING"
        and any(c["name"] == CONTAINER and c.get("lastStatus") == "RUNNING" for c in t.get("containers", []))
    ]
    if not running:
        raise UsageError(
            f"no running task of ECS service {n.service} (desired {service.get('desiredCount', 0)}, "
            f"running {service.get('runningCount', 0)}): `awsprac app deploy --env {env}` starts one"
        )
    ready = [t for t in running if t.get("enableExecuteCommand", True)]
    if not ready:
        raise UsageError(
            f"the running tasks of {n.service} were started without ECS Exec: `awsprac up --env {env}` turns it on "
            f"for the service, for the tasks started after it"
        )
    return ready[0]


def plugin_version(plugin: str) -> tuple[int, ...]:
    """The plugin's version as numbers; () when it says something else (then the session goes as an argument)."""
    try:
        said = subprocess.run([plugin, "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    except OSError as exc:
        raise UsageError(f"{plugin} cannot be run ({exc.strerror}): reinstall it ({INSTALL})") from None
    said = re.sub(r"\s+", "", said)
    return tuple(int(p) for p in said.split(".")) if re.fullmatch(r"\d+(\.\d+){0,3}", said) else ()


@contextmanager
def user_signals_ignored():
    """Ctrl-C (and Ctrl-\\, Ctrl-Z) go to the plugin and the remote shell, not to this process."""
    names = ("SIGINT", "SIGQUIT", "SIGTSTP")
    saved = {}
    for name in names:
        number = getattr(signal, name, None)
        if number is not None:
            saved[number] = signal.signal(number, signal.SIG_IGN)
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
