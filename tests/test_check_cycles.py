"""scripts/check_cycles.py (run by .ci/run): finds import cycles of any length, lazy and relative imports included."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_cycles.py"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"yolor_deploy/__init__.py": "", "yolor_deploy/pkg/__init__.py": "from .a import f\n",
                       **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _run(src: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(src)], capture_output=True, text=True, timeout=60)


def test_a_lazy_three_module_cycle_is_found(tmp_path):
    src = _tree(tmp_path, {
        "yolor_deploy/pkg/a.py": "from .b import g\n\ndef f():\n    return g()\n",
        "yolor_deploy/pkg/b.py": "def g():\n    from yolor_deploy.other import c\n    return c.h()\n",
        "yolor_deploy/other/c.py": "def h():\n    from ..pkg import a  # lazy, relative, two levels\n    return a\n",
        "yolor_deploy/other/__init__.py": "",
        "yolor_deploy/pkg/d.py": "from . import a\n",  # imports into the cycle, is not part of it
    })
    proc = _run(src)
    assert proc.returncode == 1, proc.stdout
    assert proc.stdout.splitlines() == [
        "import cycle: yolor_deploy.other.c <-> yolor_deploy.pkg.a <-> yolor_deploy.pkg.b"], proc.stdout


def test_no_cycle_passes(tmp_path):
    src = _tree(tmp_path, {"yolor_deploy/pkg/a.py": "from .b import g\nf = g\n", "yolor_deploy/pkg/b.py": "g = 1\n"})
    proc = _run(src)
    assert proc.returncode == 0 and proc.stdout.startswith("no import cycles"), proc.stdout + proc.stderr
