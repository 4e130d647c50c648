"""The package's layout stays readable (ARCHITECTURE.md, issue 19 "rooms that say what they hold").

`runtime/` holds only `__init__.py`, `detector.py` and `describe.py` directly; every other module lives in a room
(`inputs/`, `backends/`, `post/`, `results/`) whose `__init__.py` is a docstring alone, naming each of the room's
modules: a reader finds the room from its name and the module from the room's docstring, and each thing is
imported from one place (no re-exports in a room). No module in `src` is over 500 lines.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "yolor_deploy"
RUNTIME = SRC / "runtime"
TOP = ("__init__.py", "detector.py", "describe.py")
MAX_LINES = 500


def layout_problems(runtime: Path) -> list[str]:
    """What breaks the runtime's rooms, one line each (empty: none)."""
    problems = [f"runtime/{p.name}: a module directly in runtime/ (only {', '.join(TOP)}): move it into its room"
                for p in sorted(runtime.glob("*.py")) if p.name not in TOP]
    for room in sorted(d for d in runtime.iterdir() if d.is_dir() and d.name != "__pycache__"):
        init = room / "__init__.py"
        if not init.is_file():
            problems.append(f"runtime/{room.name}/: no __init__.py saying what the room holds")
            continue
        tree = ast.parse(init.read_text())
        doc = ast.get_docstring(tree)
        if not doc:
            problems.append(f"runtime/{room.name}/__init__.py: no docstring saying what the room holds")
            continue
        if len(tree.body) > 1:
            problems.append(f"runtime/{room.name}/__init__.py: holds more than its docstring (import from the modules)")
        problems += [f"runtime/{room.name}/{m.name}: not named in runtime/{room.name}/__init__.py's docstring"
                     for m in sorted(room.glob("*.py")) if m.name != "__init__.py" and f"`{m.name}`" not in doc]
        problems += [f"runtime/{room.name}/{d.name}/: a room inside a room"
                     for d in sorted(room.iterdir()) if d.is_dir() and d.name != "__pycache__"]
    return problems


def test_runtime_is_in_rooms_that_say_what_they_hold():
    assert RUNTIME.is_dir(), RUNTIME
    assert layout_problems(RUNTIME) == []
    assert sorted(p.name for p in RUNTIME.glob("*.py")) == sorted(TOP)
    assert {d.name for d in RUNTIME.iterdir() if (d / "__init__.py").is_file()} >= {"inputs", "backends", "post", "results"}


def test_no_module_is_over_500_lines():
    sizes = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}
    assert len(sizes) > 100
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


GOOD = {"__init__.py": "", "detector.py": "", "describe.py": "",
        "post/__init__.py": '"""Post-processing.\n\n- `nms.py`: NMS.\n"""\n', "post/nms.py": ""}


def test_the_layout_check_passes_a_tree_in_rooms(tmp_path):
    assert layout_problems(_tree(tmp_path, GOOD)) == []


def test_the_layout_check_refuses_a_flat_runtime(tmp_path):
    root = _tree(tmp_path, {**GOOD, "nms.py": "", "letterbox.py": ""})
    assert layout_problems(root) == [
        "runtime/letterbox.py: a module directly in runtime/ (only __init__.py, detector.py, describe.py): move it "
        "into its room",
        "runtime/nms.py: a module directly in runtime/ (only __init__.py, detector.py, describe.py): move it into "
        "its room",
    ]


def test_the_layout_check_refuses_rooms_that_do_not_say_what_they_hold(tmp_path):
    root = _tree(tmp_path, {
        **GOOD,
        "post/boxes.py": "",  # not named in post's docstring
        "inputs/__init__.py": "from .sources import read_image\n",  # no docstring
        "inputs/sources.py": "",
        "results/__init__.py": '"""Results: `draw.py`."""\nfrom .draw import draw\n',  # a re-export
        "results/draw.py": "",
        "draw/draw.py": "",  # no __init__
    })
    assert layout_problems(root) == [
        "runtime/draw/: no __init__.py saying what the room holds",
        "runtime/inputs/__init__.py: no docstring saying what the room holds",
        "runtime/post/boxes.py: not named in runtime/post/__init__.py's docstring",
        "runtime/results/__init__.py: holds more than its docstring (import from the modules)",
    ]
