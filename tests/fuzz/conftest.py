"""Fuzzing profile: a small sample in `make test`, at least 100 000 cases in `make fuzz`.

``FLOORWALKER_FUZZ_EXAMPLES`` sets the examples per fuzz test (``make fuzz`` sets it so the
fuzz tests together run well over 100 000 cases). No deadline: a slow machine must not fail
a fuzz test, only a wrong answer may.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("FLOORWALKER_FUZZ_EXAMPLES", "200"))

settings.register_profile(
    "floorwalker-fuzz",
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=EXAMPLES <= 200,  # the small sample in `make test` is the same every run
)
FUZZ = settings.get_profile("floorwalker-fuzz")
#: For parsers that go through a file and YAML (about 10 ms a case): a tenth of the cases.
FUZZ_SLOW = settings(FUZZ, max_examples=max(50, EXAMPLES // 10))
