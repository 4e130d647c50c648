"""The size a checkpoint was trained at, where the files say it.

Upstream's `train.py` does not store the image size in the checkpoint; it writes it into `opt.yaml`
(`img_size: [train, test]`) in the run folder, two levels above `weights/best.pt`. Our own format
stores it as `imgsz`. A training size of a square-trained model is square (upstream trains on
square mosaics). The yaml is read bounded and with `yaml.safe_load` only.
"""
from __future__ import annotations

from pathlib import Path

import yaml

MAX_OPT_BYTES = 64 * 1024
SIZE_RANGE = (32, 8192)


def valid_size(value) -> tuple[int, int] | None:
    """(H, W) from an int or a 1-2 int list within SIZE_RANGE, else None."""
    vals = [value] if type(value) is int else value
    if not isinstance(vals, (list, tuple)) or not 1 <= len(vals) <= 2 or any(type(v) is not int for v in vals):
        return None
    if not all(SIZE_RANGE[0] <= v <= SIZE_RANGE[1] for v in vals):
        return None
    return (vals[0], vals[-1])


def read_opt_yaml(path: Path) -> tuple[int, int] | None:
    """The training size from an upstream `opt.yaml` (`img_size[0]`), or None when absent or unreadable."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_OPT_BYTES:
            return None
        data = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, yaml.YAMLError, RecursionError):
        return None
    sizes = data.get("img_size") if isinstance(data, dict) else None
    if isinstance(sizes, (list, tuple)) and sizes:
        return valid_size(sizes[0])
    return valid_size(sizes)


def training_size(checkpoint: Path, recorded=None) -> tuple[tuple[int, int], str] | None:
    """((H, W), where it came from) for `checkpoint`: the size recorded in it (our format), else an
    upstream `opt.yaml` beside it or in the run folder above `weights/`; None when nothing says."""
    if recorded is not None and (hw := valid_size(recorded)) is not None:
        return hw, "recorded in the checkpoint"
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        opt = folder / "opt.yaml"
        if (hw := read_opt_yaml(opt)) is not None:
            return hw, f"img_size in {opt}"
    return None
