"""Soak (issue 12; `make bench` scenario g, or on its own): one crawler run of 1,000,000 URLs
against the local server, with memory and open files sampled through the run.

    python bench/soak.py [--urls 1000000] [--concurrency 64] [--keep]

Every half second: the crawler process's VmRSS and VmHWM (/proc/PID/status), how many file
descriptors it has open (/proc/PID/fd) and how far the manifest has got. Verdicts:
- memory flat: the peak RSS (VmHWM) once 10% of the URLs are done and at the end are within
  10% of each other (a leak grows with the URLs done; start-up and the first buffers are in
  both figures);
- file descriptors flat: the most open at any sample is at most 8 above the count at 10%;
- manifest complete: one line per URL, each ok, and a sample of files (every 997th) holds the
  server's bytes.

The URLs are the bench's small binary documents (bench/bodies.py) with a query that makes each
one a request of its own (rawserver.py ignores queries), saved as bytes: one file per URL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import bodies
import report
from report import fmt, say
from servers import Server, start_raw

BENCH = Path(__file__).resolve().parent
CRAWLER = Path(sys.executable).parent / "crawler"
SAMPLE_EVERY_S = 0.5
FLAT_RSS = 0.10  # peak RSS at 100% at most 10% above the figure at 10%
FLAT_FDS = 8
CHECK_EVERY = 997  # files read back and compared: every 997th line of the manifest


@dataclass
class Sample:
    at_s: float
    done: int
    rss_kib: int
    hwm_kib: int
    fds: int


@dataclass
class Soak:
    urls: int
    concurrency: int
    samples: list[Sample] = field(default_factory=list)
    exit_code: int | None = None
    wall_s: float = 0.0
    lines: int = 0
    ok: int = 0
    distinct: int = 0
    checked: int = 0
    wrong: int = 0

    def at_share(self, share: float) -> Sample | None:
        return next((s for s in self.samples if s.done >= share * self.urls), None)

    def verdicts(self) -> dict[str, str]:
        tenth, last = self.at_share(0.10), (self.samples[-1] if self.samples else None)
        out: dict[str, str] = {}
        if tenth is None or last is None:
            return {"memory": "no samples", "fds": "no samples", "manifest": self.manifest()}
        growth = last.hwm_kib / tenth.hwm_kib - 1
        out["memory"] = (
            f"{'flat' if growth <= FLAT_RSS else 'GROWS'}: peak RSS {tenth.hwm_kib / 1024:.0f} "
            f"MiB at 10%, {last.hwm_kib / 1024:.0f} MiB at the end ({growth:+.1%})"
        )
        most = max(s.fds for s in self.samples)
        out["fds"] = (
            f"{'flat' if most <= tenth.fds + FLAT_FDS else 'GROW'}: {tenth.fds} open at 10%, "
            f"at most {most}"
        )
        out["manifest"] = self.manifest()
        return out

    def manifest(self) -> str:
        complete = self.lines == self.urls == self.distinct == self.ok and not self.wrong
        return (
            f"{'complete' if complete else 'INCOMPLETE'}: {self.lines:,} lines for "
            f"{self.urls:,} URLs, {self.distinct:,} distinct, {self.ok:,} ok; "
            f"{self.checked:,} files read back, {self.wrong} wrong"
        )

    def passed(self) -> bool:
        verdicts = self.verdicts()
        return self.exit_code == 0 and all(
            v.startswith(("flat", "complete")) for v in verdicts.values()
        )

    def section(self, server: Server) -> str:
        rate = self.lines / self.wall_s if self.wall_s else 0
        rows = [
            ["URLs", fmt(self.urls)],
            ["concurrency", str(self.concurrency)],
            ["exit", str(self.exit_code)],
            ["wall s", fmt(self.wall_s, 1)],
            ["requests/s", fmt(rate)],
            *[[name, text] for name, text in self.verdicts().items()],
            ["verdict", "pass" if self.passed() else "FAIL"],
        ]
        curve = ", ".join(
            f"{share:.0%}: {s.hwm_kib / 1024:.0f} MiB/{s.fds} fds"
            for share in (0.1, 0.25, 0.5, 0.75, 0.9)
            if (s := self.at_share(share)) is not None
        )
        title = f"(g) soak: {self.urls:,} URLs in one run, memory and files sampled"
        return (
            f"### {title}\n\nServer: {server.name}.\n\n"
            + report.table(["", "figure"], rows)
            + f"\n\nPeak RSS and open files through the run: {curve}.\n"
        )


def proc_figures(pid: int) -> tuple[int, int, int] | None:
    """(VmRSS KiB, VmHWM KiB, open fds) of a running process; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0]), fds


