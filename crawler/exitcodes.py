"""The process's exit codes (C1), in one place: the command line returns them, the runner
computes a run's, the report and the metrics explain them."""

from __future__ import annotations

import signal

OK = 0  # every request succeeded
FAILED = 1  # the run finished; at least one request failed after its retries
USAGE = 2  # the command line or job file is invalid; nothing was fetched
BUSY = 3  # another run holds the output folder
LOCAL = 4  # a local problem stopped the run (disk full, folder not writable)
SHARD_MISSING = 5  # `crawler merge`: a shard is missing or unfinished
BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}

# A run that ended with one of these finished: the next invocation starts a new run.
FINISHED = frozenset({OK, FAILED})

MEANING = {
    OK: "every request succeeded",
    FAILED: "finished; some requests failed",
    LOCAL: "stopped by a local problem; the next run resumes",
    130: "interrupted (SIGINT); the next run resumes",
    143: "interrupted (SIGTERM); the next run resumes",
}
