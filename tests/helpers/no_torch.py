"""Run code as on a deployment box: a fresh interpreter in which `import torch` fails."""
from __future__ import annotations

import subprocess
import sys


def run_without_torch(body: str) -> subprocess.CompletedProcess:
    """Run `body` in a fresh interpreter where `import torch` fails; it prints "ok" at the end when torch
    was never imported."""
    code = 'import sys\nsys.modules["torch"] = None  # any `import torch` now raises ImportError\n' + body
    code += '\ndel sys.modules["torch"]\nassert "torch" not in sys.modules\nprint("ok")\n'
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
