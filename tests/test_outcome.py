"""The one table of error kinds (crawler/outcome.py): every kind has a row, every exception
raised while fetching maps to a kind in the table, and the readers of the table (retry policy,
metrics) agree with it. Also: every save mode the job file accepts has a sink."""

from __future__ import annotations

import asyncio
import logging
import ssl

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from crawler import outcome
from crawler.config.spec import SAVE_MODES
from crawler.http.retry import should_retry
from crawler.outcome import KINDS, Kind, classify
from crawler.output.sinks import SINKS
from crawler.report.metrics import ERROR_KINDS


def request_info() -> aiohttp.RequestInfo:
    url = URL("http://x.example/loop")
    return aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)


def test_every_kind_has_a_row():
    assert set(KINDS) == set(Kind)
    for kind, info in KINDS.items():
        assert info.meaning, kind
        assert info.colour.startswith("#") and len(info.colour) == 7, kind


def test_kinds_are_spelt_as_the_manifest_spells_them():
    assert {str(kind) for kind in Kind} == {
        "timeout",
        "connect",
        "tls",
        "http",
        "too_large",
        "invalid_json",
        "decode",
        "redirects",
        "protocol",
        "invalid_url",
        "host_down",
    }


CASES = [
    (TimeoutError(), "timeout"),
    (asyncio.TimeoutError(), "timeout"),  # noqa: UP041 (what asyncio.wait_for raises)
    (ConnectionRefusedError(111, "Connection refused"), "connect"),
    (ConnectionResetError(), "connect"),
    (OSError(), "connect"),
    (ssl.SSLError(), "tls"),
    (ssl.SSLCertVerificationError(), "tls"),
    (aiohttp.ClientPayloadError("x"), "protocol"),
    (aiohttp.ServerDisconnectedError(), "connect"),
    (aiohttp.TooManyRedirects(request_info(), ()), "redirects"),
    (aiohttp.InvalidURL("x"), "connect"),
    (ValueError(), "protocol"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "protocol"),
    (outcome.TooLarge("x"), "too_large"),
    (outcome.BrokenEncoding("x"), "protocol"),
    (outcome.TooManyRedirects("x"), "redirects"),
    (RuntimeError("weird"), "protocol"),
]


@pytest.mark.parametrize(("exc", "expected"), CASES, ids=lambda v: type(v).__name__)
def test_classify_maps_each_exception_to_a_kind_in_the_table(exc, expected, caplog):
    caplog.set_level(logging.ERROR, logger="crawler")
    kind, message = classify(exc)
    assert kind in KINDS
    assert kind == expected
    assert isinstance(message, str) and message


def test_classify_keeps_the_message():
    assert classify(outcome.TooLarge("body passed 10 bytes")) == (
        "too_large",
        "body passed 10 bytes",
    )
    assert classify(TimeoutError()) == ("timeout", "timed out")


def test_an_unexpected_exception_is_logged_and_fails_the_request_only(caplog):
    caplog.set_level(logging.ERROR, logger="crawler")
    kind, message = classify(RuntimeError("weird"))
    assert (kind, message) == ("protocol", "RuntimeError: weird")
    assert any("RuntimeError" in record.getMessage() for record in caplog.records)


def test_metrics_write_every_kind_of_the_table():
    assert set(ERROR_KINDS) == {str(kind) for kind in KINDS}
    assert len(ERROR_KINDS) == len(KINDS)


@pytest.mark.parametrize("kind", [k for k in Kind if k != Kind.HTTP])
def test_retry_policy_follows_the_table(kind):
    assert should_retry(str(kind), None) is KINDS[kind].retryable


def test_an_unknown_kind_is_not_retried():
    assert should_retry("from_a_newer_version", None) is False


def test_every_save_mode_has_a_sink():
    assert set(SINKS) == set(SAVE_MODES)
