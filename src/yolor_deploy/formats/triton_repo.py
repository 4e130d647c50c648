"""A Triton model repository entry, written atomically: `REPO/NAME/config.pbtxt` and `REPO/NAME/1/` holding
`model.onnx` (onnxruntime backend) or `model.xml` + `model.bin` (openvino backend).

The entry is built in a temporary folder beside it and renamed into place; an existing non-empty `REPO/NAME` is
refused unless `force` (then it is replaced in one rename, the old one removed after).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError

MODEL_FILES = {"onnxruntime": ("model.onnx",), "openvino": ("model.xml", "model.bin")}


def write_entry(repo: str | Path, name: str, config_text: str, files: Sequence[str | Path], backend: str,
                force: bool = False) -> Path:
    """Write the entry `name` into `repo`: `files` (the model file(s), in MODEL_FILES[backend] order) copied into
    version 1, `config_text` as config.pbtxt. Returns `repo/name`."""
    target = Path(repo) / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not force:
        raise InputError(f"{target}: exists and is not empty (--force replaces it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{name}.tmp-{os.getpid()}"
    old = target.parent / f".{name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "1").mkdir(parents=True)
        for src, dst in zip(files, MODEL_FILES[backend], strict=True):
            shutil.copyfile(src, tmp / "1" / dst)
        (tmp / "config.pbtxt").write_text(config_text, encoding="utf-8")
        if target.exists() or target.is_symlink():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target
