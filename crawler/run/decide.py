"""What to do after one attempt (C9, C10), pure: retry after a delay, fail with a kind, keep
the last file (a 304 on a conditional refetch), or save. No event loop, no I/O.

| the attempt gave                          | decision                                   |
|-------------------------------------------|--------------------------------------------|
| an error kind or a status not 2xx/304*    | Retry(delay) while retryable, attempts     |
|                                           | left and the run not stopping, else Fail   |
| 304 with validators sent                  | Keep                                       |
| 2xx                                       | Save                                       |

(*) a 304 without validators sent is an ``http`` failure like any other unexpected status.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..http import retry
from ..outcome import Kind


@dataclass(frozen=True, slots=True)
class Retry:
    delay_s: float


@dataclass(frozen=True, slots=True)
class Fail:
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Keep:
    """A 304: the file of the last successful fetch stays."""


@dataclass(frozen=True, slots=True)
class Save:
    """A success: the body is saved."""


Decision = Retry | Fail | Keep | Save


def decide(
    *,
    kind: str | None,
    message: str | None,
    status: int | None,
    attempts: int,
    retries: int,
    stopping: bool,
    conditional_sent: bool,
    retry_after: str | None = None,
    rng: random.Random | None = None,
) -> Decision:
    """The decision after attempt number ``attempts`` (1 for the first) of a request allowed
    ``retries`` retries; ``retry_after`` is the response's Retry-After header."""
    not_modified = status == 304 and conditional_sent
    if kind is None and status is not None and not (200 <= status < 300 or not_modified):
        kind, message = Kind.HTTP, f"HTTP {status}"
    if kind is not None:
        if retry.should_retry(kind, status) and attempts <= retries and not stopping:
            return Retry(retry.backoff_s(attempts, retry.retry_after_s(retry_after), rng))
        return Fail(kind, message or "")
    if not_modified:
        return Keep()
    return Save()
