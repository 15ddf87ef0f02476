"""Error types that carry their exit code: 2 for bad input, 1 for a failed AWS operation."""

from __future__ import annotations


class AwspracError(Exception):
    """Base: a one-line message meant for the user, and the exit code to leave with."""

    exit_code = 1


class UsageError(AwspracError):
    """Bad input: config, CSV, names, flags. Nothing was changed."""

    exit_code = 2


class ConfigError(UsageError):
    def __init__(self, path: object, key: str | None, message: str):
        where = f"{path}" + (f": {key}" if key else "")
        super().__init__(f"{where}: {message}")


class AccountMismatch(UsageError):
    pass


class AwsError(AwspracError):
    """An AWS operation failed: what was being done, on which resource, AWS's code and message, what to do."""

    def __init__(self, doing: str, resource: str, code: str, message: str, hint: str = ""):
        self.doing, self.resource, self.code, self.aws_message, self.hint = doing, resource, code, message, hint
        text = f"{doing} {resource} failed: {code}: {message}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class AmbiguousResource(AwspracError):
    """More than one live resource carries a Name that must be unique."""

    def __init__(self, kind: str, name: str, ids: list[str]):
        super().__init__(
            f"{len(ids)} {kind}s are named {name!r} ({', '.join(sorted(ids))}): "
            f"awsprac will not guess; delete or rename all but one, then run again"
        )


class NotConverged(AwspracError):
    """After apply, observing again still shows changes: something outside awsprac fights it."""


class MissingPrerequisite(UsageError):
    pass


class Aborted(AwspracError):
    exit_code = 1


class EnvChanged(Aborted):
    """Observed again under the run lock, a step would do what the confirmed plan did not show."""
