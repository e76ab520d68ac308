"""Retries (C9): what is retried and how often, Retry-After, backoff, and what the manifest
says about it. The policy's pure functions first, then whole runs against local servers."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections import defaultdict
from email.utils import formatdate
from typing import Any

import pytest
from aiohttp import web

from crawler.http import retry

from .conftest import read_manifest, run_job
from .servers import start_raw_server

# --- the policy, pure ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_statuses_that_are_retried(status):
    assert retry.should_retry("http", status) is True


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 410, 418, 422, 501, 505, 304])
def test_statuses_that_are_not_retried(status):
    assert retry.should_retry("http", status) is False


@pytest.mark.parametrize("kind", ["timeout", "connect", "protocol"])
def test_kinds_that_are_retried(kind):
    assert retry.should_retry(kind, None) is True


@pytest.mark.parametrize("kind", ["tls", "too_large", "invalid_json", "decode", "redirects"])
def test_kinds_that_are_not_retried(kind):
    assert retry.should_retry(kind, None) is False
    assert retry.should_retry(kind, 200) is False


def test_backoff_stays_within_zero_and_its_exponential_ceiling():
    rng = random.Random(1234)
    for n in range(1, 16):
        ceiling = min(retry.BACKOFF_CAP_S, retry.BACKOFF_BASE_S * 2 ** (n - 1))
        waits = [retry.backoff_s(n, rng=rng) for _ in range(400)]
        assert all(0 <= w <= ceiling for w in waits), n
        # Full jitter: the waits spread over the whole range, not bunched at the ceiling.
        assert min(waits) < 0.1 * ceiling
        assert max(waits) > 0.9 * ceiling


def test_backoff_grows_then_stops_at_the_cap():
    assert retry.BACKOFF_CAP_S >= retry.BACKOFF_BASE_S
    rng = random.Random(7)
    late = [retry.backoff_s(40, rng=rng) for _ in range(400)]
    assert max(late) <= retry.BACKOFF_CAP_S
    assert max(late) > 0.9 * retry.BACKOFF_CAP_S


@pytest.mark.parametrize("n", [1025, 5000, 10**6])
def test_backoff_for_a_huge_retry_number_is_capped_not_an_error(n):
    # `retries` has no upper bound in the job file; 0.5 * 2**1100 is not a float.
    assert 0 <= retry.backoff_s(n) <= retry.BACKOFF_CAP_S


def test_retry_after_is_the_least_wait():
    rng = random.Random(3)
    for n in (1, 2, 3):
        assert all(retry.backoff_s(n, 5.0, rng) >= 5.0 for _ in range(200))
    # Past the backoff cap too: Retry-After is only bounded by its own cap.
    assert retry.backoff_s(1, retry.RETRY_AFTER_CAP_S, rng) == retry.RETRY_AFTER_CAP_S
    # A short Retry-After never shortens the backoff.
    waits = [retry.backoff_s(6, 0.0, rng) for _ in range(200)]
    assert max(waits) > 1.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1", 1.0), ("0", 0.0), (" 7 ", 7.0), ("120", 120.0), ("3600", None), ("99999999999", None)],
)
def test_retry_after_seconds(value, seconds):
    expected = retry.RETRY_AFTER_CAP_S if seconds is None else seconds
    assert retry.retry_after_s(value) == expected


def test_retry_after_cap_is_at_least_a_minute():
    assert retry.RETRY_AFTER_CAP_S >= 60
    assert retry.retry_after_s("60") == 60.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "-5", "1e3", "²", "Mon, 99 Foo 2024"])
def test_retry_after_unreadable_is_none(value):
    assert retry.retry_after_s(value) is None


NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT


@pytest.mark.parametrize(
    "value",
    [
        "Tue, 14 Nov 2023 22:13:50 GMT",  # IMF-fixdate
        "Tuesday, 14-Nov-23 22:13:50 GMT",  # obsolete RFC 850 form
        "Tue Nov 14 22:13:50 2023",  # obsolete asctime form: no zone, GMT all the same
    ],
)
def test_retry_after_http_date(value):
    assert retry.retry_after_s(value, now=NOW) == pytest.approx(30.0)


def test_retry_after_http_date_is_gmt_whatever_the_local_zone(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert retry.retry_after_s("Tue Nov 14 22:13:50 2023", now=NOW) == pytest.approx(30.0)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_retry_after_http_date_past_or_far():
    assert retry.retry_after_s("Tue, 14 Nov 2023 22:00:00 GMT", now=NOW) == 0.0
    assert retry.retry_after_s(formatdate(NOW + 86400, usegmt=True), now=NOW) == (
        retry.RETRY_AFTER_CAP_S
    )
    # Without `now`, the clock is used.
    in_ten = retry.retry_after_s(formatdate(time.time() + 10, usegmt=True))
    assert in_ten is not None
    assert 8 <= in_ten <= 10


# --- whole runs ----------------------------------------------------------------------------


def by_job(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["job"]: r for r in records}


class Script:
    """An app whose routes answer from a script per path, and note when each request came."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.bodies: dict[str, list[bytes]] = defaultdict(list)

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            key = f"{request.method} {request.path}"
            self.times[key].append(time.monotonic())
            self.bodies[key].append(await request.read())
            n = len(self.times[key])
            codes = [int(c) for c in request.query.get("codes", "503,200").split(",")]
            code = codes[min(n, len(codes)) - 1]
            await asyncio.sleep(float(request.query.get("delay", "0")))
            headers = {}
            if code != 200 and "retry_after" in request.query:
                after = request.query["retry_after"]
                if after == "date":  # an HTTP-date two seconds ahead
                    after = formatdate(time.time() + 2, usegmt=True)
                headers["Retry-After"] = after
            return web.Response(status=code, text=f"attempt {n}: {code}", headers=headers)

        app = web.Application()
        app.router.add_route("*", "/{name}", handle)
        return app


