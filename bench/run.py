"""The project's benchmark (`make bench`): crawler next to a plain aiohttp script (the way
aiohttp's tutorial writes it), curl, wget2 and aria2c, all fetching from a local server.

Measured per client, the median of --rounds rounds (default 3), rounds interleaved:
- requests per second: URLs / wall time from process start to exit, and its spread over
  the rounds ((max - min) / median);
- CPU seconds per 1,000 requests: user+sys of the client's whole process tree (os.wait4);
- peak RSS: the client's VmHWM, polled (its ru_maxrss would include the bench's own memory,
  inherited at fork);
- server CPU %: the server's CPU time over the client's wall time (near 100 % would mean the
  server, not the client, set the pace);
- a check that every file holds the right content (the server's bodies are deterministic;
  crawler's manifest maps each URL to its file). A client that fails it is marked FAIL.

Scenarios (--only a,b,...; --quick shrinks the sizes ~10x for a smoke run):
  a  20,000 bodies of ~2 KB, saved as bytes: output on the project's disk, and on /dev/shm
     (tmpfs), which leaves the client's own cost
  b  the same with text bodies (crawler save: text) and JSON bodies (save: json)
  c  latency-bound: every response after 50 ms, 5,000 URLs at concurrency 64 and 256;
     throughput as a share of the ideal (concurrency / 0.05 s)
  d  a urls_file of 1,000,000 URLs: time from process start until the first request reaches
     the server, and peak RSS; SIGINT a few seconds after the first request
  e  one 1 GiB body saved as bytes: MB/s (10^6 bytes) and peak RSS
  f  a crawl: a generated documentation-like site of 500 linked HTML pages of 20-200 KB
     (a link every ~80 bytes) plus two of 5 MB and 2.5 MB (a docs site's changelog and full
     index), crawled from its first page by crawler (follow, save: bytes, 8 requests in
     flight) and by wget -r: pages per second and peak RSS (--quick: 50 pages, the two
     large ones a tenth the size)
  g  soak (bench/soak.py): crawler alone, 1,000,000 URLs in one run saved as bytes, its peak
     RSS and open files sampled every half second: flat (10% and 100% within 10%; open files
     at most 8 above the 10% count) and the manifest complete (--quick: 100,000 URLs)

How: nginx from the system's packages (generated configuration, one worker, no access log)
serves a, b, e and f; without nginx, and always for c and d, rawserver.py (raw asyncio
protocols, uvloop when importable) does. With 2+ CPUs the server is pinned to one CPU and each
client to another (taskset). Every round writes into a new folder under bench/results/work
and all is deleted only at the end: on ext4, creating files right after many were deleted is
10-30x slower for a minute or two. For the same reason the bench first waits (--settle) until
creating a file on the disk is fast; the report gives that time at the start and the end.
The report is printed and written to bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bodies
import measure
import report
from clients import (
    FLOOR,
    Batch,
    Client,
    all_clients,
    crawl_clients,
    crawler_outputs,
    floor_report,
    versions,
)
from measure import Sample, median
from report import fmt, say
from servers import Server, nginx_version, start_raw, start_static
from soak import run_soak

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
SCENARIOS = "abcdefg"
RUN_TIMEOUT_S = 1800.0
LATENCY_S = 0.05
SETTLED_US = 150  # creating a small file should take ~30 µs; 10x that means a slow spell
THROUGHPUT_CLIENTS = (
    "crawler",
    "crawler --workers 1",
    "crawler --workers 2",
    "crawler --workers auto",
    "plain aiohttp",
    FLOOR,
    "curl",
    "wget2",
    "aria2c",
)
CRAWL_CONCURRENCY = 8  # (f) requests in flight: crawler's default per_host, one host


@dataclass
class Case:
    """One table row: a client on a set of URLs, measured once per round."""

    label: list[str]
    client: Client
    make_batch: Callable[[int], Batch]
    mode: str = "bytes"
    discard: bool = False  # delete the output after its check (tmpfs, large files)
    samples: list[Sample] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="crawler's benchmark (see bench/run.py)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per client (median)")
    parser.add_argument("--only", default=SCENARIOS, help="scenarios to run, e.g. a,c")
    parser.add_argument("--quick", action="store_true", help="sizes ~10x smaller")
    parser.add_argument("--concurrency", type=int, default=64, help="for a, b and d")
    parser.add_argument("--clients", help="only these clients, e.g. crawler,curl")
    parser.add_argument("--interrupt-after", type=float, default=3.0, help="(d) seconds")
    parser.add_argument("--keep", action="store_true", help="keep the downloaded files")
    parser.add_argument(
        "--settle",
        type=float,
        default=300,
        help="at most this many seconds of waiting for "
        f"file creation on the disk to take under {SETTLED_US} µs (0: do not wait)",
    )
    parser.add_argument("--no-nginx", action="store_true", help="rawserver.py for a, b, e too")
    args = parser.parse_args(argv)
    args.only = [s for s in args.only.replace(",", "") if s in SCENARIOS]
    args.clients = set(args.clients.split(",")) if args.clients else None
    return args


def pinning() -> tuple[list[str], list[str], str]:
    """(server prefix, client prefix, description): taskset on two different CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    taskset = shutil.which("taskset")
    if len(cpus) < 2 or taskset is None:
        return [], [], "no CPU pinning (one CPU or no taskset)"
    server, client = str(cpus[0]), str(cpus[1])
    description = f"server on CPU {server}, each client on CPU {client}"
    return [taskset, "-c", server], [taskset, "-c", client], description


