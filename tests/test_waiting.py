"""Bounded waits and retries, with a fake clock: nothing here really waits."""

import pytest

from awsprac.engine import waiting
from awsprac.engine.report import Reporter


def test_wait_for_polls_until_done_and_returns_the_last_status(clock):
    states = iter(["creating", "backing-up", "available"])

    def check():
        state = next(states)
        return state == "available", state

    assert waiting.wait_for(Reporter(), "db aws-practice-stg", check, timeout=600, interval=30) == "available"
    assert clock.pauses == [30, 30]


def test_a_wait_that_runs_out_says_the_state_and_that_a_rerun_resumes(clock):
    with pytest.raises(waiting.WaitTimeout) as err:
        waiting.wait_for(Reporter(), "db aws-practice-stg", lambda: (False, "creating"), timeout=120, interval=30)
    assert str(err.value) == "db aws-practice-stg: still creating after 2m00s; nothing was undone: run the same command again to keep waiting"


def test_retry_on_retries_only_transient_errors_with_backoff(clock):
    attempts = []

    def call():
        attempts.append(clock.now())
        if len(attempts) < 4:
            raise ConnectionError("profile not visible yet")
        return "i-123"

    assert waiting.retry_on(lambda e: isinstance(e, ConnectionError), call, budget=120) == "i-123"
    assert clock.pauses == [2, 4, 8]


def test_retry_on_gives_up_after_the_budget_with_the_last_error(clock):
    def call():
        raise ConnectionError("still not visible")

    with pytest.raises(ConnectionError, match="still not visible"):
        waiting.retry_on(lambda e: True, call, budget=30)
    assert sum(clock.pauses) <= 30


def test_retry_on_does_not_retry_other_errors(clock):
    def call():
        raise PermissionError("AccessDenied")

    with pytest.raises(PermissionError):
        waiting.retry_on(lambda e: isinstance(e, ConnectionError), call, budget=120)
    assert clock.pauses == []
