"""A bare clone (no ../shared/fixtures) collects the whole suite without an error: the tests that need the
upstream-made fixtures are skipped with one reason, and enough remain that the suite still means something.
YOLOR_SHARED set to a folder without fixtures/ simulates the bare clone (no fallback to ../shared)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from helpers import fixtures

# tests that run without the fixtures (collected minus skipped at collection): 611 on 2026-12-03 (README, Tests)
FLOOR = 500


def test_bare_clone_collects_with_the_fixture_tests_skipped():
    # the bare clone is not CI: without YOLOR_REQUIRE_ALL, skips stay skips
    env = {k: v for k, v in os.environ.items() if k != "YOLOR_REQUIRE_ALL"} | {"YOLOR_SHARED": "/nonexistent"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=fixtures.REPO, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert not re.search(r"\berrors?\b", out.splitlines()[-1]), out[-3000:]
    assert "ERROR " not in out, out[-3000:]
    collected = re.search(r"^(\d+) tests? collected", out, re.M)
    marked = re.search(r"^(\d+) tests skipped at collection: (.*) \(looked in /nonexistent\)$", out, re.M)
    assert collected, out[-3000:]
    assert marked, f"the fixtures were found although YOLOR_SHARED=/nonexistent:\n{out[-3000:]}"
    assert marked.group(2) == fixtures.REASON  # one reason, the same everywhere
    assert int(marked.group(1)) > 0
    assert int(collected.group(1)) - int(marked.group(1)) > FLOOR, out[-3000:]