class LineCounter:
    """Lines appended to a growing file so far, reading only what is new each time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def count(self) -> int:
        try:
            with self.path.open("rb") as file:
                file.seek(self.offset)
                data = file.read()
        except FileNotFoundError:
            return 0
        self.offset += len(data)
        self.lines += data.count(b"\n")
        return self.lines


def run_soak(
    server: Server, work: Path, urls: int, concurrency: int, pin: list[str] | None = None
) -> Soak:
    """One run of ``urls`` URLs into ``work``/out, sampled; the manifest checked after."""
    work.mkdir(parents=True, exist_ok=True)
    urls_file = work / "soak-urls.txt"
    with urls_file.open("w") as file:
        for n in range(urls):
            file.write(f"{server.base}/{bodies.rel_path('bin', n % bodies.SMALL_COUNT)}?soak={n}\n")
    out = work / "soak-out"
    job = work / "soak.yaml"
    top = {"version": 1, "concurrency": concurrency, "per_host": concurrency}
    entry = {"name": "soak", "urls_file": str(urls_file), "save": "bytes"}
    job.write_text(json.dumps({**top, "jobs": [entry]}))

    soak = Soak(urls, concurrency)
    command = [*(pin or []), str(CRAWLER), "run", str(job), "-o", str(out), "--fresh", "-q"]
    say(f"soak: {urls:,} URLs, concurrency {concurrency} ...")
    started = time.monotonic()
    with (work / "soak.stderr").open("wb") as err:
        proc = subprocess.Popen([*command, "--no-progress"], stdout=err, stderr=err)
    progress = LineCounter(out / "manifest.jsonl")
    next_say = started + 30
    while proc.poll() is None:
        figures = proc_figures(proc.pid)
        if figures is not None:
            now = time.monotonic()
            soak.samples.append(Sample(now - started, progress.count(), *figures))
            if now >= next_say:
                s = soak.samples[-1]
                say(f"soak: {s.done:,} done, RSS {s.rss_kib >> 10} MiB, {s.fds} fds")
                next_say = now + 30
        time.sleep(SAMPLE_EVERY_S)
    soak.exit_code = proc.returncode
    soak.wall_s = time.monotonic() - started
    check_manifest(soak, out)
    return soak


def check_manifest(soak: Soak, out: Path) -> None:
    seen: set[str] = set()
    manifest = out / "manifest.jsonl"
    if not manifest.exists():
        return
    with manifest.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            record = json.loads(line)
            soak.lines += 1
            seen.add(record["url"])
            soak.ok += bool(record["ok"])
            if number % CHECK_EVERY == 0 and record["path"]:
                n = int(record["url"].rsplit("=", 1)[1]) % bodies.SMALL_COUNT
                soak.checked += 1
                if (out / record["path"]).read_bytes() != bodies.bin_body(n):
                    soak.wrong += 1
    soak.distinct = len(seen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="crawler soak: 1,000,000 URLs in one run")
    parser.add_argument("--urls", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--keep", action="store_true", help="keep the downloaded files")
    args = parser.parse_args(argv)
    www = BENCH / "results" / "data" / "www"
    bodies.ensure_small(www)
    tmp = Path(tempfile.mkdtemp(prefix="crawler-soak-"))
    work = BENCH / "results" / "work" / f"soak-{time.strftime('%Y%m%dT%H%M%S')}"
    server = start_raw(www, tmp, [])
    try:
        soak = run_soak(server, work, args.urls, args.concurrency)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if not args.keep:
            subprocess.run(["rm", "-rf", "--", str(work)], check=False)
    print(soak.section(server))
    return 0 if soak.passed() else 1


if __name__ == "__main__":
    sys.exit(main())
