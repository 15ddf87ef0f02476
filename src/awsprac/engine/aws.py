"""The one place boto3 sessions and clients are made.

Profile: --profile > AWS_PROFILE > the env file's profile (if it exists) > default chain.
Region: --region > env file. Endpoint: AWS_ENDPOINT_URL, as boto3 itself honours it.
Retries: botocore's `standard` mode with a generous total attempt count.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

import boto3
import botocore.config
import botocore.exceptions
import botocore.session

from awsprac.engine.errors import AwsError, UsageError

TOTAL_MAX_ATTEMPTS = 10

# botocore at DEBUG prints whole request and response bodies: passwords, secret values, ECR tokens.
QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")


def quiet_sdk_loggers() -> None:
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        # a later `logging.basicConfig(level=DEBUG)` must not lower them either
        logger.setLevel = lambda level, _logger=logger: logging.Logger.setLevel(_logger, max(level, logging.WARNING))  # type: ignore[method-assign]


# What an env's steps talk to.
SERVICES = ("sts", "ec2", "iam", "ssm", "secretsmanager", "rds", "ecr", "scheduler")
APP_SERVICES = ("ecs", "elbv2", "logs")  # the app tier's, when it is on


@dataclass
class Aws:
    """Clients for one env: made once per service, reused (they are thread-safe; sessions are not)."""

    session: boto3.Session
    region: str
    profile: str | None
    _clients: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, service: str):
        with self._lock:
            if service not in self._clients:
                client = self.session.client(service, region_name=self.region, config=CLIENT_CONFIG)
                client.meta.events.register("before-parameter-build", _remember_action)
                self._clients[service] = client
            return self._clients[service]

    @property
    def ec2(self):
        return self.client("ec2")

    def prepare(self, services=SERVICES) -> None:
        """Make the clients before the first request: making one is CPU work (~15 ms), better done
        before any round trip than between two of them on a run's critical path."""
        for service in services:
            self.client(service)

    def register(self, event: str, handler) -> None:
        """Hook botocore events (tests count calls and inject AWS's real errors this way)."""
        if self._clients:
            raise RuntimeError("register hooks before the first client is made: clients copy the emitter")
        self.session.events.register(event, handler)


CLIENT_CONFIG = botocore.config.Config(
    retries={"mode": "standard", "total_max_attempts": TOTAL_MAX_ATTEMPTS},
    connect_timeout=10,
    read_timeout=60,
)


def _botocore_session() -> botocore.session.Session:
    """A new session sharing the process's one data loader (known.sdk_session); the profile is chosen by
    resolve_profile and passed explicitly, botocore does not read AWS_PROFILE itself."""
    from awsprac.known import sdk_session

    return sdk_session()


def resolve_profile(cli_profile: str | None, env_profile: str) -> tuple[str | None, str]:
    """The profile to use (None: the default credential chain) and where that choice came from."""
    if cli_profile:
        return cli_profile, "--profile"
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):  # the SDKs' own variables, read here only
        if os.environ.get(variable):
            return os.environ[variable], variable
    if env_profile and env_profile in botocore.session.Session().available_profiles:
        return env_profile, "the env file"
    return None, "the default credential chain"


def make(cli_profile: str | None, env_profile: str, region: str) -> tuple[Aws, str | None]:
    """Returns the clients' factory, and a warning to show when environment keys beat the profile."""
    quiet_sdk_loggers()
    profile, source = resolve_profile(cli_profile, env_profile)
    warning = None
    if profile and source != "--profile" and os.environ.get("AWS_ACCESS_KEY_ID"):
        # The standard chain puts environment keys before any profile; only an explicit --profile beats them.
        warning = f"AWS_ACCESS_KEY_ID in the environment overrides profile {profile!r} (from {source}); unset it or pass --profile"
        profile = None
    botocore_session = _botocore_session()
    if profile and profile not in botocore_session.available_profiles:
        raise UsageError(f"AWS profile {profile!r} (from {source}) not found in ~/.aws/config or ~/.aws/credentials; run `awsprac profile import`")
    session = boto3.Session(botocore_session=botocore_session, profile_name=profile, region_name=region)
    return Aws(session=session, region=region, profile=profile), warning