@pytest.fixture
async def script(aiohttp_server: Any) -> tuple[Script, str]:
    scripted = Script()
    server = await aiohttp_server(scripted.app())
    return scripted, str(server.make_url("")).rstrip("/")


async def test_503_503_200_succeeds_on_the_third_attempt(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        jobs:
          - name: flaky
            url: {site.url}/flaky/a?codes=503,503,200
            retries: 2
    """)
    summary = await run_job(job)
    [record] = read_manifest(tmp_path / "out" / "job")
    assert record["ok"] is True
    assert record["status"] == 200
    assert record["attempts"] == 3
    assert record["error"] is None
    assert site.seen.hits["/flaky/a?codes=503,503,200"] == 3
    assert summary["exit_code"] == 0
    assert (tmp_path / "out" / "job" / record["path"]).read_text() == "attempt 3: 200"


async def test_retries_run_out(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        jobs:
          - name: none
            url: {site.url}/flaky/b?codes=503,200
            retries: 0
          - name: two
            url: {site.url}/flaky/c?codes=503,503,503,200
            retries: 2
    """)
    summary = await run_job(job)
    records = by_job(read_manifest(tmp_path / "out" / "job"))
    assert records["none"]["attempts"] == 1
    assert records["none"]["status"] == 503
    assert records["none"]["error"]["kind"] == "http"
    assert site.seen.hits["/flaky/b?codes=503,200"] == 1
    assert records["two"]["attempts"] == 3
    assert records["two"]["status"] == 503
    assert records["two"]["ok"] is False
    assert site.seen.hits["/flaky/c?codes=503,503,503,200"] == 3
    assert summary["exit_code"] == 1
    assert summary["by_status"] in ({"503": 2}, {503: 2})


async def test_5xx_and_429_are_retried(site, write_job, tmp_path):
    codes = [429, 500, 502, 503, 504]
    urls = ", ".join(f'"{site.url}/flaky/s{code}?codes={code},200"' for code in codes)
    job = write_job(f"""
        version: 1
        defaults: {{retries: 1}}
        jobs:
          - name: five
            urls: [{urls}]
    """)
    assert (await run_job(job))["exit_code"] == 0
    records = read_manifest(tmp_path / "out" / "job")
    assert len(records) == len(codes)
    assert all(r["attempts"] == 2 and r["status"] == 200 for r in records), records
    for code in codes:
        assert site.seen.hits[f"/flaky/s{code}?codes={code},200"] == 2


async def test_other_4xx_are_not_retried(site, write_job, tmp_path):
    codes = [400, 401, 403, 404, 405, 409, 410, 422]
    urls = ", ".join(f'"{site.url}/status/{code}"' for code in codes)
    job = write_job(f"""
        version: 1
        defaults: {{retries: 3}}
        jobs:
          - name: client-errors
            urls: [{urls}]
    """)
    started = time.monotonic()
    assert (await run_job(job))["exit_code"] == 1
    assert time.monotonic() - started < 2  # no backoff happened
    records = read_manifest(tmp_path / "out" / "job")
    assert sorted(r["status"] for r in records) == codes
    for record in records:
        assert record["attempts"] == 1
        assert record["error"]["kind"] == "http"
        assert site.seen.hits[f"/status/{record['status']}"] == 1


async def test_429_retry_after_is_waited(script, write_job, tmp_path):
    scripted, base = script
    job = write_job(f"""
        version: 1
        jobs:
          - name: limited
            url: {base}/limited?codes=429,200&retry_after=1
            retries: 2
    """)
    assert (await run_job(job))["exit_code"] == 0
    first, second = scripted.times["GET /limited"]
    assert second - first >= 0.95  # measured where the server saw it
    [record] = read_manifest(tmp_path / "out" / "job")
    assert record["attempts"] == 2
    assert record["status"] == 200
    assert record["elapsed_ms"] >= 950  # elapsed_ms spans the wait


async def test_retry_after_http_date_is_waited(script, write_job, tmp_path):
    scripted, base = script
    job = write_job(f"""
        version: 1
        jobs:
          - name: later
            url: {base}/later?codes=503,200&retry_after=date
            retries: 1
    """)
    assert (await run_job(job))["exit_code"] == 0
    first, second = scripted.times["GET /later"]
    # Two seconds ahead at one-second resolution: at least one second from now.
    assert 0.95 <= second - first <= 3.5


