"""The command line: argparse, logging set-up, asyncio.run, errors to exit codes (C1).
No crawl logic lives here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import load_job_file
from .dryrun import print_dry_run
from .errors import ConfigError, LocalError, OutputBusyError
from .logs import setup_logging
from .progress import Progress
from .runner import Run, RunOptions
from .spec import JobFile
from .summary import summary_line
from .validate import check_urls_files

log = logging.getLogger("crawler")

EXIT_USAGE, EXIT_BUSY, EXIT_LOCAL = 2, 3, 4


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
    _output_flags(run)

    validate = commands.add_parser("validate", help="check the job file; print every problem")
    validate.add_argument("job", metavar="JOB.yaml")

    demo = commands.add_parser("demo", help="run configs/demo.yaml against the bundled site")
    demo.add_argument("-o", "--out", type=Path, default=Path("crawler-demo"))
    _output_flags(demo)
    return parser


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
    try:
        if args.command == "validate":
            return _validate(args.job)
        if args.command == "demo":
            from .demo_site import demo_job_path, run_demo

            demo = run_demo(args.out.absolute(), demo_job_path(), _progress(args))
            return asyncio.run(demo)
        job_file = load_job_file(args.job)
        if args.dry_run:
            print_dry_run(job_file, args.out)
            return 0
        return execute(
            job_file, RunOptions(args.out, args.concurrency, args.fresh), _progress(args)
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except OutputBusyError as exc:
        print(f"crawler: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except LocalError as exc:
        print(f"crawler: {exc}", file=sys.stderr)
        return EXIT_LOCAL
    except BrokenPipeError:
        # `crawler run --dry-run | head`: the reader left; that is not an error.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _progress(args: argparse.Namespace) -> Progress | None:
    wanted = args.progress if args.progress is not None else sys.stderr.isatty()
    return Progress(sys.stderr) if wanted and not args.quiet else None


def _validate(path: str) -> int:
    job_file = load_job_file(path)
    problems = check_urls_files(job_file)
    if problems:
        raise ConfigError(problems)
    print(f"{path}: ok, {len(job_file.jobs)} job(s)")
    return 0


def execute(job_file: JobFile, options: RunOptions, progress: Progress | None) -> int:
    """Run a validated job file, print the summary line, return the exit code."""
    run = Run(job_file, options, on_finished=progress.update if progress else None)
    summary = asyncio.run(_with_progress(run, progress))
    print(summary_line(summary), file=sys.stderr)
    if "error" in summary:
        print(f"crawler: {summary['error']}", file=sys.stderr)
    return int(summary["exit_code"])


async def _with_progress(run: Run, progress: Progress | None) -> dict[str, Any]:
    if progress is None:
        return await run.run()
    async with progress.running():
        return await run.run()
