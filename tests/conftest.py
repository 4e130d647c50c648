"""pytest hooks and autouse fixtures only; shared helpers live in the `helpers` package."""
from __future__ import annotations

import os

import pytest

from helpers import fixtures

# CI sets this: a test that cannot run here (a missing extra such as `[ray]`, a missing module) fails instead of
# skipping quietly; only a skip whose reason starts with "machine:" (what the hardware lacks) stays a skip.
REQUIRE_ALL = "YOLOR_REQUIRE_ALL"
MACHINE_REASON = "machine:"


_TEST_THREADS = 1 if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 else 2


@pytest.fixture(autouse=True)
def _torch_threads():
    """Run every test with 2 intra-op threads (1 in each of several pytest-xdist workers, so the workers do not
    oversubscribe the cores) and restore afterwards. Results do not depend on the count beyond fp32 noise:
    the tolerances come from measured noise, which includes a run on another thread count."""
    try:
        import torch
    except ImportError:  # torch-free test environments
        yield
        return
    from yolor_deploy.nn.decode import Decode

    before, decode = torch.get_num_threads(), Decode.forward
    torch.set_num_threads(_TEST_THREADS)
    yield
    torch.set_num_threads(before)
    # export-time rewrites must never leak out of their context into eager models
    assert Decode.forward is decode, "Decode.forward was left patched"


def pytest_configure(config):
    """The tests read the CLI's words, not where Rich wraps its lines: a wide console for every run, in-process
    and in the subprocesses that inherit the environment (temp paths differ in length per xdist worker)."""
    os.environ["COLUMNS"] = "250"


def pytest_report_header(config):
    """The CPU and its ISA flags beside every number the tests print (fp32 results depend on them)."""
    from yolor_deploy.sysinfo import cpu_line

    return [f"cpu: {cpu_line()}"]


# The modules that take longest (worker-seconds on 2 cores, `--durations`), run first: CI runs pytest-xdist with
# `--dist loadscope` (a module at a time to an idle worker, so its module fixtures are made once), and handing out
# the longest first makes both workers finish together (longest-processing-time-first scheduling).
SLOW_MODULES = ("tests/nn/test_variants.py", "tests/export/test_export.py", "tests/optimize/test_guarded.py",
                "tests/verify/test_verify_catalogue.py", "tests/distributed/test_ray_serve.py",
                "tests/optimize/test_optimize.py", "tests/optimize/test_agreement.py",
                "tests/optimize/test_label_free_pick.py", "tests/verify/test_verify_cli.py",
                "tests/export/test_openvino.py", "tests/quantize/test_quantize.py")


def _slow_first(items) -> None:
    rank = {m: k for k, m in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: order kept within


def pytest_collection_modifyitems(config, items):
    """Slow modules first (`SLOW_MODULES`). A bare clone (no upstream-made fixtures): each test that needs them is
    skipped, all with one reason."""
    _slow_first(items)
    if not fixtures.MISSING:
        return
    skip = pytest.mark.skip(reason=fixtures.REASON)
    marked = [item for item in items if fixtures.needs_fixtures(item)]
    for item in marked:
        item.add_marker(skip)
    config.stash[_SKIPPED_FOR_FIXTURES] = len(marked)


def pytest_terminal_summary(terminalreporter, config):
    n = config.stash.get(_SKIPPED_FOR_FIXTURES, None)
    if n is not None:
        terminalreporter.write_line(f"{n} tests skipped at collection: {fixtures.REASON} (looked in {fixtures.SHARED})")


_SKIPPED_FOR_FIXTURES = pytest.StashKey[int]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_quiet_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_quiet_skip(outcome.get_result())  # a module-level pytest.importorskip


def _fail_quiet_skip(report) -> None:
    """With YOLOR_REQUIRE_ALL=1, a skip (other than "machine: ...") becomes a failure that says why."""
    if not report.skipped or os.environ.get(REQUIRE_ALL) != "1" or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if reason.removeprefix("Skipped: ").startswith(MACHINE_REASON):
        return
    report.outcome = "failed"
    report.longrepr = (f"{REQUIRE_ALL}=1: this would have been skipped ({reason}); install what it needs "
                       f"(pip install -e '.[export,runtime,serve,ray,optimize,dev]'), or say '{MACHINE_REASON} ...' "
                       f"when the hardware lacks something")
