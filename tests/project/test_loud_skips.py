"""With YOLOR_REQUIRE_ALL=1 (CI) a skipped test fails, unless the skip names a machine reason ("machine: ...");
without it, skips stay skips (a bare checkout without the extras still runs)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
CASES = '''
import pytest

def test_passes():
    pass

def test_machine_skip():
    pytest.skip("machine: no GPU here")

def test_missing_thing():
    pytest.importorskip("no_such_module_yolor_xyz")
'''
MODULE_SKIP = """
import pytest

pytest.importorskip("no_such_module_yolor_xyz")


def test_never():
    pass
"""


def run_pytest(folder: Path, require_all: bool) -> dict[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "YOLOR_REQUIRE_ALL"}
    if require_all:
        env["YOLOR_REQUIRE_ALL"] = "1"
    src = str(TESTS.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, str(TESTS), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--continue-on-collection-errors", str(folder)],
                         capture_output=True, text=True, env=env, cwd=folder, timeout=300).stdout
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|skipped|failed|errors?)", out.splitlines()[-1])}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("loud-skips")
    shutil.copy(TESTS / "conftest.py", d / "conftest.py")
    (d / "test_cases.py").write_text(CASES)
    (d / "test_module_skip.py").write_text(MODULE_SKIP)
    return d


def test_skips_stay_skips_by_default(folder):
    assert run_pytest(folder, require_all=False) == {"passed": 1, "skipped": 3}


def test_require_all_turns_quiet_skips_into_failures(folder):
    assert run_pytest(folder, require_all=True) == {"passed": 1, "skipped": 1, "failed": 1, "error": 1}
