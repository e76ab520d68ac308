"""The command line: argparse, logging set-up, asyncio.run, errors to exit codes (C1).
No crawl logic lives here."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import eventloop, exitcodes
from ._version import __version__
from .config.jobfile import load_job_file
from .config.spec import JobFile
from .errors import ConfigError, LocalError, OutputBusyError
from .logs import setup_logging, summary_json
from .output.manifest import utc_now
from .report.metrics import write_metrics
from .report.report import ReportError, write_report
from .report.summary import summary_line
from .run.runner import Run, RunOptions
from .run.supervisor import usable_cpus
from .tasks.dryrun import print_dry_run
from .tasks.expand import interleave
from .tasks.shard import (
    SHARD_BY,
    Shard,
    count_shards,
    parse_shard,
    per_host_share,
    rate_share,
    shard_from_environment,
)
from .tasks.validate import UrlWarnings, check_urls_files

if TYPE_CHECKING:  # the live display (and rich) load only when it is shown
    from .progress import Progress

log = logging.getLogger("crawler")


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage already, which is C1's code for it."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="crawler", description="Fetch many URLs from a YAML job file.")
    parser.add_argument("--version", action="version", version=f"crawler {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="fetch everything the job file describes")
    run.add_argument("job", metavar="JOB.yaml")
    run.add_argument("-o", "--out", type=Path, help="output folder (relative to the current one)")
    run.add_argument("-c", "--concurrency", type=_positive_int, help="requests in flight at once")
    run.add_argument("--fresh", action="store_true", help="start a new run, do not resume")
    run.add_argument("--dry-run", action="store_true", help="print each request, fetch nothing")
    run.add_argument(
        "--metrics",
        type=Path,
        metavar="FILE",
        help="write the run's metrics to FILE in Prometheus text format (node_exporter's "
        "textfile collector), replacing it atomically",
    )
    run.add_argument(
        "--shard",
        metavar="K/N|auto",
        help="run shard K of N (0 <= K < N) into OUT/shards/K-of-N; auto: K and N from the "
        "batch scheduler (Kubernetes Indexed Job, Slurm array, AWS Batch array)",
    )
    run.add_argument(
        "--workers",
        metavar="N|auto",
        type=_workers,
        help="run N shard processes on this machine (auto: one per usable CPU), then merge",
    )
    _shard_by_flag(run)
    _output_flags(run)

    validate = commands.add_parser("validate", help="check the job file; print every problem")
    validate.add_argument("job", metavar="JOB.yaml")
    validate.add_argument(
        "--shards", type=_positive_int, metavar="N", help="also print requests and hosts per shard"
    )
    _shard_by_flag(validate)

    merge = commands.add_parser("merge", help="combine the finished shards of an output folder")
    merge.add_argument("out", metavar="OUT", type=Path, help="the output folder")
    merge.add_argument("--shards", type=_positive_int, metavar="N", help="how many shards")

    report = commands.add_parser("report", help="write an HTML report of a run; print its path")
    report.add_argument("out", metavar="OUT", type=Path, help="the run's output folder")
    report.add_argument("--run", metavar="ID", help="the run to report (default: the last)")
    report.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="where to write it (default: OUT/.crawler/report-<run>.html)",
    )

    demo = commands.add_parser("demo", help="run configs/demo.yaml against the bundled site")
    demo.add_argument("-o", "--out", type=Path, default=Path("crawler-demo"))
    _output_flags(demo)
    return parser


def _workers(text: str) -> int:
    """N, or 0 for auto (resolved once the job file's concurrency is known)."""
    return 0 if text == "auto" else _positive_int(text)


def _shard_by_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard-by",
        choices=SHARD_BY,
        default="host",
        help="host (default): each host in one shard; url: spread by request, with per_host "
        "and rate_per_host divided among the shards",
    )


