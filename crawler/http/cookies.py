"""Cookies a job sends (C17): its ``cookies`` mapping with every request and, with
``keep_cookies: true``, the cookies servers set during the job, sent back to them within the
job only (one jar per job, as a browser profile would be). The run's session keeps no cookies
itself, so without these keys a run is reproducible and jobs never share state.
"""

from __future__ import annotations

import aiohttp
from yarl import URL

from ..config.spec import JobSpec

_JARS: dict[str, aiohttp.CookieJar] = {}


def _jar(job: JobSpec) -> aiohttp.CookieJar:
    jar = _JARS.get(job.name)
    if jar is None:
        # unsafe=True: also keep cookies of hosts given as IP addresses (a local service).
        jar = _JARS[job.name] = aiohttp.CookieJar(unsafe=True)
    return jar


def request_cookies(job: JobSpec, url: URL, same_origin: bool) -> dict[str, str] | None:
    """The cookies to send with a request of ``job`` to ``url``, or None for none. The job's
    own cookies go to the origins of its URLs only (``same_origin``: not to where a
    redirect leads elsewhere); kept cookies go where their domain and path say."""
    if not job.cookies and not job.keep_cookies:
        return None
    cookies = dict(job.cookies) if same_origin else {}
    if not job.keep_cookies:
        return cookies or None
    for name, morsel in _jar(job).filter_cookies(url).items():
        cookies[name] = morsel.value
    return cookies or None


def keep(job: JobSpec, response: aiohttp.ClientResponse) -> None:
    """Store the cookies the response (and the redirects before it) set, for ``job``."""
    if not job.keep_cookies:
        return
    jar = _jar(job)
    for hop in (*response.history, response):
        if hop.cookies:
            jar.update_cookies(hop.cookies, hop.url)


def forget() -> None:
    """Drop every job's jar (a new run starts with none)."""
    _JARS.clear()