def tmpfs_dir(name: str, needed: int) -> tuple[Path | None, str | None]:
    shm = Path("/dev/shm")
    if report.filesystem(shm) != "tmpfs":
        return None, "no tmpfs at /dev/shm: tmpfs variant skipped"
    free = shutil.disk_usage(shm).free
    if free < needed:
        return None, f"/dev/shm has {free >> 20} MiB free, {needed >> 20} needed: skipped"
    return shm / name, None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scale = 10 if args.quick else 1
        self.stamp = time.strftime("%Y%m%dT%H%M%S")
        self.www = RESULTS / "data" / "www"
        self.work = RESULTS / "work" / self.stamp
        self.tmp = Path(tempfile.mkdtemp(prefix="crawler-bench-"))
        self.server_pin, self.client_pin, self.pinning = pinning()
        self.clients = all_clients()
        self.sections: list[str] = []
        self.notes: list[str] = []
        self.servers: list[Server] = []
        self._static: Server | None = None
        self.shm: Path | None = None
        self.load_before = f"{os.getloadavg()[0]:.2f}"
        self.disk_probe = "disk not probed"

    # --- plumbing --------------------------------------------------------------------------

    def pick(self, names: tuple[str, ...]) -> list[Client]:
        chosen = []
        for name in names:
            client = self.clients[name]
            if self.args.clients and name not in self.args.clients:
                continue
            if not client.available:
                self.note_once(f"{name}: not installed, skipped")
                continue
            chosen.append(client)
        return chosen

    def note_once(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def static_server(self) -> Server:
        if self._static is None:
            if self.args.no_nginx:
                self._static = start_raw(self.www, self.tmp / "static", self.server_pin)
            else:
                self._static = start_static(self.www, self.tmp / "static", self.server_pin)
            self.servers.append(self._static)
        return self._static

    def raw_server(self, delay: float = 0.0) -> Server:
        server = start_raw(self.www, self.tmp / "raw", self.server_pin, delay)
        self.servers.append(server)
        return server

    def small_urls(self, base: str, kind: str, count: int) -> tuple[list[str], list[str]]:
        rels = [bodies.rel_path(kind, index) for index in range(count)]
        return [f"{base}/{rel}" for rel in rels], rels

    def case(
        self,
        label: list[str],
        client: Client,
        urls: tuple[list[str], list[str]],
        out_root: Path,
        concurrency: int,
        mode: str = "bytes",
    ) -> Case:
        """A row whose every round gets fresh folders: work files on the project's disk,
        output under ``out_root``."""
        slug = "-".join([*label, client.name.replace(" ", "_"), mode])

        def make_batch(round_no: int) -> Batch:
            work = self.work / f"{slug}-r{round_no}"
            work.mkdir(parents=True)
            out = out_root / f"{slug}-r{round_no}" / "out"
            return Batch(urls[0], urls[1], out, work, concurrency, mode)

        discard = out_root != self.work
        saves = mode if mode in client.modes else "bytes"  # curl & co. save what they receive
        return Case(label, client, make_batch, saves, discard)

    def run_client(self, case: Case, batch: Batch, server: Server) -> Sample:
        pin = [] if case.client.unpinned else self.client_pin
        argv = [*pin, *case.client.command(case.client, batch)]
        running = measure.start(argv, batch.work, server.cpu, RUN_TIMEOUT_S)
        sample = running.wait()
        if sample.exit_code != 0:
            tail = measure.stderr_tail(batch.work)
            sample.problem = f"exit {sample.exit_code}" + (f": {tail}" if tail else "")
        return sample

    def check_small(self, case: Case, batch: Batch) -> str | None:
        expected = {url: self.www / rel for url, rel in zip(batch.urls, batch.rels, strict=True)}
        if case.client.name == FLOOR:
            return check_lengths(expected, floor_report(batch))
        written = case.client.outputs(batch)
        if case.client.name == "crawler" and (lines := manifest_lines(batch)) != len(batch.urls):
            return f"{lines} manifest lines for {len(batch.urls)} URLs"
        return measure.check_files(expected, written, as_json=case.mode == "json")

    def run_cases(
        self,
        title: str,
        cases: list[Case],
        server: Server,
        check: Callable[[Case, Batch], str | None] | None = None,
    ) -> None:
        """Every case once per round, rounds outermost, so slow drifts hit all alike; each
        round starts one case further on, so no client always runs first (right after the
        previous round's deletions) or last."""
        check = check or self.check_small
        for round_no in range(self.args.rounds):
            shift = round_no % len(cases)
            for case in cases[shift:] + cases[:shift]:
                batch = case.make_batch(round_no)
                if server.stats_supported:
                    server.reset()
                sample = self.run_client(case, batch, server)
                if server.stats_supported:
                    # The span the server was busy with this client: throughput without the
                    # client's start-up and exit.
                    stats = server.stats()
                    if stats["first"] is not None and stats["last"] is not None:
                        sample.extra["served_s"] = stats["last"] - stats["first"]
                sample.problem = sample.problem or check(case, batch)
                case.samples.append(sample)
                if case.discard and not self.args.keep:
                    shutil.rmtree(batch.out.parent, ignore_errors=True)
                say(
                    f"[{title}] {' '.join(case.label)} {case.client.name} {case.mode} "
                    f"round {round_no + 1}: {sample.wall_s:.2f} s, cpu {sample.cpu_s:.2f} s "
                    f"(sys {sample.sys_s:.2f} s), "
                    f"rss {sample.maxrss_kib // 1024} MiB, "
                    + ("ok" if sample.problem is None else f"FAIL: {sample.problem}")
                )

    def check_cell(self, case: Case) -> str:
        problems = [s.problem for s in case.samples if s.problem]
        if not problems:
            return "ok"
        name = f"{case.client.name} ({' '.join(case.label)}, {case.mode})"
        rounds = f"{len(problems)} of {len(case.samples)} rounds"
        self.notes.append(f"FAIL {name}, {rounds}: {problems[0]}")
        return f"FAIL [{len(self.notes)}]"

    def throughput_row(self, case: Case, count: int) -> list[str]:
        samples = case.samples
        return [
            fmt(median(count / s.wall_s for s in samples)),
            spread([count / s.wall_s for s in samples]),
            fmt(median(s.cpu_s for s in samples) / count * 1000, 2),
            fmt(median(s.maxrss_kib for s in samples) / 1024),
            fmt(median(100 * s.server_cpu_s / s.wall_s for s in samples)),
            self.check_cell(case),
        ]

    def section(
        self, title: str, server: Server, headers: list[str], rows: list[list[str]]
    ) -> None:
        text = f"### {title}\n\nServer: {server.name}.\n\n" + report.table(headers, rows)
        self.sections.append(text)

    # --- scenarios -------------------------------------------------------------------------

    def scenario_a(self) -> None:
        count, conc = bodies.SMALL_COUNT // self.scale, self.args.concurrency
        server = self.static_server()
        urls = self.small_urls(server.base, "bin", count)
        clients = self.pick(THROUGHPUT_CLIENTS)
        need = count * 8192 * 2  # one round's output at a time, 4 KiB pages and slack
        self.shm, why = tmpfs_dir(f"crawler-bench-{self.stamp}", need)
        if why:
            self.notes.append(f"(a) {why}")
        outputs = [("disk", self.work)] + ([("tmpfs", self.shm)] if self.shm else [])
        cases = [
            self.case(["a", place], client, urls, root, conc)
            for place, root in outputs
            for client in clients
            if place == "disk" or client.name != FLOOR  # it writes nothing anywhere
        ]
        self.run_cases("a", cases, server)
        rows = [[c.label[1], c.client.name, *self.throughput_row(c, count)] for c in cases]
        headers = ["output", "client", "req/s", "spread", "CPU s / 1k req", "peak RSS MiB"]
        title = f"(a) {count:,} bodies of ~2 KB, save: bytes, concurrency {conc}"
        self.section(title, server, [*headers, "server CPU %", "check"], rows)

    def scenario_b(self) -> None:
        count, conc = bodies.SMALL_COUNT // self.scale, self.args.concurrency
        server = self.static_server()
        cases = []
        for kind, mode in (("txt", "text"), ("json", "json")):
            urls = self.small_urls(server.base, kind, count)
            for client in self.pick(("crawler", "plain aiohttp", "curl")):
                cases.append(self.case(["b", kind], client, urls, self.work, conc, mode))
        self.run_cases("b", cases, server)
        rows = [[c.label[1], c.client.name, c.mode, *self.throughput_row(c, count)] for c in cases]
        headers = ["bodies", "client", "save", "req/s", "spread", "CPU s / 1k req"]
        title = f"(b) {count:,} text and JSON bodies of ~2 KB, disk, concurrency {conc}"
        headers += ["peak RSS MiB", "server CPU %", "check"]
        self.section(title, server, headers, rows)
        self.notes.append(
            "(b) curl saves the bytes as received, for reference; the plain script uses "
            "resp.text() / resp.json() as the mode says."
        )

    def scenario_c(self) -> None:
        count = 5000 // self.scale
        server = self.raw_server(LATENCY_S)
        urls = self.small_urls(server.base, "bin", count)
        cases = [
            self.case(["c", str(conc)], client, urls, self.work, conc)
            for conc in (64, 256)
            for client in self.pick(("crawler", "plain aiohttp", "curl"))
        ]
        self.run_cases("c", cases, server)
        server.stop()
        rows = []
        for case in cases:
            conc = int(case.label[1])
            rate = median(count / s.wall_s for s in case.samples)
            row = self.throughput_row(case, count)
            share = f"{100 * rate * LATENCY_S / conc:.0f} %"
            served = [s.extra["served_s"] for s in case.samples if "served_s" in s.extra]
            in_run = f"{100 * count / median(served) * LATENCY_S / conc:.0f} %" if served else "-"
            rows.append([str(conc), case.client.name, *row[:2], share, in_run, *row[2:]])
        headers = ["concurrency", "client", "req/s", "spread", "of ideal", "of ideal, in run"]
        headers.append("CPU s / 1k req")
        title = f"(c) {count:,} URLs, every response after {LATENCY_S * 1000:g} ms"
        self.section(title, server, [*headers, "peak RSS MiB", "server CPU %", "check"], rows)
        self.notes.append(
            '(c) ideal = concurrency / 0.05 s. "of ideal" counts the client\'s whole wall '
            'time, start-up included; "in run" counts from the first request the server '
            "saw to the last response it sent."
        )

    def scenario_d(self) -> None:
        count, conc = 1_000_000 // self.scale, self.args.concurrency
        server = self.raw_server()
        urls = [
            f"{server.base}/{bodies.rel_path('bin', n % bodies.SMALL_COUNT)}?n={n}"
            for n in range(count)
        ]
        rels = [f"d/{n:07d}.bin" for n in range(count)]
        urls_file = self.work / "d-urls.txt"
        self.work.mkdir(parents=True, exist_ok=True)
        urls_file.write_text("".join(url + "\n" for url in urls))
        cases = [
            self.case(["d"], client, (urls, rels), self.work, conc)
            for client in self.pick(("crawler", "plain aiohttp"))
        ]
        for round_no in range(self.args.rounds):
            for case in cases:
                batch = case.make_batch(round_no)
                batch.urls_file = urls_file
                case.samples.append(self.interrupted(case, batch, server))
        server.stop()
        rows = [self.interrupted_row(case) for case in cases]
        headers = ["client", "to first request s", "peak RSS MiB", "requests done", "stop s"]
        title = f"(d) urls_file of {count:,} URLs, concurrency {conc}, SIGINT after first + "
        title += f"{self.args.interrupt_after:g} s"
        self.section(title, server, [*headers, "exit", "check"], rows)
        self.notes.append(
            "(d) plain aiohttp (the same list, one line per URL with its path) is there for "
            "reference; its files are not checked after the interrupt. crawler's check: every "
            "manifest line of the interrupted run is ok with the right bytes; exit 130."
        )

    def interrupted(self, case: Case, batch: Batch, server: Server) -> Sample:
        """Start the client, wait for its first request, let it run, SIGINT it, reap it."""
        server.reset()
        argv = [*self.client_pin, *case.client.command(case.client, batch)]
        running = measure.start(argv, batch.work, server.cpu, timeout_s=60)
        first = wait_first(server, running.proc, limit_s=300)
        if first is not None:
            time.sleep(self.args.interrupt_after)
        signalled = time.monotonic()
        if measure.alive(running.proc):
            os.kill(running.proc.pid, signal.SIGINT)
        sample = running.wait()
        stop_s = time.monotonic() - signalled
        served = server.stats()["count"] or 0
        to_first = first - running.started if first is not None else math.nan
        sample.extra = {"first_s": to_first, "served": served, "stop_s": stop_s}
        if case.client.name == "crawler":
            sample.problem = self.check_interrupted(batch, sample)
        say(
            f"[d] {case.client.name}: first request after {to_first:.3f} s, "
            f"rss {sample.maxrss_kib // 1024} MiB, {served:.0f} served, exit {sample.exit_code}"
        )
        return sample

    def check_interrupted(self, batch: Batch, sample: Sample) -> str | None:
        if sample.exit_code != 130:
            return f"exit {sample.exit_code}, not 130: {measure.stderr_tail(batch.work)}"
        written = crawler_outputs(batch)
        if not written:
            return "no manifest line"
        expected = {url: self.www / url.split("/", 3)[3].split("?")[0] for url in written}
        return measure.check_files(expected, written)

    def interrupted_row(self, case: Case) -> list[str]:
        samples = case.samples
        return [
            case.client.name,
            fmt(median(s.extra["first_s"] for s in samples), 3),
            fmt(median(s.maxrss_kib for s in samples) / 1024),
            fmt(median(s.extra["served"] for s in samples)),
            fmt(median(s.extra["stop_s"] for s in samples), 1),
            ",".join(sorted({str(s.exit_code) for s in samples})),
            self.check_cell(case) if case.client.name == "crawler" else "–",
        ]

    def scenario_e(self) -> None:
        size = (1 << 30) // (8 if self.args.quick else 1)
        say(f"[e] preparing a {size >> 20} MiB body (once) ...")
        digest = bodies.ensure_big(self.www, size)
        server = self.static_server()
        name = bodies.big_name(size)
        urls = ([f"{server.base}/{name}"], [name])
        cases = [
            self.case(["e"], client, urls, self.work, 1)
            for client in self.pick(("crawler", "curl", "plain aiohttp"))
        ]
        for case in cases:
            case.discard = True

        def check(case: Case, batch: Batch) -> str | None:
            return check_big(case.client.outputs(batch).get(batch.urls[0]), size, digest)

        self.run_cases("e", cases, server, check)
        rows = []
        for case in cases:
            samples = case.samples
            rows.append(
                [
                    case.client.name,
                    fmt(median(size / 1e6 / s.wall_s for s in samples)),
                    spread([size / 1e6 / s.wall_s for s in samples]),
                    fmt(median(s.cpu_s for s in samples), 2),
                    fmt(median(s.maxrss_kib for s in samples) / 1024),
                    fmt(median(100 * s.server_cpu_s / s.wall_s for s in samples)),
                    self.check_cell(case),
                ]
            )
        headers = ["client", "MB/s", "spread", "CPU s", "peak RSS MiB", "server CPU %", "check"]
        self.section(f"(e) one body of {size >> 20} MiB, save: bytes, disk", server, headers, rows)

    def scenario_f(self) -> None:
        big = tuple((n, size // self.scale) for n, size in bodies.SITE_BIG.items())
        site = bodies.Site(bodies.SITE_PAGES // self.scale, big)
        say(f"[f] preparing a site of {site.pages} pages (once) ...")
        size = site.ensure(self.www)
        server = self.static_server()
        rels = [site.rel(index) for index in range(site.pages)]
        urls = [f"{server.base}/{rel}" for rel in rels]
        clients = []
        for name, client in crawl_clients().items():
            if self.args.clients and name not in self.args.clients:
                continue
            if not client.available:
                self.note_once(f"{name}: not installed, skipped")
                continue
            clients.append(client)
        cases = [
            self.case(["f"], client, (urls, rels), self.work, CRAWL_CONCURRENCY)
            for client in clients
        ]
        for case in cases:
            case.discard = True
        self.run_cases("f", cases, server)
        rows = []
        for case in cases:
            samples = case.samples
            rows.append(
                [
                    case.client.name,
                    fmt(median(site.pages / s.wall_s for s in samples), 1),
                    spread([site.pages / s.wall_s for s in samples]),
                    fmt(median(s.cpu_s for s in samples), 2),
                    fmt(median(s.maxrss_kib for s in samples) / 1024),
                    fmt(median(100 * s.server_cpu_s / s.wall_s for s in samples)),
                    self.check_cell(case),
                ]
            )
        headers = ["client", "pages/s", "spread", "CPU s", "peak RSS MiB", "server CPU %", "check"]
        sizes = " and ".join(f"{n / 1e6:g} MB" for _, n in big)
        title = (
            f"(f) crawl of a site of {site.pages} pages ({size / 1e6:.0f} MB of HTML, two of "
            f"them {sizes}), {CRAWL_CONCURRENCY} requests in flight (wget: 1)"
        )
        self.section(title, server, headers, rows)
        self.notes.append(
            "(f) crawler follows links (depth 10, scope: prefix, save: bytes); wget runs "
            "`wget -r -l 10 -np -nH`. Both fetch each page once; the check compares every "
            "page with the file written for it."
        )

    def scenario_g(self) -> None:
        if self.args.clients and "crawler" not in self.args.clients:
            return
        server = self.raw_server()
        soak = run_soak(
            server, self.work / "g", 1_000_000 // self.scale, self.args.concurrency, self.client_pin
        )
        server.stop()
        self.sections.append(soak.section(server))
        if not soak.passed():
            self.notes.append(
                f"(g) soak FAILED: its files are in bench/results/work/{self.stamp}/g with "
                "--keep; `python bench/soak.py --keep` runs it alone"
            )

    # --- the whole run ---------------------------------------------------------------------

    def run(self) -> None:
        if set(self.args.only) & set("abcdg"):  # the small bodies (e and f make their own)
            say(f"preparing documents in {self.www} (once) ...")
            bodies.ensure_small(self.www)
        # An editable install compiles crawler's modules at first import, unless
        # PYTHONDONTWRITEBYTECODE is set; then every run would compile them again (about
        # 20 ms of start-up). A regular install has them compiled, so measure that.
        compileall.compile_dir(str(BENCH.parent / "crawler"), quiet=1)
        before = self.wait_for_disk()
        for scenario in self.args.only:
            say(f"--- scenario {scenario}")
            getattr(self, f"scenario_{scenario}")()
        after = probe_file_creation(self.work / "probe-end")
        self.disk_probe = (
            f"creating a 2 KB file there: {before} µs at the start, {after} µs at the end"
        )

    def wait_for_disk(self) -> str:
        """Probe file creation until it is fast (or --settle seconds passed): right after
        many files were deleted (the end of an earlier bench, a test suite), ext4 creates
        files 10-30x slower for a minute or two, which would be measured as client cost."""
        deadline = time.monotonic() + self.args.settle
        took = probe_file_creation(self.work / "probe-0")
        probes = 1
        while float(took) > SETTLED_US and time.monotonic() < deadline:
            say(f"creating a file takes {took} µs (recent deletions?); waiting for the disk")
            time.sleep(10)
            took = probe_file_creation(self.work / f"probe-{probes}")
            probes += 1
        return took

    def cleanup(self) -> None:
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.args.keep:
            return
        for folder in (self.work, self.shm):
            if folder is not None and folder.exists():
                say(f"deleting {folder} ...")
                subprocess.run(["rm", "-rf", "--", str(folder)], check=False)

    def report(self, wall_s: float) -> str:
        tools = {}
        if version := nginx_version():
            tools["nginx"] = version
        tools.update(versions())
        lines = [report.machine_line(tools, self.pinning, RESULTS)]
        lines[0] += f", {self.disk_probe}"
        command = " ".join([python_name(), "bench/run.py", *sys.argv[1:]])
        lines.append(
            f"\nCommand: `{command}`; {self.args.rounds} rounds, medians; "
            f"bench wall time {wall_s / 60:.1f} min; load average {self.load_before} before, "
            f"{os.getloadavg()[0]:.2f} after (other processes share the CPUs).\n"
        )
        lines += [f"{section}\n" for section in self.sections]
        if self.notes:
            lines.append("Notes:\n")
            lines += [f"{n}. {note}" for n, note in enumerate(self.notes, 1)]
        return "\n".join(lines) + "\n"


def spread(values: list[float]) -> str:
    """(max - min) / median over the rounds: how far to trust the median."""
    return f"{100 * (max(values) - min(values)) / median(values):.0f} %"


def probe_file_creation(folder: Path, count: int = 2000) -> str:
    """Microseconds to create a 2 KB file on the project's disk now: on ext4 it is much
    slower for a while after many files were deleted, by this bench or anything else."""
    folder.mkdir(parents=True)
    data = bytes(2048)
    started = time.perf_counter()
    for number in range(count):
        (folder / f"{number}.bin").write_bytes(data)
    return f"{(time.perf_counter() - started) / count * 1e6:.0f}"


def manifest_lines(batch: Batch) -> int:
    try:
        with (batch.out / "manifest.jsonl").open("rb") as manifest:
            return sum(1 for _ in manifest)
    except OSError:
        return 0


def python_name() -> str:
    try:
        return os.path.relpath(sys.executable)
    except ValueError:
        return sys.executable


def check_lengths(expected: dict[str, Path], report: Path) -> str | None:
    """The floor client keeps no files: check that every URL came back whole (its length)."""
    try:
        lengths = json.loads(report.read_text())
    except (OSError, ValueError) as exc:
        return f"no report: {exc}"
    wrong = [url for url, source in expected.items() if lengths.get(url) != source.stat().st_size]
    return f"{len(wrong)} of {len(expected)} wrong ({wrong[0]})" if wrong else None


def wait_first(server: Server, proc: subprocess.Popen[bytes], limit_s: float) -> float | None:
    """time.monotonic() of the first request the server saw, polled; None when the client
    exited or ``limit_s`` passed first."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and measure.alive(proc):
        first = server.stats()["first"]
        if first is not None:
            return first
        time.sleep(0.01)
    return None


def check_big(path: Path | None, size: int, digest: str) -> str | None:
    if path is None or not path.is_file():
        return "no file"
    if path.stat().st_size != size:
        return f"{path.stat().st_size} bytes, not {size}"
    if bodies.file_sha256(path) != digest:
        return "sha256 differs"
    return None


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    bench = Bench(args)
    try:
        bench.run()
    finally:
        bench.cleanup()
    text = bench.report(time.monotonic() - started)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
