"""pywb replays what save: warc wrote (C16): `wb-manager init`, `wb-manager add`, then the
`wayback` server on 127.0.0.1 serves each archived response; with the id_ modifier (the
original, unrewritten) the served body is what the origin server sent.

pywb pins dependencies of its own, so .ci/run installs it into REPO/.venv-pywb (not the
project's venv); without that venv the test is skipped, saying so."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import crawler_cli, read_manifest
from . import origin as o
from .readers import record_at

REPO = Path(__file__).resolve().parents[2]
PYWB = REPO / ".venv-pywb" / "bin"

pytestmark = pytest.mark.skipif(
    not (PYWB / "wayback").exists(),
    reason=f"pywb is not installed in {PYWB.parent} (.ci/run installs it there: "
    "python3 -m venv .venv-pywb && .venv-pywb/bin/pip install pywb==2.10.0)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET to the wayback server, redirects not followed; the body as served."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": "identity"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def timestamp(warc_date: str) -> str:
    """WARC-Date 2026-12-07T00:13:00.779303Z -> 20261207001300, as replay URLs write it."""
    return "".join(ch for ch in warc_date[:19] if ch.isdigit())


async def test_pywb_replays_the_archived_responses(aiohttp_server, tmp_path):
    server = await aiohttp_server(o.origin_app(o.Origin()))
    paths = ["/text", "/binary", "/missing", "/gz", "/br", "/chunked", "/hop/1"]
    job = tmp_path / "job.yaml"
    job.write_text(
        json.dumps(
            {
                "version": 1,
                "jobs": [
                    {
                        "name": "replay",
                        "urls": [str(server.make_url(p)) for p in paths],
                        "save": "warc",
                        "retries": 0,
                    }
                ],
            }
        )
    )
    out = tmp_path / "out"
    done = await crawler_cli("run", str(job), "-o", str(out))
    assert done.code == 1, done.stderr  # the 404
    lines = {line["url"]: line for line in read_manifest(out)}
    (warc,) = sorted((out / "replay").iterdir())

    root = tmp_path / "pywb"
    root.mkdir()
    for args in (["init", "coll"], ["add", "coll", str(warc)]):
        made = subprocess.run(
            [str(PYWB / "wb-manager"), *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert made.returncode == 0, made.stderr
    index = (root / "collections" / "coll" / "indexes" / "index.cdxj").read_text()
    assert len(index.splitlines()) == len(paths) + 2  # and /hop/2 and /final

    port = free_port()
    wayback = subprocess.Popen(
        [str(PYWB / "wayback"), "-p", str(port), "-b", "127.0.0.1"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert wayback.poll() is None, wayback.communicate()[0].decode(errors="replace")
            assert time.monotonic() < deadline, "wayback did not start within 60 s"
            try:
                if get(port, "/coll/")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)

        def replay(url: str) -> tuple[int, dict[str, str], bytes]:
            line = lines[url]
            record = record_at(out / line["path"], line["warc_offset"], line["warc_length"])
            stamp = timestamp(record.headers["WARC-Date"])
            return get(port, f"/coll/{stamp}id_/{url}")

        base = str(server.make_url(""))
        for path, status, body in (
            ("/text", 200, o.TEXT),
            ("/binary", 200, o.BINARY),
            ("/missing", 404, o.MISSING),
            ("/chunked", 200, o.CHUNKED),
            # pywb undoes a stored Content-Encoding when it serves: the body the server
            # sent, decoded (the original header kept as X-Archive-Orig-Content-Encoding).
            ("/gz", 200, o.GZIP_PLAIN),
            ("/br", 200, o.BR_PLAIN),
        ):
            got_status, headers, got = replay(f"{base}{path}")
            assert (got_status, got) == (status, body), path
        _, headers, _ = replay(f"{base}/gz")
        assert headers.get("X-Archive-Orig-Content-Encoding") == "gzip"
        # A redirect replays as the redirect it was.
        status, headers, _ = get(port, f"/coll/id_/{base}/hop/1")
        assert status == 302 and headers["Location"] == "/hop/2"
        status, _, body = get(port, f"/coll/id_/{base}/final")
        assert (status, body) == (200, o.FINAL)
    finally:
        wayback.terminate()
        try:
            wayback.wait(10)
        except subprocess.TimeoutExpired:
            wayback.kill()
            wayback.wait(10)
        if wayback.stdout is not None:
            wayback.stdout.close()
