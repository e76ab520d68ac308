"""The per-host breaker (C17), as Nutch's fetcher.max.exceptions.per.queue and Heritrix's
host retry limits have it: after ``threshold`` connection attempts in a row to one host (and
port) that could not connect (refused, DNS, unreachable, connect timeout) with no success
between them, the host is down for the rest of the run. Its remaining requests, those
waiting to retry included, are recorded as ``host_down`` without being attempted, and one
warning says so, instead of a warning and a full set of retries per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class HostBreaker:
    def __init__(self, threshold: int, on_down: Callable[[str], None] | None = None) -> None:
        self.threshold = threshold  # 0: never mark a host down
        self._failures: dict[str, int] = {}
        self._down: set[str] = set()
        self._on_down = on_down

    def is_down(self, host: str) -> bool:
        return host in self._down

    def why(self, host: str, attempts: int = 0) -> str:
        done = "not attempted" if not attempts else f"not retried after {attempts} attempt(s)"
        return (
            f"{done}: {host} could not be connected to {self.threshold} times in a row "
            "(host_down_after)"
        )

    def failed(self, host: str) -> None:
        """One more connection attempt to ``host`` that could not connect."""
        if not self.threshold or host in self._down:
            return
        count = self._failures[host] = self._failures.get(host, 0) + 1
        if count >= self.threshold:
            self._down.add(host)
            del self._failures[host]
            log.warning(
                "host %s is down: %d connection attempts in a row failed; its remaining "
                "requests are recorded as host_down, not attempted",
                host,
                count,
            )
            if self._on_down is not None:
                self._on_down(host)

    def connected(self, host: str) -> None:
        """A response came from ``host``: its count starts again."""
        if self._failures:
            self._failures.pop(host, None)
