"""The benchmarked clients. Each one turns a Batch (URLs, where to save them, concurrency) into
a command line plus the files it reads, and says afterwards which file holds which URL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CRAWLER_JOB = "bench"
TIMEOUT = {"total": 3600, "sock_connect": 60, "sock_read": 600}


@dataclass
class Batch:
    """One client run: fetch ``urls`` (``rels[i]`` is the path under the root of ``urls[i]``)
    into ``out``; job and list files go to ``work``."""

    urls: list[str]
    rels: list[str]
    out: Path
    work: Path
    concurrency: int
    mode: str = "bytes"  # bytes | text | json: what crawler and the plain script save
    urls_file: Path | None = None  # a ready list of the URLs, one a line (crawler only)


@dataclass
class Client:
    name: str
    binary: str | None  # None: not installed, skipped
    command: Callable[[Client, Batch], list[str]]
    outputs: Callable[[Batch], dict[str, Path]]
    modes: tuple[str, ...] = ("bytes",)
    # Not pinned to the client CPU: it runs processes of its own on every CPU it may use.
    unpinned: bool = False

    @property
    def available(self) -> bool:
        return self.binary is not None


def _by_rel(batch: Batch) -> dict[str, Path]:
    return {url: batch.out / rel for url, rel in zip(batch.urls, batch.rels, strict=True)}


def _make_dirs(batch: Batch) -> None:
    for folder in {str(Path(rel).parent) for rel in batch.rels}:
        (batch.out / folder).mkdir(parents=True, exist_ok=True)


# --- crawler -------------------------------------------------------------------------------


def crawler_job(batch: Batch) -> Path:
    urls_file = batch.urls_file
    if urls_file is None:
        urls_file = batch.work / "urls.txt"
        urls_file.write_text("".join(url + "\n" for url in batch.urls))
    job = {
        "version": 1,
        "concurrency": batch.concurrency,
        "per_host": batch.concurrency,
        "defaults": {"timeout": TIMEOUT},
        "jobs": [{"name": CRAWLER_JOB, "urls_file": str(urls_file), "save": batch.mode}],
    }
    path = batch.work / "job.yaml"
    path.write_text(json.dumps(job, indent=2) + "\n")  # JSON is YAML
    return path


def crawler_command(client: Client, batch: Batch) -> list[str]:
    job = crawler_job(batch)
    options = ["--fresh", "-q", "--no-progress"]
    return [str(client.binary), "run", str(job), "-o", str(batch.out), *options]


def crawler_workers_command(workers: str) -> Callable[[Client, Batch], list[str]]:
    """crawler --workers N over the batch: one host, so the shards split it by URL."""

    def command(client: Client, batch: Batch) -> list[str]:
        argv = crawler_command(client, batch)
        return [*argv, "--workers", workers, "--shard-by", "url"]

    return command


def crawler_outputs(batch: Batch) -> dict[str, Path]:
    """URL -> file, from OUT/manifest.jsonl; a failed request maps to a missing path."""
    found: dict[str, Path] = {}
    manifest = batch.out / "manifest.jsonl"
    if not manifest.exists():
        return found
    with manifest.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if record.get("ok") and record.get("path"):
                found[record["url"]] = batch.out / record["path"]
            else:
                found.setdefault(record["url"], batch.out / "(failed)")
    return found


CRAWL_DEPTH = 10  # deeper than the crawl site: every page is within reach


def crawler_crawl_command(client: Client, batch: Batch) -> list[str]:
    """crawler in crawl mode from the batch's first URL (the site's start page): every page
    of the site, within its folder (scope: prefix), saved as bytes."""
    job = {
        "version": 1,
        "concurrency": batch.concurrency,
        "per_host": batch.concurrency,
        "defaults": {"timeout": TIMEOUT},
        "jobs": [
            {
                "name": CRAWLER_JOB,
                "url": batch.urls[0],
                "save": "bytes",
                "follow": {"depth": CRAWL_DEPTH, "scope": "prefix", "max_pages": 1_000_000},
            }
        ],
    }
    path = batch.work / "job.yaml"
    path.write_text(json.dumps(job, indent=2) + "\n")
    options = ["--fresh", "-q", "--no-progress"]
    return [str(client.binary), "run", str(path), "-o", str(batch.out), *options]


def wget_crawl_command(client: Client, batch: Batch) -> list[str]:
    """wget -r from the site's start page, not above its folder: one connection at a time,
    the files under OUT/<path> as the server sent them."""
    return [
        str(client.binary),
        "--quiet",
        "--recursive",
        f"--level={CRAWL_DEPTH}",
        "--no-parent",
        "--no-host-directories",
        f"--directory-prefix={batch.out}",
        batch.urls[0],
    ]


def crawl_clients() -> dict[str, Client]:
    """The crawl scenario's clients: crawler in crawl mode and wget -r (the comparison users
    make); wget2 -r too when installed."""
    crawler = all_clients()["crawler"]
    clients = {
        "crawler": Client("crawler", crawler.binary, crawler_crawl_command, crawler_outputs),
        "wget": Client("wget", shutil.which("wget"), wget_crawl_command, _by_rel),
    }
    if shutil.which("wget2"):
        clients["wget2"] = Client("wget2", shutil.which("wget2"), wget_crawl_command, _by_rel)
    return clients


# --- the plain aiohttp script --------------------------------------------------------------


def plain_command(client: Client, batch: Batch) -> list[str]:
    _make_dirs(batch)
    pairs = batch.work / "pairs.tsv"
    outputs = _by_rel(batch)
    pairs.write_text("".join(f"{url}\t{outputs[url]}\n" for url in batch.urls))
    script = str(BENCH / "plain_aiohttp.py")
    options = ["--concurrency", str(batch.concurrency), "--mode", batch.mode]
    return [sys.executable, script, str(pairs), *options]


# --- the floor: aiohttp at its cheapest, writing nothing ---------------------------------------

FLOOR = "aiohttp (no writes)"


def floor_command(client: Client, batch: Batch) -> list[str]:
    pairs = batch.work / "pairs.tsv"
    pairs.write_text("".join(f"{url}\t-\n" for url in batch.urls))
    script = str(BENCH / "aiohttp_floor.py")
    report = str(floor_report(batch))
    return [sys.executable, script, str(pairs), report, "--concurrency", str(batch.concurrency)]


def floor_report(batch: Batch) -> Path:
    return batch.work / "floor-lengths.json"


def no_outputs(batch: Batch) -> dict[str, Path]:
    return {}


# --- curl, wget2, aria2c -------------------------------------------------------------------


def curl_command(client: Client, batch: Batch) -> list[str]:
    _make_dirs(batch)
    config = batch.work / "curl.conf"
    outputs = _by_rel(batch)
    config.write_text("".join(f'url = "{url}"\noutput = "{outputs[url]}"\n' for url in batch.urls))
    # Options after --config would apply to a new, empty transfer, so they go first.
    options = ["--parallel", "--parallel-max", str(batch.concurrency), "--silent", "--show-error"]
    return [str(client.binary), *options, "--config", str(config)]


def wget2_command(client: Client, batch: Batch) -> list[str]:
    urls = batch.work / "urls.txt"
    urls.write_text("".join(url + "\n" for url in batch.urls))
    return [
        str(client.binary),
        "--no-config",
        "--quiet",
        f"--max-threads={batch.concurrency}",
        "--force-directories",
        "--no-host-directories",
        f"--directory-prefix={batch.out}",
        f"--input-file={urls}",
    ]


def aria2c_command(client: Client, batch: Batch) -> list[str]:
    listing = batch.work / "aria2c.txt"
    listing.write_text(
        "".join(f"{url}\n  out={rel}\n" for url, rel in zip(batch.urls, batch.rels, strict=True))
    )
    return [
        str(client.binary),
        "--quiet",
        f"--max-concurrent-downloads={batch.concurrency}",
        f"--dir={batch.out}",
        f"--input-file={listing}",
        "--file-allocation=none",
        "--allow-overwrite=true",
        "--auto-file-renaming=false",
        "--console-log-level=error",
        "--summary-interval=0",
        "--download-result=hide",
    ]


# --- the registry --------------------------------------------------------------------------


def all_clients() -> dict[str, Client]:
    bin_dir = Path(sys.executable).parent
    crawler = bin_dir / "crawler"
    return {
        "crawler": Client(
            "crawler",
            str(crawler) if crawler.exists() else shutil.which("crawler"),
            crawler_command,
            crawler_outputs,
            ("bytes", "text", "json"),
        ),
        **{
            f"crawler --workers {n}": Client(
                f"crawler --workers {n}",
                str(crawler) if crawler.exists() else shutil.which("crawler"),
                crawler_workers_command(n),
                crawler_outputs,
                ("bytes",),
                unpinned=True,
            )
            for n in ("1", "2", "auto")
        },
        "plain aiohttp": Client(
            "plain aiohttp", sys.executable, plain_command, _by_rel, ("bytes", "text", "json")
        ),
        FLOOR: Client(FLOOR, sys.executable, floor_command, no_outputs),
        "curl": Client("curl", shutil.which("curl"), curl_command, _by_rel),
        "wget2": Client("wget2", shutil.which("wget2"), wget2_command, _by_rel),
        "aria2c": Client("aria2c", shutil.which("aria2c"), aria2c_command, _by_rel),
    }


def versions() -> dict[str, str]:
    """Versions of the installed command-line clients."""
    found = {}
    names = ("curl", "wget", "wget2", "aria2c")
    for name, flag in ((name, "--version") for name in names):
        binary = shutil.which(name)
        if binary is None:
            continue
        out = subprocess.run([binary, flag], capture_output=True, text=True).stdout
        match = re.search(r"(\d+\.\d+(?:\.\d+)?)", out.splitlines()[0] if out else "")
        found[name] = match.group(1) if match else "unknown"
    return found
