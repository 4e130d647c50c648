"""ONNX -> OpenVINO IR (`.xml` + `.bin`), our metadata in the IR's `rt_info["yolor_deploy"]`.

The conversion is OpenVINO's own ONNX reader; weights keep their precision (fp32, or fp16 for a
`--half` export; no extra compression). The pair is written into a temporary folder beside the
target and renamed into place, `.bin` first, so no half-written IR appears under the final names.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import onnx

from ..errors import ExportError
from ..runtime.metadata import METADATA_KEY


def ir_paths(out: str | Path) -> tuple[Path, Path]:
    """The IR pair for an export named `out` (any suffix): (`stem.xml`, `stem.bin`)."""
    out = Path(out)
    return out.with_suffix(".xml"), out.with_suffix(".bin")


def convert_to_ir(model: onnx.ModelProto, metadata: dict, workdir: str | Path) -> Path:
    """Convert `model` into `workdir/model.xml` (+ .bin) with `metadata`; return the .xml path."""
    from ..runtime.openvino_backend import import_openvino

    ov = import_openvino()
    workdir = Path(workdir)
    src = workdir / "model.onnx"
    onnx.save(model, str(src))
    try:
        ov_model = ov.Core().read_model(str(src))
    except Exception as e:  # noqa: BLE001 - OpenVINO raises its own RuntimeError subtypes
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise ExportError(f"OpenVINO cannot convert the ONNX model: {first[:300]}") from None
    ov_model.set_rt_info(json.dumps(metadata), [METADATA_KEY])
    xml = workdir / "model.xml"
    ov.save_model(ov_model, str(xml), compress_to_fp16=False)
    src.unlink()
    return xml


def install_ir(xml: Path, out: str | Path) -> tuple[Path, Path]:
    """Move a converted IR pair (`xml` and its `.bin`) to the names of `ir_paths(out)`."""
    dst_xml, dst_bin = ir_paths(out)
    os.replace(xml.with_suffix(".bin"), dst_bin)
    os.replace(xml, dst_xml)
    return dst_xml, dst_bin


@contextlib.contextmanager
def ir_workdir(out: str | Path):
    """A temporary folder on the target's filesystem (so the final renames are atomic), removed after."""
    parent = Path(out).parent
    d = tempfile.mkdtemp(prefix=f".{Path(out).stem}.", suffix=".ir.tmp", dir=parent if str(parent) else ".")
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
