"""urls_file lines that are not URLs (C17): data, not configuration. `crawler validate` and
`--dry-run` print them as warnings, ``URLSFILE:LINE: warning: ...`` (the file as the job file
names it), the first ``MAX_REPORTED`` of each file and then how many more; the run records
each as ``invalid_url``. A file that cannot be read is a problem of the job file (exit 2)."""

from __future__ import annotations

from collections.abc import Callable

from ..config.spec import JobFile, JobSpec
from ..errors import Problem
from .expand import FetchTask, iter_urls_file, line_problem

MAX_REPORTED = 20  # per file: past this, a count


class UrlWarnings:
    """Counts the invalid lines of each urls_file and prints the first of them."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self._write = write
        self._counts: dict[str, int] = {}

    def add(self, job: JobSpec, line: int, problem: str) -> None:
        name = job.source.urls_file_as_written or str(job.source.urls_file)
        count = self._counts[name] = self._counts.get(name, 0) + 1
        if count <= MAX_REPORTED:
            self._write(f"{name}:{line}: warning: {_printable(problem)}\n")

    def add_task(self, task: FetchTask) -> None:
        if task.invalid is not None:
            self.add(task.job, task.line, task.invalid)

    def finish(self) -> None:
        for name, count in self._counts.items():
            if count > MAX_REPORTED:
                self._write(
                    f"{name}: warning: {count - MAX_REPORTED} more lines that are not URLs "
                    f"({count} in all); the run records each as invalid_url\n"
                )


def _printable(text: str) -> str:
    """Control characters escaped: a warning is one line and never drives the terminal."""
    return "".join(c if c >= " " and c != "\x7f" else f"\\x{ord(c):02x}" for c in text)


def check_urls_files(job_file: JobFile, warnings: UrlWarnings) -> list[Problem]:
    """Read every urls_file once: lines that are not URLs go to ``warnings``; a file that
    cannot be read is a problem."""
    problems: list[Problem] = []
    for index, job in enumerate(job_file.jobs):
        path = job.source.urls_file
        if path is None:
            continue
        try:
            for _, url, line in iter_urls_file(path):
                problem = line_problem(url)
                if problem is not None:
                    warnings.add(job, line, problem)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            problems.append(
                Problem(str(path), 1, f"jobs[{index}].urls_file", f"cannot read: {reason}")
            )
    return problems