# Error codes that mean "it is already gone": a delete that meets one has succeeded.
NOT_FOUND_CODES = frozenset({
    "InvalidVpcID.NotFound", "InvalidSubnetID.NotFound", "InvalidInternetGatewayID.NotFound",
    "InvalidGroup.NotFound", "InvalidRouteTableID.NotFound", "InvalidAssociationID.NotFound",
    "InvalidInstanceID.NotFound", "InvalidAllocationID.NotFound", "NatGatewayNotFound",
    "Gateway.NotAttached", "InvalidNetworkInterfaceID.NotFound", "InvalidAMIID.NotFound",
    "DBInstanceNotFound", "DBSubnetGroupNotFoundFault", "DBParameterGroupNotFound",
    "ResourceNotFoundException", "RepositoryNotFoundException", "NoSuchEntity", "ParameterNotFound",
    "LoadBalancerNotFound", "TargetGroupNotFound", "ListenerNotFound", "ClusterNotFoundException",
    "ServiceNotFoundException",
})

HINTS = {
    "AuthFailure": "the access key is wrong or inactive; check `awsprac profile check`",
    "InvalidClientTokenId": "the access key is wrong or inactive; check `awsprac profile check`",
    "SignatureDoesNotMatch": "the secret key does not match the access key; import the key again",
    "ExpiredToken": "the session credentials expired; log in again",
    "RequestLimitExceeded": "AWS throttled the requests past the retry budget; run the same command again in a minute",
    "Throttling": "AWS throttled the requests past the retry budget; run the same command again in a minute",
    "VpcLimitExceeded": "the region's VPC quota is reached; delete an unused VPC or ask for a higher quota",
    "DependencyViolation": "something still uses it; `awsprac status` shows what is left, and the same command can be run again",
}


ACCESS_DENIED = frozenset({"UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "UnauthorizedAccess"})
_last = threading.local()


def _remember_action(model, **kwargs) -> None:
    """The IAM action of the call this thread is making, so a refusal can name it exactly."""
    _last.action = f"{model.service_model.signing_name}:{model.name}"


def hint_for(code: str) -> str:
    if code in ACCESS_DENIED:
        action = getattr(_last, "action", "")
        needed = f"permission {action}" if action else "this permission"
        return f"the credentials lack {needed}; the CLI user needs AdministratorAccess (docs/reference.md section 1)"
    return HINTS.get(code, "")


def error_code(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code", "")
    if isinstance(exc, botocore.exceptions.WaiterError):  # a waiter stopped on an error answer
        return (exc.last_response or {}).get("Error", {}).get("Code", "")
    return ""


def is_not_found(exc: Exception) -> bool:
    return error_code(exc) in NOT_FOUND_CODES


class translate:
    """`with translate("creating", "vpc aws-practice-stg"):` turns AWS failures into one clear AwsError.

    Messages come from AWS's error response, which never echoes request bodies; botocore's
    parameter validation does echo values, so it is reported by field name only.
    """

    def __init__(self, doing: str, resource: str):
        self.doing, self.resource = doing, resource

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        if isinstance(exc, botocore.exceptions.ClientError):
            code = error_code(exc)
            message = exc.response.get("Error", {}).get("Message", "") or str(exc)
            raise AwsError(self.doing, self.resource, code, message, hint_for(code)) from exc
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            raise UsageError(NO_CREDENTIALS) from None
        if isinstance(exc, botocore.exceptions.WaiterError):
            code = error_code(exc) or "WaiterError"
            raise AwsError(self.doing, self.resource, code, exc.kwargs.get("reason", str(exc)), "run the same command again: it picks up where this stopped") from exc
        if isinstance(exc, botocore.exceptions.ParamValidationError):
            raise AwsError(self.doing, self.resource, "ParamValidationError", "a request parameter was invalid (value withheld)", "this is a bug in awsprac; please report it") from None
        if isinstance(exc, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError)):
            raise AwsError(self.doing, self.resource, type(exc).__name__, str(exc), "check the network (or AWS_ENDPOINT_URL), then run the same command again") from None
        return False


NO_CREDENTIALS = (
    "no AWS credentials found: run `awsprac profile import --env <env> --csv <file>`, "
    "pass --profile, or try it without an account: --sandbox"
)
