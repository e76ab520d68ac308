"""The package's public names: what `import crawler` promises to callers."""

from __future__ import annotations

import importlib

import crawler
import crawler._version


def test_all_is_pinned():
    assert crawler.__all__ == [
        "ConfigError",
        "CrawlerError",
        "LocalError",
        "OutputBusyError",
        "__version__",
        "load_job_file",
    ]


def test_every_public_name_is_importable():
    module = importlib.import_module("crawler")
    for name in crawler.__all__:
        assert getattr(module, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from crawler import *", namespace)
    assert set(crawler.__all__) <= set(namespace)


def test_the_errors_are_one_hierarchy():
    """A caller can catch every deliberate error with CrawlerError."""
    from crawler import ConfigError, CrawlerError, LocalError, OutputBusyError

    for error in (ConfigError, LocalError, OutputBusyError):
        assert issubclass(error, CrawlerError)
    assert issubclass(LocalError, OSError)


def test_load_job_file_is_callable():
    assert callable(crawler.load_job_file)


def test_version_is_the_one_in_version_module():
    assert crawler.__version__ == crawler._version.__version__
    assert isinstance(crawler.__version__, str) and crawler.__version__
