"""The bundled trained shapes model (`yolor_deploy.assets.trained_checkpoint()`) exported to ONNX once per test
session (dynamic batch and size, not verified: the export tests verify it), into a temporary folder."""
from __future__ import annotations

import atexit
import shutil
import tempfile
import warnings
from functools import cache
from pathlib import Path

_DIR = Path(tempfile.mkdtemp(prefix="yolor-trained-onnx-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)


@cache
def trained_onnx(imgsz: int = 256) -> Path:
    from yolor_deploy.assets import trained_checkpoint
    from yolor_deploy.export import export_onnx

    path = _DIR / f"shapes-{imgsz}-dynamic.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore")
        export_onnx(trained_checkpoint(), path, imgsz=(imgsz, imgsz), dynamic=True, verify=False)
    return path
