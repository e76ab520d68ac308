"""robots.txt for crawl mode (C14, RFC 9309): fetched once per host per run, parsed with
protego, kept in memory per host; plus the pacing of a host's requests to its Crawl-delay.

The fetch itself goes through ``fetch.attempt`` (the caller passes it in), so robots.txt is
read with the job's headers, proxy, TLS and timeout, and its errors are classified there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from protego import Protego

log = logging.getLogger(__name__)

# RFC 9309 2.5: a crawler must parse at least 500 KiB; a larger file is a broken one.
MAX_BYTES = 512 * 1024
# RFC 9309 2.3.1.2: follow at least five redirects.
MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class Fetched:
    """What fetching robots.txt gave: a status and body, or an error kind."""

    status: int | None
    body: bytes
    kind: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class HostRules:
    """One host's robots.txt, as crawl mode applies it.

    ``blocked`` names why the whole host is off limits (robots.txt answered 5xx or 429, timed
    out, or could not be reached: RFC 9309 2.3.1.4 "unreachable"); ``parser`` is None when
    everything is allowed (robots.txt answered 4xx, RFC 9309 2.3.1.3, or redirected too often).
    """

    parser: Protego | None = None
    blocked: str | None = None

    def allows(self, url: str, agent: str) -> bool:
        if self.blocked is not None:
            return False
        return self.parser is None or bool(self.parser.can_fetch(url, agent))

    def delay_s(self, agent: str) -> float | None:
        if self.parser is None:
            return None
        delay = self.parser.crawl_delay(agent)
        return float(delay) if delay and delay > 0 else None

    def sitemaps(self) -> list[str]:
        return list(self.parser.sitemaps) if self.parser is not None else []


ALLOW_ALL = HostRules()


def agent_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched by: ``example-bot`` of
    ``example-bot/1.0 (+https://example.org/bot)`` (RFC 9309 2.2.1)."""
    words = user_agent.strip().split()
    return words[0].split("/")[0] if words else "*"


def rules_from(fetched: Fetched) -> HostRules:
    """The rules a robots.txt response stands for (RFC 9309 2.3.1)."""
    status = fetched.status
    if fetched.kind is None and status is not None:
        if 200 <= status < 300:
            text = fetched.body.decode("utf-8", "replace").lstrip("\ufeff")
            return HostRules(parser=Protego.parse(text))
        if 300 <= status < 500 and status != 429:
            return ALLOW_ALL
        return HostRules(blocked=f"robots.txt answered HTTP {status}")
    if fetched.kind == "redirects":
        return ALLOW_ALL
    return HostRules(blocked=f"robots.txt failed: {fetched.kind}: {fetched.message}")


Getter = Callable[[str], Awaitable[Fetched]]


class Robots:
    """The robots.txt rules of every host seen in the run, fetched on first use."""

    def __init__(self) -> None:
        self._rules: dict[str, HostRules] = {}
        self._pending: dict[str, asyncio.Future[HostRules]] = {}
        self._last_start: dict[str, float] = {}

    def known(self, origin: str) -> HostRules | None:
        """The rules of ``origin`` (``scheme://host:port``) if already fetched."""
        return self._rules.get(origin)

    async def rules(self, origin: str, get: Getter) -> HostRules:
        """The rules of ``origin``; the first caller fetches ``origin/robots.txt`` with
        ``get``, the others wait for it."""
        rules = self._rules.get(origin)
        if rules is not None:
            return rules
        pending = self._pending.get(origin)
        if pending is None:
            pending = self._pending[origin] = asyncio.ensure_future(self._fetch(origin, get))
        # Shielded: one request cancelled (SIGINT) must not cancel the others' wait.
        return await asyncio.shield(pending)

    async def _fetch(self, origin: str, get: Getter) -> HostRules:
        self._last_start[origin] = time.monotonic()
        try:
            fetched = await get(f"{origin}/robots.txt")
        finally:
            self._pending.pop(origin, None)
        rules = rules_from(fetched)
        if rules.blocked is not None:
            log.warning("%s: not fetching from this host: %s", origin, rules.blocked)
        else:
            log.info("%s/robots.txt: %s", origin, "read" if rules.parser else "none (allow all)")
        self._rules[origin] = rules
        return rules

    async def pace(self, origin: str, delay_s: float) -> None:
        """Wait until ``delay_s`` after the previous request start to ``origin`` (robots.txt
        included). The pool's per-host rate does this too, but only from the moment the
        Crawl-delay is known: requests started before then wait here."""
        now = time.monotonic()
        previous = self._last_start.get(origin)
        start = now if previous is None else max(now, previous + delay_s)
        self._last_start[origin] = start
        if start > now:
            await asyncio.sleep(start - now)
