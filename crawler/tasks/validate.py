"""Checks beyond the job file itself for `crawler validate`: every line of every urls_file,
streamed, reported as FILE:LINE like job file problems."""

from __future__ import annotations

from ..config.spec import JobFile
from ..errors import Problem
from ..urls import url_problem
from .expand import iter_urls_file

MAX_REPORTED = 100  # per file: past this, a count


def check_urls_files(job_file: JobFile) -> list[Problem]:
    problems: list[Problem] = []
    for index, job in enumerate(job_file.jobs):
        path = job.source.urls_file
        if path is None:
            continue
        bad = 0
        try:
            for _, url, line in iter_urls_file(path):
                problem = url_problem(url)
                if problem is None:
                    continue
                bad += 1
                if bad <= MAX_REPORTED:
                    problems.append(Problem(str(path), line, f"jobs[{index}].urls_file", problem))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            problems.append(
                Problem(str(path), 1, f"jobs[{index}].urls_file", f"cannot read: {reason}")
            )
            continue
        if bad > MAX_REPORTED:
            problems.append(
                Problem(
                    str(path),
                    1,
                    f"jobs[{index}].urls_file",
                    f"{bad - MAX_REPORTED} more invalid URLs not shown",
                )
            )
    return problems