async def test_every_method_is_retried_with_its_body(script, write_job, tmp_path):
    scripted, base = script
    methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
    jobs = "\n".join(
        f"  - {{name: m-{m.lower()}, method: {m}, url: '{base}/{m.lower()}?codes=503,200',"
        f" json: {{method: {m}}}}}"
        if m != "GET" and m != "HEAD"
        else f"  - {{name: m-{m.lower()}, method: {m}, url: '{base}/{m.lower()}?codes=503,200'}}"
        for m in methods
    )
    job = write_job(f"version: 1\ndefaults: {{retries: 1}}\njobs:\n{jobs}\n")
    assert (await run_job(job))["exit_code"] == 0
    records = by_job(read_manifest(tmp_path / "out" / "job"))
    for method in methods:
        assert records[f"m-{method.lower()}"]["attempts"] == 2, method
        key = f"{method} /{method.lower()}"
        assert len(scripted.times[key]) == 2, method
        first, again = scripted.bodies[key]
        assert first == again  # the body is sent again, whole
        if method not in ("GET", "HEAD"):
            assert first == f'{{"method":"{method}"}}'.encode()


async def test_elapsed_ms_spans_every_attempt(script, write_job, tmp_path):
    scripted, base = script
    job = write_job(f"""
        version: 1
        jobs:
          - name: slowly
            url: {base}/slowly?codes=503,503,200&delay=0.2
            retries: 2
    """)
    started = time.monotonic()
    assert (await run_job(job))["exit_code"] == 0
    wall_ms = (time.monotonic() - started) * 1000
    [record] = read_manifest(tmp_path / "out" / "job")
    times = scripted.times["GET /slowly"]
    assert len(times) == 3
    served_ms = (times[-1] - times[0]) * 1000 + 200  # first arrival to the last answer
    assert record["attempts"] == 3
    assert record["elapsed_ms"] >= 3 * 200
    assert served_ms - 50 <= record["elapsed_ms"] <= wall_ms


async def test_network_failures_are_retried(site, write_job, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    refused = sock.getsockname()[1]
    sock.close()
    calls = 0

    async def garbage_then_fine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            writer.write(b"HTTP/1.1 ??? garbage\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfine")
        await writer.drain()

    server, port = await start_raw_server(garbage_then_fine)
    try:
        job = write_job(f"""
            version: 1
            jobs:
              - name: refused
                url: http://127.0.0.1:{refused}/
                retries: 2
              - name: protocol
                url: http://127.0.0.1:{port}/
                retries: 2
              - name: timeout
                url: {site.url}/slow?delay=0.6
                timeout: {{total: 0.15}}
                retries: 1
        """)
        summary = await run_job(job)
    finally:
        server.close()
        await server.wait_closed()
    records = by_job(read_manifest(tmp_path / "out" / "job"))
    assert records["refused"]["attempts"] == 3
    assert records["refused"]["error"]["kind"] == "connect"
    assert records["protocol"]["attempts"] == 2
    assert records["protocol"]["ok"] is True
    assert calls == 2
    assert records["timeout"]["attempts"] == 2
    assert records["timeout"]["error"]["kind"] == "timeout"
    assert site.seen.hits["/slow?delay=0.6"] == 2
    assert summary["exit_code"] == 1


async def test_failures_that_another_try_cannot_fix_are_not_retried(site, write_job, tmp_path):
    job = write_job(f"""
        version: 1
        defaults: {{retries: 3}}
        jobs:
          - name: too-large
            url: {site.url}/bytes?size=2000
            max_bytes: 1000
          - name: redirects
            url: {site.url}/loop
            max_redirects: 2
          - name: not-json
            url: {site.url}/text?words=plain
            save: json
    """)
    started = time.monotonic()
    assert (await run_job(job))["exit_code"] == 1
    assert time.monotonic() - started < 2
    records = by_job(read_manifest(tmp_path / "out" / "job"))
    assert {name: r["error"]["kind"] for name, r in records.items()} == {
        "too-large": "too_large",
        "redirects": "redirects",
        "not-json": "invalid_json",
    }
    assert all(r["attempts"] == 1 for r in records.values())
    assert site.seen.hits["/bytes?size=2000"] == 1
    assert site.seen.hits["/text?words=plain"] == 1
    assert site.seen.paths().count("/loop") == 3  # the first request and two redirects


async def test_a_request_waiting_to_retry_holds_no_worker(script, write_job, tmp_path):
    scripted, base = script
    urls = ", ".join(f'"{base}/fast{i}?codes=200"' for i in range(5))
    job = write_job(f"""
        version: 1
        concurrency: 1
        jobs:
          - name: waits
            url: {base}/waits?codes=429,200&retry_after=1
            retries: 1
          - name: others
            urls: [{urls}]
    """)
    assert (await run_job(job))["exit_code"] == 0
    first, retried = scripted.times["GET /waits"]
    others = [scripted.times[f"GET /fast{i}"][0] for i in range(5)]
    # With one worker, the others could only be served during the wait if it was free.
    assert all(first < t < retried for t in others)
    assert retried - first >= 0.95
