"""Importing yolor_deploy changes nothing in the process: every module imported in a fresh interpreter, the
environment compared after each (a variable set at import time reaches every child process too)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import yolor_deploy

# Third-party packages imported first, so that what they do to the environment themselves (`import ray` sets
# RAY_CLIENT_MODE=0) is not charged to our modules. Never OpenCV: loading it is our code's doing (runtime/inputs/opencv.py).
THIRD_PARTY = ("torch", "onnx", "onnxruntime", "openvino", "ray", "ray.serve", "fastapi", "uvicorn", "yaml")

_CHILD = r"""
import importlib, importlib.util, json, os, pathlib, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
assert "cv2" not in sys.modules
changed = {}
root = pathlib.Path(importlib.util.find_spec("yolor_deploy").origin).parent  # found, not imported
names = sorted(".".join(("yolor_deploy",) + p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
               for p in root.rglob("*.py") if p.name != "__main__.py")  # pkgutil.walk_packages would import
for name in names:  # the package first: its __init__ imports the runtime
    before = dict(os.environ)
    importlib.import_module(name)
    after = dict(os.environ)
    diff = {k: [before.get(k), after.get(k)] for k in set(before) | set(after) if before.get(k) != after.get(k)}
    if diff:
        changed[name] = diff
print(json.dumps({"modules": names, "changed": changed}))
"""

_CAP = r"""
import os, sys
import numpy as np
import yolor_deploy, yolor_deploy.cli.main, yolor_deploy.runtime, yolor_deploy.serve.app
assert "cv2" not in sys.modules, "OpenCV loaded at import"
from yolor_deploy.runtime.inputs.opencv import load_opencv, set_max_pixels
if sys.argv[2] == "cli":  # predict --max-pixels 1000 sets it (the image is refused by its header)
    from yolor_deploy.cli.main import main
    print("predict rc", main(["predict", sys.argv[3], sys.argv[1], "--max-pixels", "1000", "--save-dir", sys.argv[4]]))
else:
    print("set_max_pixels", set_max_pixels(1000))
before = dict(os.environ)
cv2 = load_opencv()
assert dict(os.environ) == before, "loading OpenCV changed the environment"
try:
    cv2.imdecode(np.fromfile(sys.argv[1], np.uint8), cv2.IMREAD_COLOR)
    print("opencv decoded it")
except cv2.error:
    print("opencv refused it")
"""


def _env() -> dict[str, str]:
    src = str(Path(yolor_deploy.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def test_importing_every_module_leaves_the_environment_unchanged():
    env = {k: v for k, v in _env().items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    proc = subprocess.run([sys.executable, "-c", _CHILD, *THIRD_PARTY], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.splitlines()[-1])
    assert len(got["modules"]) > 100 and "yolor_deploy.runtime.inputs.sources" in got["modules"]
    assert got["changed"] == {}, got["changed"]


@pytest.mark.parametrize("how", ["call", "cli"])
def test_opencv_pixel_cap_is_set_when_changed_not_at_import(tmp_path, how):
    """OpenCV (a second guard behind our header check) loads at first use, never at import, so a cap set by
    `set_max_pixels` or `predict --max-pixels` reaches OpenCV's own limit; the environment is left as it was."""
    import cv2
    import numpy as np

    from helpers.runtime_models import model_path

    path = tmp_path / "small.png"
    cv2.imwrite(str(path), np.zeros((40, 50, 3), np.uint8))  # 2,000 pixels
    env = {k: v for k, v in _env().items() if k not in ("OPENCV_IO_MAX_IMAGE_PIXELS", "YOLOR_MAX_IMAGE_PIXELS")}
    proc = subprocess.run([sys.executable, "-c", _CAP, str(path), how, str(model_path("static")), str(tmp_path / "o")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-2:] == (["predict rc 2"] if how == "cli" else ["set_max_pixels True"]) + [
        "opencv refused it"], proc.stdout + proc.stderr[-2000:]


_RACE = r"""
import sys, threading
import numpy as np
from yolor_deploy.runtime.inputs.sources import decode_image
assert "cv2" not in sys.modules
data = np.fromfile(sys.argv[1], np.uint8).tobytes()
start, errors, shapes = threading.Barrier(8), [], []
def first_use():
    start.wait()
    try:
        shapes.append(decode_image(data, "upload").shape)
    except Exception as e:  # what a server request would have turned into a 500
        errors.append(f"{type(e).__name__}: {e}")
threads = [threading.Thread(target=first_use) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(shapes), sorted(set(errors)))
"""


@pytest.mark.parametrize("attempt", range(3))
def test_the_first_uses_of_opencv_from_many_threads_at_once_all_succeed(tmp_path, attempt):
    """A server's first concurrent requests all load OpenCV lazily at once: every one must get the complete
    module (a module is in sys.modules from the start of its import; the second thread got a half-initialised
    one: AttributeError, a 500 on a concurrent load test)."""
    import cv2
    import numpy as np

    path = tmp_path / "small.png"
    cv2.imwrite(str(path), np.zeros((40, 50, 3), np.uint8))
    proc = subprocess.run([sys.executable, "-c", _RACE, str(path)], env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == "8 []", proc.stdout
