"""Shards and workers (C15), tested as a user would: the installed `crawler` command as real
subprocesses against one aiohttp.web app served on many loopback addresses (127.0.0.2,
127.0.0.3, ...; each address is a host of its own), which records every request it saw.

Helpers only; the tests are in the test_*.py modules next to this file."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..conftest import CRAWLER_BIN, Done, read_manifest

__all__ = [
    "Done",
    "Farm",
    "Hit",
    "SCHEDULER_VARS",
    "Spawned",
    "clean_env",
    "cli",
    "dry_urls",
    "item_body",
    "last_json",
    "lines_in",
    "peak_overlap",
    "read_manifest",
    "records_so_far",
    "runs_of",
    "sha256",
    "shard_dirs",
    "wait_until",
    "write_job",
]

# Variables `--shard auto` reads, and proxies: a test never inherits them by accident.
SCHEDULER_VARS = (
    "JOB_COMPLETION_INDEX",
    "CRAWLER_SHARDS",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_STEP",
    "SLURM_ARRAY_JOB_ID",
    "AWS_BATCH_JOB_ARRAY_INDEX",
    "AWS_BATCH_JOB_ARRAY_SIZE",
)
_DROPPED_PREFIXES = ("SLURM_", "AWS_BATCH_")
_PROXIES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without any scheduler's array variables, proxies or PYTHONHASHSEED, plus
    ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SCHEDULER_VARS
        and not name.startswith(_DROPPED_PREFIXES)
        and name.lower() not in _PROXIES
        and name != "PYTHONHASHSEED"
    }
    env.update(extra)
    return env


async def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: Path | None = None
) -> Done:
    """Run the installed `crawler` to its end (bounded), in a clean environment."""
    proc = await asyncio.create_subprocess_exec(
        CRAWLER_BIN,
        *args,
        cwd=cwd,
        env=env if env is not None else clean_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


async def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {what or condition}"
        await asyncio.sleep(0.01)


def item_body(host: str, n: int) -> bytes:
    return (f"{host} item {n}\n" * 8).encode()


@dataclass
class Hit:
    """One request the server saw, timed by the server's clock (time.monotonic)."""

    host: str  # address:port, as the Host header named it
    path: str
    start: float
    end: float | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}{self.path}"


@dataclass
class Spawned:
    """A crawler process started in the background; stdout and stderr go to files."""

    proc: asyncio.subprocess.Process
    stdout: Path
    stderr: Path
    group: bool

    async def finish(self, timeout: float = 60) -> Done:
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.kill()
            await self.proc.wait()
            raise
        assert self.proc.returncode is not None
        return Done(
            self.proc.returncode,
            self.stdout.read_text(errors="replace"),
            self.stderr.read_text(errors="replace"),
        )

    def kill(self) -> None:
        """SIGKILL: the whole process group when it leads one, else the process."""
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self.group:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.kill()


