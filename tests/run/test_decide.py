"""What to do after one attempt (C9, C10): the pure decision table of crawler/run/decide.py.
Delays come from a seeded random.Random, so every case is deterministic."""

from __future__ import annotations

import random

import pytest

from crawler.http.retry import BACKOFF_BASE_S, BACKOFF_CAP_S
from crawler.run.decide import Fail, Keep, Retry, Save, decide


def attempt(
    *,
    kind: str | None = None,
    message: str | None = None,
    status: int | None = None,
    attempts: int = 1,
    retries: int = 3,
    stopping: bool = False,
    conditional_sent: bool = False,
    retry_after: str | None = None,
    seed: int = 1,
):
    return decide(
        kind=kind,
        message=message,
        status=status,
        attempts=attempts,
        retries=retries,
        stopping=stopping,
        conditional_sent=conditional_sent,
        retry_after=retry_after,
        rng=random.Random(seed),
    )


def ceiling(attempts: int) -> float:
    """The most full-jitter backoff waits before retry number ``attempts``."""
    return float(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempts - 1)))


@pytest.mark.parametrize("status", [200, 201, 204, 206, 299])
def test_a_2xx_is_saved(status):
    assert attempt(status=status) == Save()


@pytest.mark.parametrize("conditional_sent", [False, True])
def test_a_200_is_saved_whether_or_not_validators_were_sent(conditional_sent):
    assert attempt(status=200, conditional_sent=conditional_sent) == Save()


def test_a_304_to_a_conditional_request_keeps_the_last_file():
    assert attempt(status=304, conditional_sent=True) == Keep()
    assert attempt(status=304, conditional_sent=True, attempts=4, retries=3) == Keep()


@pytest.mark.parametrize(("attempts", "retries"), [(1, 3), (4, 3), (1, 0)])
def test_a_304_without_validators_is_an_http_failure(attempts, retries):
    """A 304 nobody asked for is not retried: there is no file to keep."""
    assert attempt(status=304, attempts=attempts, retries=retries) == Fail("http", "HTTP 304")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 501, 301, 100])
def test_a_status_not_worth_retrying_fails_at_once(status):
    assert attempt(status=status, attempts=1, retries=5) == Fail("http", f"HTTP {status}")


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
@pytest.mark.parametrize("attempts", [1, 2, 3])
def test_a_retryable_status_is_retried_while_attempts_are_left(status, attempts):
    for seed in range(20):
        decision = attempt(status=status, attempts=attempts, retries=3, seed=seed)
        assert isinstance(decision, Retry)
        assert 0 <= decision.delay_s <= ceiling(attempts) <= BACKOFF_CAP_S


def test_the_backoff_never_passes_the_cap():
    for seed in range(20):
        decision = attempt(status=503, attempts=50, retries=100, seed=seed)
        assert isinstance(decision, Retry)
        assert 0 <= decision.delay_s <= BACKOFF_CAP_S


def test_the_backoff_is_jittered():
    delays = {attempt(status=503, attempts=3, seed=seed).delay_s for seed in range(20)}
    assert len(delays) > 10


def test_the_same_seed_gives_the_same_delay():
    assert attempt(status=503, seed=7) == attempt(status=503, seed=7)


@pytest.mark.parametrize(("attempts", "retries"), [(4, 3), (2, 1), (1, 0)])
def test_a_retryable_status_fails_once_the_retries_are_used(attempts, retries):
    assert attempt(status=503, attempts=attempts, retries=retries) == Fail("http", "HTTP 503")


@pytest.mark.parametrize("kind", ["timeout", "connect", "protocol"])
def test_transient_error_kinds_are_retried(kind):
    decision = attempt(kind=kind, message="boom", attempts=1, retries=2)
    assert isinstance(decision, Retry)
    assert 0 <= decision.delay_s <= ceiling(1)
    assert attempt(kind=kind, message="boom", attempts=3, retries=2) == Fail(kind, "boom")


@pytest.mark.parametrize("kind", ["tls", "too_large", "redirects", "invalid_json", "decode"])
def test_lasting_error_kinds_fail_at_once(kind):
    assert attempt(kind=kind, message="boom", attempts=1, retries=5) == Fail(kind, "boom")


def test_an_error_kind_wins_over_a_2xx_status():
    """A body that broke after a 200 header is a failure, not a save."""
    assert attempt(kind="too_large", message="over", status=200) == Fail("too_large", "over")
    assert isinstance(attempt(kind="protocol", message="cut", status=200), Retry)


def test_a_failure_without_a_message_has_an_empty_message():
    assert attempt(kind="tls", message=None) == Fail("tls", "")


@pytest.mark.parametrize(
    ("kind", "status"), [(None, 503), (None, 429), ("timeout", None), ("connect", None)]
)
def test_a_stopping_run_never_retries(kind, status):
    decision = attempt(kind=kind, message="m", status=status, attempts=1, retries=5, stopping=True)
    assert isinstance(decision, Fail)
    assert decision.kind == (kind or "http")


def test_a_stopping_run_still_saves_and_keeps():
    assert attempt(status=200, stopping=True) == Save()
    assert attempt(status=304, conditional_sent=True, stopping=True) == Keep()


def test_retry_after_seconds_is_the_least_wait():
    for seed in range(20):
        decision = attempt(status=503, retry_after="7", seed=seed)
        assert isinstance(decision, Retry)
        assert decision.delay_s >= 7


def test_retry_after_is_capped():
    decision = attempt(status=429, retry_after="999999")
    assert isinstance(decision, Retry)
    assert 7 < decision.delay_s <= 120


@pytest.mark.parametrize("retry_after", ["soon", "", "-3", "²"])
def test_an_unreadable_retry_after_falls_back_to_backoff(retry_after):
    decision = attempt(status=503, retry_after=retry_after, attempts=1)
    assert isinstance(decision, Retry)
    assert 0 <= decision.delay_s <= ceiling(1)


def test_retry_after_does_not_make_a_lasting_failure_retryable():
    assert attempt(status=404, retry_after="1") == Fail("http", "HTTP 404")
