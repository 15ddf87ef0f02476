"""`awsprac completion bash|zsh|fish`: click's completion scripts, and the answer to the shell's
questions (commands, options, env names from the envs folder, step names)."""

from __future__ import annotations

import os
import sys

import click

COMPLETE_VAR = "_AWSPRAC_COMPLETE"


def script(cli: click.Command, shell: str) -> str:
    from click.shell_completion import get_completion_class

    return get_completion_class(shell)(cli, {}, "awsprac", COMPLETE_VAR).source()


def answer_if_asked(cli: click.Command) -> None:
    """The shell asks for completions (through the script `awsprac completion` printed): answer, exit."""
    if os.environ.get(COMPLETE_VAR):
        from click.shell_completion import shell_complete

        sys.exit(shell_complete(cli, {}, "awsprac", COMPLETE_VAR, os.environ[COMPLETE_VAR]))
