"""Which shard of N a request belongs to (C15): the same answer on every machine, in every
run and under every PYTHONHASHSEED, so each shard can read the whole input lazily and keep
its own part with no splitter process, shared queue or IPC.

``host`` mode (the default): every request to one host lands in one shard, so per-host
limits, Crawl-delay and robots.txt stay exact (as Nutch, StormCrawler and Heritrix partition:
each host has one owner). ``url`` mode spreads by request identity, for a job with one huge
host; each shard then gets a share of the per-host limits (``per_host_share``).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .expand import FetchTask

SHARD_BY = ("host", "url")
_SPEC = re.compile(r"^\s*(\d{1,9})\s*/\s*(\d{1,9})\s*$")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int
    by: str = "host"

    @property
    def name(self) -> str:
        return f"{self.index}-of-{self.count}"


def parse_shard(text: str) -> Shard:
    """``K/N`` as a Shard; ValueError saying what is wrong otherwise."""
    match = _SPEC.match(text)
    if match is None:
        raise ValueError(f"expected K/N (shard K of N, 0 <= K < N), not {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ValueError(f"N must be at least 1, not {count}")
    if not 0 <= index < count:
        raise ValueError(f"K must be between 0 and {count - 1} (N is {count}), not {index}")
    return Shard(index, count)


def host_name(host: str) -> str:
    """A host as sharding compares it: lower-cased ASCII (IDNA), no trailing dot, no port."""
    return host.rstrip(".").lower()


def stable_bucket(text: str, count: int) -> int:
    """``text``'s bucket of ``count``: 8 bytes of BLAKE2b, never Python's salted hash()."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def shard_of(task: FetchTask, count: int, by: str = "host") -> int:
    """The shard (0..count-1) ``task`` belongs to. A urls_file line that is not a URL
    belongs to shard 0, so it is recorded exactly once."""
    if count == 1 or task.invalid:
        return 0
    if by == "url":
        return stable_bucket(task.key, count)
    return stable_bucket(host_name(task.url.raw_host or ""), count)


def only_shard(tasks: Iterator[FetchTask], shard: Shard) -> Iterator[FetchTask]:
    """The tasks of ``shard``, read lazily from the whole stream."""
    if shard.count == 1:
        yield from tasks
        return
    for task in tasks:
        if shard_of(task, shard.count, shard.by) == shard.index:
            yield task


def per_host_share(per_host: int, count: int) -> int:
    """``per_host`` for one of ``count`` url-mode shards: divided, rounded down."""
    return per_host // count


def rate_share(rate: float | None, count: int) -> float | None:
    """``rate_per_host`` for one of ``count`` url-mode shards: divided, rounded down to a
    whole rate when that leaves at least one request a second, else the exact fraction (a
    rate of 0 would mean no limit)."""
    if rate is None:
        return None
    share = rate / count
    return float(math.floor(share)) if share >= 1 else share


