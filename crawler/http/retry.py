"""Retry policy (C9), pure: given what an attempt produced, wait how long or give up.

Backoff is exponential with full jitter (AWS Architecture Blog, "Exponential Backoff And
Jitter"): a uniform wait in [0, min(CAP, BASE * 2**n)]. A Retry-After header (RFC 9110
10.2.3, seconds or an HTTP date) is the least wait, capped at RETRY_AFTER_CAP_S.
"""

from __future__ import annotations

import random
import time
from datetime import UTC
from email.utils import parsedate_to_datetime

from ..outcome import RETRY_STATUSES, is_retryable

__all__ = ["RETRY_STATUSES", "backoff_s", "retry_after_s", "should_retry"]

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
RETRY_AFTER_CAP_S = 120.0
_MAX_EXPONENT = 32  # 0.5 * 2**32 s is far past any cap


def should_retry(kind: str, status: int | None) -> bool:
    """Whether a failure of this kind (and status, for ``http``) is worth another attempt;
    the table is outcome.KINDS."""
    return is_retryable(kind, status)


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for, capped; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # isdigit alone also takes "²" and "٣"
        return min(float(value), RETRY_AFTER_CAP_S)
    try:
        date = parsedate_to_datetime(value)
        if date.tzinfo is None:
            # An HTTP-date is always GMT, also in the asctime form that names no zone.
            date = date.replace(tzinfo=UTC)
        when = date.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    wait = when - (time.time() if now is None else now)
    return min(max(wait, 0.0), RETRY_AFTER_CAP_S)


def backoff_s(
    retry_number: int, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """The wait before retry ``retry_number`` (1 for the first retry)."""
    # The exponent stops growing once the cap is reached: 2**n past 1024 is not a float.
    exponent = min(max(retry_number - 1, 0), _MAX_EXPONENT)
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**exponent)
    wait = (rng or random).uniform(0, ceiling)
    if retry_after is not None:
        wait = max(wait, retry_after)
    return wait
