"""Paths to the upstream-made fixtures in ../shared (or $YOLOR_SHARED) and loaders for their arrays.

A bare clone (no ../shared) still collects and runs: the fixtures are then `MISSING`, and every test that
needs them is skipped with one reason, `REASON`: at collection time by the hook in tests/conftest.py (which
asks `needs_fixtures`), and, as a net, by `fixture_path` itself (a test while it runs, a module whose import
reads a fixture). Setting YOLOR_SHARED to a folder without fixtures/ simulates a bare clone (no fallback).
"""
from __future__ import annotations

import functools
import os
import types
from pathlib import Path, PurePath

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
ENV = "YOLOR_SHARED"
REASON = f"fixtures: the upstream-made fixtures are not here (../shared/fixtures); set {ENV} to run these"


def _find_shared() -> tuple[Path, bool]:
    """The project's shared data (upstream-made fixtures): $YOLOR_SHARED alone when it is set, else
    ../shared, else /work/shared. Returns the folder and whether its fixtures/ is there."""
    if os.environ.get(ENV):
        cands = [Path(os.environ[ENV])]
    else:
        cands = [REPO.parent / "shared", Path("/work/shared")]
    for cand in cands:
        if (cand / "fixtures").is_dir():
            return cand, True
    return cands[0], False


SHARED, _FOUND = _find_shared()
MISSING = not _FOUND
FIXTURES = SHARED / "fixtures"  # does not exist when MISSING
INPUTS = {"320x320": "input-320x320.npy", "256x320": "input-256x320.npy", "horses-320": "horses-320.npy"}
PAPER_FIXTURES = ["paper-p6-tiny", "paper-e6-tiny", "paper-ssss-s2d", "paper-p6-tiny-nc3"]
MAIN_FIXTURES = ["main-csp-tiny", "main-p6-tiny", "main-csp-tiny-nc3"]


def require_fixtures() -> None:
    """Skip (the test, or the whole module when called at import) with `REASON` if the fixtures are missing."""
    if MISSING:
        pytest.skip(REASON, allow_module_level=True)


def fixture_path(name: str) -> Path:
    require_fixtures()
    p = FIXTURES / name
    if not p.exists():
        raise FileNotFoundError(f"fixture {p} is missing (a test must not pass without its data)")
    return p


def load_input(tag: str) -> np.ndarray:
    return np.load(fixture_path(INPUTS[tag]))


def load_ref(model: str, tag: str, dtype: str = "fp32") -> np.ndarray:
    return np.load(fixture_path(f"{model}-ref-{tag}-{dtype}.npy"))


def main_cfg(model: str) -> Path:
    return fixture_path(f"{model}.cfg")


# --- which tests need the fixtures, known at collection time ---------------------------------------------
_API = (fixture_path, load_input, load_ref, main_cfg, require_fixtures)


def needs_fixtures(item) -> bool:
    """Whether a collected test reaches the fixtures: its function, its pytest fixtures, its parameters and,
    transitively, the test/helper functions, classes and module-level values they name refer to the loaders
    above, to FIXTURES/SHARED, or to a path under FIXTURES. Static and conservative (a name in a branch
    counts); what it misses still skips at run time through `fixture_path`."""
    seen: set[int] = set()
    roots: list = [getattr(item, "obj", None)]
    for defs in getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}).values():
        roots += [d.func for d in defs]
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        roots += list(callspec.params.values())
    return any(_reaches(r, seen, 0) for r in roots)


def _ours(code: types.CodeType) -> bool:
    return Path(code.co_filename).is_relative_to(TESTS)


def _names(code: types.CodeType):
    yield from code.co_names
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _names(c)


def _reaches(obj, seen: set[int], depth: int) -> bool:  # noqa: C901 - one walk over the kinds of objects
    if obj is None or isinstance(obj, (bool, int, float, bytes)) or id(obj) in seen or depth > 40:
        return False
    seen.add(id(obj))
    if any(obj is f for f in _API) or obj is FIXTURES or obj is SHARED:
        return True
    if isinstance(obj, (str, PurePath)):
        return str(obj).startswith(str(FIXTURES))
    if isinstance(obj, (list, tuple, set, frozenset)):
        return any(_reaches(o, seen, depth + 1) for o in list(obj)[:1000])
    if isinstance(obj, dict):
        return any(_reaches(o, seen, depth + 1) for o in list(obj.values())[:1000])
    if isinstance(obj, functools.partial):
        return _reaches(obj.func, seen, depth + 1) or _reaches(obj.args, seen, depth + 1)
    if isinstance(obj, (types.MethodType, staticmethod, classmethod)):
        return _reaches(obj.__func__, seen, depth + 1)
    if isinstance(obj, type):
        return obj.__module__ is not None and _module_is_ours(obj.__module__) and any(
            _reaches(v, seen, depth + 1) for v in vars(obj).values())
    if isinstance(obj, types.FunctionType) or hasattr(obj, "__wrapped__"):
        fn = _unwrap(obj)
        if not isinstance(fn, types.FunctionType) or not _ours(fn.__code__):
            return False
        g = fn.__globals__
        names = set(_names(fn.__code__))
        values = [g[n] for n in names if n in g]
        # `module.NAME`: follow NAME in our helper modules that the function names
        values += [getattr(m, n) for m in values if isinstance(m, types.ModuleType) and _module_is_ours(m.__name__)
                   for n in names if hasattr(m, n)]
        values += [c.cell_contents for c in (fn.__closure__ or ()) if _filled(c)]
        values += list(fn.__defaults__ or ()) + list((fn.__kwdefaults__ or {}).values())
        return any(_reaches(v, seen, depth + 1) for v in values)
    return False


def _unwrap(obj):
    """Under decorators (functools.wraps) and hypothesis' @given, to the function that was written."""
    while True:
        inner = getattr(getattr(obj, "hypothesis", None), "inner_test", None) or getattr(obj, "__wrapped__", None)
        if inner is None or inner is obj:
            return obj
        obj = inner


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def _module_is_ours(name: str) -> bool:
    import sys

    mod = sys.modules.get(name)
    f = getattr(mod, "__file__", None)
    return bool(f) and Path(f).resolve().is_relative_to(TESTS)