# --shard auto: (scheduler, index variable, count variable); Slurm's are read specially.
_K8S = ("Kubernetes Indexed Job", "JOB_COMPLETION_INDEX", "CRAWLER_SHARDS")
_SLURM = ("Slurm array", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT")
_AWS = ("AWS Batch array", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE")
_LOOKED_FOR = (
    "JOB_COMPLETION_INDEX with CRAWLER_SHARDS (Kubernetes Indexed Job), SLURM_ARRAY_TASK_ID "
    "with SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT (Slurm array), "
    "AWS_BATCH_JOB_ARRAY_INDEX with AWS_BATCH_JOB_ARRAY_SIZE (AWS Batch array)"
)


def _int(environ: dict[str, str], name: str) -> int:
    value = environ.get(name, "").strip()
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"--shard auto: {name}={environ.get(name, '')!r} is not a whole number")
    return int(value)


def shard_from_environment(environ: dict[str, str]) -> tuple[Shard, str]:
    """(shard, scheduler name) from a batch scheduler's array variables; ValueError naming
    the variables looked for when there are none, too many, or they do not add up."""
    present = [s for s in (_K8S, _SLURM, _AWS) if environ.get(s[1], "").strip() != ""]
    if not present:
        raise ValueError(
            f"--shard auto: no batch scheduler's variables set; looked for {_LOOKED_FOR}"
        )
    if len(present) > 1:
        names = " and ".join(f"{s[1]} ({s[0]})" for s in present)
        raise ValueError(f"--shard auto: variables of two schedulers are set: {names}")
    scheduler, index_var, count_var = present[0]
    if environ.get(count_var, "").strip() == "":
        raise ValueError(f"--shard auto: {index_var} is set but {count_var} is not ({scheduler})")
    index, count = _int(environ, index_var), _int(environ, count_var)
    if present[0] is _SLURM:
        index = _slurm_index(environ, index, count)
    if count < 1 or not 0 <= index < count:
        raise ValueError(
            f"--shard auto: index {index} is out of range for {count} shards "
            f"({index_var}, {count_var}; {scheduler})"
        )
    return Shard(index, count), scheduler


def _slurm_index(environ: dict[str, str], task_id: int, count: int) -> int:
    """The 0-based shard of a Slurm array task; a stepped (``--array=0-9:2``) or sparse
    (``--array=1,4,7``) array is refused, since its tasks would not cover 0..N-1."""
    step = environ.get("SLURM_ARRAY_TASK_STEP", "1").strip() or "1"
    if step != "1":
        raise ValueError(
            f"--shard auto: a stepped Slurm array (SLURM_ARRAY_TASK_STEP={step}) is refused; "
            "submit a contiguous one such as --array=0-7 for 8 shards"
        )
    if environ.get("SLURM_ARRAY_TASK_MIN", "").strip() == "":
        raise ValueError("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN is not")
    low = _int(environ, "SLURM_ARRAY_TASK_MIN")
    if environ.get("SLURM_ARRAY_TASK_MAX", "").strip() != "":
        high = _int(environ, "SLURM_ARRAY_TASK_MAX")
        if high - low + 1 != count:
            raise ValueError(
                f"--shard auto: a sparse Slurm array is refused (SLURM_ARRAY_TASK_MIN={low}, "
                f"SLURM_ARRAY_TASK_MAX={high}, SLURM_ARRAY_TASK_COUNT={count}); submit a "
                "contiguous one such as --array=0-7 for 8 shards"
            )
    return task_id - low


@dataclass(slots=True)
class ShardCounts:
    """What each shard of a plan would fetch, for ``crawler validate --shards N``."""

    requests: list[int]
    hosts: list[set[str]]
    busiest_host: tuple[str, int]  # the host with the most requests, and how many
    total: int

    def lines(self) -> list[str]:
        count = len(self.requests)
        return [
            f"shard {k}-of-{count}: {self.requests[k]} requests, {len(self.hosts[k])} hosts"
            for k in range(count)
        ]

    def skew_warning(self, by: str) -> str | None:
        """A warning when one host holds more than a shard's fair share in host mode."""
        count = len(self.requests)
        host, most = self.busiest_host
        if by != "host" or count < 2 or self.total == 0 or most * count <= self.total:
            return None
        share = 100 * most / self.total
        return (
            f"warning: host {host} has {most} of {self.total} requests ({share:.0f}%); "
            f"--shard-by host keeps a host in one shard, so that shard does at least {most}. "
            "--shard-by url spreads them (each shard then gets per_host and rate_per_host "
            f"divided by {count})"
        )


def count_shards(tasks: Iterator[FetchTask], count: int, by: str) -> ShardCounts:
    requests = [0] * count
    hosts: list[set[str]] = [set() for _ in range(count)]
    per_host: dict[str, int] = {}
    total = 0
    for task in tasks:
        k = shard_of(task, count, by)
        requests[k] += 1
        total += 1
        if task.invalid:
            continue
        host = host_name(task.url.raw_host or "")
        hosts[k].add(host)
        per_host[host] = per_host.get(host, 0) + 1
    busiest = max(per_host.items(), key=lambda item: item[1], default=("-", 0))
    return ShardCounts(requests, hosts, busiest, total)
