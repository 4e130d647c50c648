"""ONNX -> OpenVINO IR (`.xml` + `.bin`), our metadata in the IR's `rt_info["yolor_deploy"]`.

The conversion is OpenVINO's own ONNX reader; weights keep their precision (fp32, or fp16 for a
`--half` export; no extra compression). The pair is written into a temporary folder beside the
target and renamed into place, `.bin` first, so no half-written IR appears under the final names.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import onnx

from ..contract import METADATA_KEY, ModelMetadata
from ..errors import ExportError, InputError, first_line


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise InputError("OpenVINO is not installed: pip install 'yolor-deploy[openvino]'") from None
    return openvino


def ir_paths(out: str | Path) -> tuple[Path, Path]:
    """The IR pair for an export named `out` (any suffix): (`stem.xml`, `stem.bin`)."""
    out = Path(out)
    return out.with_suffix(".xml"), out.with_suffix(".bin")


def read_onnx(model: onnx.ModelProto, workdir: str | Path):
    """`model` as an OpenVINO model, read by OpenVINO's ONNX reader (through `workdir/model.onnx`, which
    stays there until the workdir is removed: OpenVINO may map its weights)."""
    src = Path(workdir) / "model.onnx"
    onnx.save(model, str(src))
    try:
        return import_openvino().Core().read_model(str(src))
    except Exception as e:  # noqa: BLE001 - OpenVINO raises its own RuntimeError subtypes
        raise ExportError(f"OpenVINO cannot convert the ONNX model: {first_line(e)}") from None


def save_ir(ov_model, metadata: ModelMetadata, workdir: str | Path) -> Path:
    """Write `ov_model` with `metadata` in its rt_info as `workdir/model.xml` (+ .bin); return the .xml."""
    ov_model.set_rt_info(metadata.to_json(), [METADATA_KEY])
    xml = Path(workdir) / "model.xml"
    import_openvino().save_model(ov_model, str(xml), compress_to_fp16=False)
    return xml


def convert_to_ir(model: onnx.ModelProto, metadata: ModelMetadata, workdir: str | Path) -> Path:
    """Convert `model` into `workdir/model.xml` (+ .bin) with `metadata`; return the .xml path."""
    return save_ir(read_onnx(model, workdir), metadata, workdir)


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
