"""Per-job request settings, built once and cached for the process: the headers every request
of a job sends, the proxy the environment names for a host, and TLS contexts. Each is on the
per-request path, where building them anew cost measurable time."""

from __future__ import annotations

import os
import ssl
import urllib.request
from functools import lru_cache
from pathlib import Path

from ..config.requestkeys import SECRET_HEADERS
from ..config.spec import JobSpec

# The codings crawler undoes itself (C5), and so the only ones it asks for.
ACCEPT_ENCODING = "gzip, deflate, br"

# The variables urllib reads for env_proxy, in both cases: the cache is keyed on their values.
_PROXY_VARS = tuple(
    name for base in ("http_proxy", "https_proxy", "no_proxy") for name in (base, base.upper())
)


_HEADERS: dict[int, tuple[JobSpec, dict[str, str]]] = {}


def request_headers(job: JobSpec) -> dict[str, str]:
    """The headers every request of ``job`` sends, built once per job (the job is kept in the
    entry so its id cannot be reused while the entry lives)."""
    entry = _HEADERS.get(id(job))
    if entry is None or entry[0] is not job:
        headers = dict(job.headers)
        if not any(name.lower() == "accept-encoding" for name in headers):
            headers["Accept-Encoding"] = ACCEPT_ENCODING
        if len(_HEADERS) > 1024:
            _HEADERS.clear()
        entry = _HEADERS[id(job)] = (job, headers)
    return entry[1]


_proxy_environment: tuple[str | None, ...] | None = None


def read_proxy_environment() -> None:
    """Take the proxy variables as they are now; a run calls this once at its start, so
    requests do not read the environment one by one."""
    global _proxy_environment
    _proxy_environment = tuple(os.environ.get(name) for name in _PROXY_VARS)


def env_proxy(scheme: str, host: str) -> str | None:
    """The proxy the environment names for a host (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), looked
    up once per host and environment instead of once per request."""
    if _proxy_environment is None:
        read_proxy_environment()
    assert _proxy_environment is not None
    return _env_proxy(scheme, host, _proxy_environment)


@lru_cache(maxsize=4096)
def _env_proxy(scheme: str, host: str, _environment: tuple[str | None, ...]) -> str | None:
    if urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]
        return None
    return urllib.request.getproxies_environment().get(scheme)


def ssl_setting(verify: bool | Path) -> bool | ssl.SSLContext:
    if isinstance(verify, bool):
        return verify
    return _ssl_context(str(verify))


@lru_cache(maxsize=16)
def _ssl_context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


def without_credentials(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` less the credentials (C3's secret headers), for a redirect elsewhere."""
    return {name: value for name, value in headers.items() if name.lower() not in SECRET_HEADERS}