@dataclass
class Farm:
    """One aiohttp.web app on ``count`` loopback addresses, port 0 each. Routes, on every host:
    /item/{n} (waits ``slow[host]`` or ``delay`` s, then item_body), /status/{code}, /robots.txt (allows all)
    and /site/{n} (an HTML page linking to /site/2n+1 and /site/2n+2 on its own host and to
    /site/0 of the next host). Every request is recorded in ``hits``; ``inflight`` and
    ``peak`` count requests in the handler per host. Processes started with ``spawn`` are
    killed at exit if still running."""

    tmp: Path
    count: int
    delay: float = 0.0
    slow: dict[str, float] = field(default_factory=dict)  # host -> its own delay
    first: int = 2  # 127.0.0.<first> is the first address
    hosts: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    inflight: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)
    spawned: list[Spawned] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> Farm:
        runner = web.AppRunner(self._app(), handle_signals=False, access_log=None)
        await runner.setup()
        self._runner = runner
        for i in range(self.count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((f"127.0.0.{self.first + i}", 0))
            address, port = sock.getsockname()
            await web.SockSite(runner, sock).start()
            self.hosts.append(f"{address}:{port}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for spawned in self.spawned:
            spawned.kill()
        for spawned in self.spawned:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(spawned.proc.wait(), 10)
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the server ------------------------------------------------------------------------

    def _app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            hit = Hit(request.host, request.path_qs, time.monotonic())
            self.hits.append(hit)
            self.inflight[hit.host] += 1
            self.peak[hit.host] = max(self.peak[hit.host], self.inflight[hit.host])
            try:
                return await handler(request)
            finally:
                hit.end = time.monotonic()
                self.inflight[hit.host] -= 1

        async def item(request: web.Request) -> web.Response:
            delay = self.slow.get(request.host, self.delay)
            if delay:
                await asyncio.sleep(delay)
            body = item_body(request.host, int(request.match_info["n"]))
            return web.Response(body=body, content_type="application/octet-stream")

        async def status(request: web.Request) -> web.Response:
            code = int(request.match_info["code"])
            return web.Response(status=code, text=f"status {code}")

        async def robots(request: web.Request) -> web.Response:
            return web.Response(text="User-agent: *\nAllow: /\n")

        async def site(request: web.Request) -> web.Response:
            n = int(request.match_info["n"])
            mine = self.hosts.index(request.host)
            other = self.hosts[(mine + 1) % len(self.hosts)]
            links = "".join(f'<a href="/site/{c}">{c}</a>' for c in (2 * n + 1, 2 * n + 2))
            links += f'<a href="http://{other}/site/0">next host</a>'
            html = f"<!doctype html><html><body><h1>{request.host} {n}</h1>{links}</body></html>"
            return web.Response(text=html, content_type="text/html")

        app = web.Application(middlewares=[record])
        app.router.add_get("/item/{n}", item)
        app.router.add_get("/status/{code}", status)
        app.router.add_get("/robots.txt", robots)
        app.router.add_get("/site/{n}", site)
        return app

    def base(self, i: int) -> str:
        return f"http://{self.hosts[i]}"

    def items(self, per_host: int | Iterable[int], hosts: Iterable[int] | None = None) -> list[str]:
        """/item URLs: ``per_host`` of them (a count, or one count per host) on each host,
        interleaved host by host."""
        hosts = list(range(self.count) if hosts is None else hosts)
        counts = [per_host] * len(hosts) if isinstance(per_host, int) else list(per_host)
        urls = []
        for n in range(max(counts, default=0)):
            urls += [
                f"{self.base(h)}/item/{n}" for h, c in zip(hosts, counts, strict=True) if n < c
            ]
        return urls

    def fetched(self) -> Counter[str]:
        """How often each URL was requested (robots.txt left out)."""
        return Counter(h.url for h in self.hits if not h.path.startswith("/robots.txt"))

    def answered(self) -> int:
        """Requests answered so far (robots.txt left out)."""
        return sum(1 for h in self.hits if h.end is not None and h.path != "/robots.txt")

    # --- crawler processes -----------------------------------------------------------------

    async def spawn(
        self, *args: str, env: dict[str, str] | None = None, group: bool = False
    ) -> Spawned:
        """Start `crawler ARGS` in the background (``group``: as the leader of a new process
        group, so the test can SIGKILL it with everything it started)."""
        n = len(self.spawned)
        stdout, stderr = self.tmp / f"spawned-{n}.out", self.tmp / f"spawned-{n}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                CRAWLER_BIN,
                *args,
                env=env if env is not None else clean_env(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=group,
            )
        spawned = Spawned(proc, stdout, stderr, group)
        self.spawned.append(spawned)
        return spawned


def write_job(
    path: Path,
    urls: list[str],
    *,
    name: str = "items",
    save: str = "bytes",
    retries: int = 0,
    job: dict[str, Any] | None = None,
    **top: Any,
) -> Path:
    """A job file with one job over ``urls`` (top-level keys from ``top``, more job keys
    from ``job``)."""
    spec = {"name": name, "urls": urls, "save": save, "retries": retries, **(job or {})}
    path.write_text(json.dumps({"version": 1, **top, "jobs": [spec]}, indent=1), "utf-8")
    return path


def last_json(folder: Path) -> dict[str, Any]:
    data = json.loads((folder / ".crawler" / "last.json").read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def lines_in(path: Path) -> int:
    """Complete lines in a file that a running crawler may be appending to."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def records_so_far(folder: Path) -> list[dict[str, Any]]:
    """The complete manifest lines of ``folder`` (a torn last line after a kill is skipped)."""
    try:
        data = (folder / "manifest.jsonl").read_bytes()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in data.split(b"\n")[:-1] if line.strip()]


def shard_dirs(out: Path) -> list[str]:
    root = out / "shards"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def peak_overlap(hits: Iterable[Hit]) -> int:
    """The most of ``hits`` that were in the server's handler at one moment."""
    edges = []
    for hit in hits:
        assert hit.end is not None, f"{hit.url} never answered"
        edges += [(hit.start, 1), (hit.end, -1)]
    peak = current = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # an end before a start
        current += step
        peak = max(peak, current)
    return peak


DRY_LINE = re.compile(r"^(?P<method>[A-Z]+) (?P<url>\S+) -> (?P<path>.*)$")


def dry_urls(stdout: str) -> list[str]:
    """The URLs of `--dry-run` lines (METHOD URL -> path)."""
    urls = []
    for line in stdout.splitlines():
        match = DRY_LINE.match(line)
        assert match, f"not a dry-run line: {line!r}"
        urls.append(match.group("url"))
    return urls


def runs_of(summary: dict[str, Any]) -> set[str]:
    """The shard run ids a merged summary lists under ``runs`` (a list or a mapping)."""
    runs = summary["runs"]
    return set(runs.values() if isinstance(runs, dict) else runs)
