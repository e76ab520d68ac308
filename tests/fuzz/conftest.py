"""Hypothesis profiles for tests/fuzz, chosen by HYPOTHESIS_PROFILE (default "ci").

- ci: a small fixed budget, the same examples every run (derandomize), no example database
  written into the repository; all of tests/fuzz stays within about a minute on 2 CPUs.
- fuzz: many more examples, random each run (`make fuzz`); still no database, so a failure is
  reproduced from the printed example (and the @reproduce_failure blob Hypothesis prints).

The chaos and soak tests read the same variable: under "fuzz" they kill more and fetch more.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "database": None,
    "deadline": None,  # an example may run crawler in a subprocess; time is budgeted instead
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=40, derandomize=True, **_COMMON)
settings.register_profile("fuzz", max_examples=2000, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def long_run() -> bool:
    """True under `make fuzz`: chaos and soak tests do their long versions."""
    return PROFILE == "fuzz"


def examples(share: float, at_least: int = 1) -> int:
    """A share of the profile's max_examples, for tests whose examples are slow."""
    return max(at_least, int(settings().max_examples * share))
