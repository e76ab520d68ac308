"""crawler: fetch many URLs concurrently from a YAML job file and save every result safely."""

from __future__ import annotations

from ._version import __version__
from .config.jobfile import load_job_file
from .errors import ConfigError, CrawlerError, LocalError, OutputBusyError

__all__ = [
    "ConfigError",
    "CrawlerError",
    "LocalError",
    "OutputBusyError",
    "__version__",
    "load_job_file",
]