def _output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="live progress on stderr (default: when stderr is a terminal)",
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors and the summary")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.__dict__.get("log_format", "text"), args.__dict__.get("quiet", False))
    started_at = utc_now()
    try:
        if args.command == "validate":
            return _validate(args.job, args.shards, args.shard_by)
        if args.command == "merge":
            from .output.merge import merge_command

            return merge_command(args.out, args.shards)
        if args.command == "report":
            return _report(args.out, args.run, args.output)
        if args.command == "demo":
            from .demo_site import demo_job_path, run_demo

            demo = run_demo(args.out.absolute(), demo_job_path(), _progress(args))
            return eventloop.run(demo)
        return _run(args, started_at)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return exitcodes.USAGE
    except _UsageError as exc:
        print(f"crawler: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except ReportError as exc:
        print(f"crawler: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except OutputBusyError as exc:
        print(f"crawler: {exc}", file=sys.stderr)
        return exitcodes.BUSY
    except LocalError as exc:
        print(f"crawler: {exc}", file=sys.stderr)
        if args.command == "run" and args.metrics is not None:
            _metrics(args, {"started_at": started_at, "finished_at": utc_now()}, exitcodes.LOCAL)
        return exitcodes.LOCAL
    except BrokenPipeError:
        # `crawler run --dry-run | head`: the reader left; that is not an error.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace, started_at: str) -> int:
    """`crawler run`: dry run, or the run, its summary line and --metrics."""
    if args.metrics is not None and not args.metrics.absolute().parent.is_dir():
        print(f"crawler: --metrics: no folder {args.metrics.parent}", file=sys.stderr)
        return exitcodes.USAGE
    try:
        job_file = load_job_file(args.job)
    except ConfigError:
        if args.metrics is not None and not args.dry_run:
            _metrics(args, {"started_at": started_at, "finished_at": utc_now()}, exitcodes.USAGE)
        raise
    if args.shard is not None and args.workers is not None:
        raise _usage("--shard and --workers: give one (--workers runs every shard itself)")
    shard = None
    if args.shard is not None:
        shard = _shard(args.shard, args.shard_by)
    elif args.workers is not None and not args.dry_run:
        from .run.supervisor import Supervisor

        count = _usable_workers(args.workers, args.concurrency or job_file.concurrency)
        return Supervisor(args, job_file, count).run()
    if shard is not None and shard.by == "url":
        job_file = _url_mode_limits(job_file, shard.count)
    if args.dry_run:
        print_dry_run(job_file, args.out, shard)
        return 0
    options = RunOptions(args.out, args.concurrency, args.fresh, shard)
    summary = execute(job_file, options, _progress(args, job_file), args.log_format)
    if args.metrics is not None:
        _metrics(args, summary, int(summary["exit_code"]))
    return int(summary["exit_code"])


def _report(out: Path, run: str | None, target: Path | None) -> int:
    try:
        print(write_report(out, run, target))
    except OSError as exc:
        where = target or out
        reason = exc.strerror or str(exc)
        print(f"crawler: cannot write the report to {where}: {reason}", file=sys.stderr)
        return exitcodes.LOCAL
    return 0


def _progress(args: argparse.Namespace, job_file: JobFile | None = None) -> Progress | None:
    """The live display: asked for, or by default when stderr is a terminal; never with -q."""
    wanted = args.progress if args.progress is not None else sys.stderr.isatty()
    if not wanted or args.quiet:
        return None
    from .progress import Progress

    return Progress(sys.stderr, job_file.jobs if job_file else ())


def _metrics(args: argparse.Namespace, summary: dict[str, Any], exit_code: int) -> None:
    """Write --metrics FILE, labelled with the job file's name; a failure to write it is
    reported and leaves the exit code as it is (a stale file is what an alert catches)."""
    try:
        write_metrics(args.metrics, {**summary, "exit_code": exit_code}, Path(args.job).stem)
    except OSError as exc:
        print(f"crawler: cannot write metrics {args.metrics}: {exc}", file=sys.stderr)


def _validate(path: str, shards: int | None = None, shard_by: str = "host") -> int:
    job_file = load_job_file(path)
    if shards is not None and shard_by == "url":
        _url_mode_limits(job_file, shards)
    warnings = UrlWarnings(sys.stderr.write)
    problems = check_urls_files(job_file, warnings)
    if problems:
        raise ConfigError(problems)
    warnings.finish()
    print(f"{path}: ok, {len(job_file.jobs)} job(s)")
    if shards is not None:
        counts = count_shards(interleave(job_file.jobs), shards, shard_by)
        print("\n".join(counts.lines()))
        warning = counts.skew_warning(shard_by)
        if warning:
            print(f"crawler: {warning}", file=sys.stderr)
    return 0


class _UsageError(Exception):
    """A command-line problem found after parsing (exit 2)."""


def _usage(message: str) -> _UsageError:
    return _UsageError(message)


def _shard(spec: str, by: str) -> Shard:
    """--shard K/N or auto, as a Shard; a usage error saying what is wrong otherwise."""
    try:
        if spec.strip() == "auto":
            shard, scheduler = shard_from_environment(dict(os.environ))
            log.warning("--shard auto: shard %s, from the %s's variables", shard.name, scheduler)
        else:
            shard = parse_shard(spec)
    except ValueError as exc:
        message = str(exc)
        raise _usage(message if message.startswith("--shard") else f"--shard: {message}") from None
    return replace(shard, by=by)


def _url_mode_limits(job_file: JobFile, count: int) -> JobFile:
    """--shard-by url: each shard's share of the per-host limits (C15)."""
    if job_file.per_host < count:
        raise _usage(
            f"--shard-by url: per_host ({job_file.per_host}) is below the number of shards "
            f"({count}): each shard would get less than one request per host; raise per_host "
            "or use --shard-by host"
        )
    return replace(
        job_file,
        per_host=per_host_share(job_file.per_host, count),
        rate_per_host=rate_share(job_file.rate_per_host, count),
    )


def _usable_workers(wanted: int, concurrency: int) -> int:
    if wanted == 0:  # auto: one per usable CPU, never more than requests in flight
        return max(1, min(usable_cpus(), concurrency))
    if wanted > concurrency:
        raise _usage(
            f"--workers {wanted}: more workers than concurrency ({concurrency}); each worker "
            "needs at least one request in flight"
        )
    return wanted


def execute(
    job_file: JobFile, options: RunOptions, progress: Progress | None, log_format: str = "text"
) -> dict[str, Any]:
    """Run a validated job file, print the summary line (as a JSON log line with the whole
    summary under ``summary`` for ``--log-format json``), return the summary (its
    ``exit_code`` is the process's).

    For someone at a terminal, a line after the summary says how to open the run's HTML
    report (``report: crawler report OUT``); not with ``-q`` (only errors and the summary),
    not for ``--log-format json`` (every line a JSON object) and not without a terminal
    (cron: warnings and one summary, C13)."""
    run = Run(job_file, options, on_finished=progress.update if progress else None)
    summary = eventloop.run(_with_progress(run, progress))
    line = summary_line(summary)
    print(summary_json(line, summary) if log_format == "json" else line, file=sys.stderr)
    if "error" in summary:
        print(f"crawler: {summary['error']}", file=sys.stderr)
    quiet = not logging.getLogger("crawler").isEnabledFor(logging.WARNING)  # -q
    if log_format == "text" and not quiet and sys.stderr.isatty():
        import shlex

        print(f"report: crawler report {shlex.quote(str(summary['out']))}", file=sys.stderr)
    return summary


async def _with_progress(run: Run, progress: Progress | None) -> dict[str, Any]:
    if progress is None:
        return await run.run()
    async with progress.running(run):
        return await run.run()
