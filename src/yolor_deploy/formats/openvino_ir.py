"""ONNX -> OpenVINO IR (`.xml` + `.bin`), our metadata in the IR's `rt_info["yolor_deploy"]`.

The conversion is OpenVINO's own ONNX reader; weights keep their precision (fp32, or fp16 for a
`--half` export; no extra compression). The pair is written into a temporary folder beside the
target and renamed into place, `.bin` first, so no half-written IR appears under the final names; a load
that finds a mixed pair (killed between the renames) uses the intact previous pair (`resolve_ir`).
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
from ..fs import file_sha256, remove_stale_temps, temp_prefix


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise InputError("OpenVINO is not installed: pip install 'yolor-deploy[openvino]'") from None
    return openvino


BIN_HASH_KEY = "yolor_deploy_bin_sha256"
_PLACEHOLDER = "0" * 63 + "x"  # replaced by the .bin's sha256 (same length) after saving


def ir_paths(out: str | Path) -> tuple[Path, Path]:
    """The IR pair for an export named `out` (any suffix): (`stem.xml`, `stem.bin`)."""
    out = Path(out)
    return out.with_suffix(".xml"), out.with_suffix(".bin")


def read_onnx(model: onnx.ModelProto | bytes, workdir: str | Path):
    """`model` (or its serialized bytes) as an OpenVINO model, read by OpenVINO's ONNX reader (through
    `workdir/model.onnx`, which stays there until the workdir is removed: OpenVINO may map its weights)."""
    src = Path(workdir) / "model.onnx"
    src.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
    try:
        return import_openvino().Core().read_model(str(src))
    except Exception as e:  # noqa: BLE001 - OpenVINO raises its own RuntimeError subtypes
        raise ExportError(f"OpenVINO cannot convert the ONNX model: {first_line(e)}") from None


def save_ir(ov_model, metadata: ModelMetadata, workdir: str | Path) -> Path:
    """Write `ov_model` with `metadata` in its rt_info as `workdir/model.xml` (+ .bin); return the .xml.
    The .xml also records the sha256 of its .bin (rt_info `yolor_deploy_bin_sha256`), so a load can tell
    a mismatched pair."""
    ov_model.set_rt_info(metadata.to_json(), [METADATA_KEY])
    ov_model.set_rt_info(_PLACEHOLDER, [BIN_HASH_KEY])
    xml = Path(workdir) / "model.xml"
    import_openvino().save_model(ov_model, str(xml), compress_to_fp16=False)
    text = xml.read_bytes()
    if text.count(_PLACEHOLDER.encode()) == 1:
        xml.write_bytes(text.replace(_PLACEHOLDER.encode(), file_sha256(xml.with_suffix(".bin")).encode()))
    return xml


def check_pair(xml: str | Path, recorded: str | None) -> None:
    """InputError when `xml`'s .bin is not the one it was saved with (an interrupted overwrite, or files mixed
    by hand); `recorded`: the hash the .xml carries (None for IRs made elsewhere: nothing to check)."""
    if not pair_is_mixed(xml, recorded):
        return
    xml = Path(xml)
    prev = prev_paths(xml)[0]
    hint = f"; the previous model is intact at {prev}" if prev.is_file() else ""
    raise InputError(f"{xml}: its weights file {xml.with_suffix('.bin').name} belongs to another model "
                     f"(an interrupted overwrite?){hint}")


def pair_is_mixed(xml: str | Path, recorded: str | None) -> bool:
    """True when `xml` records a .bin sha256 (`save_ir`) and its .bin has another one."""
    return bool(recorded) and len(recorded or "") == 64 and file_sha256(Path(xml).with_suffix(".bin")) != recorded


def check_bin_inside(xml: str | Path) -> None:
    """InputError when `xml`'s .bin is a symlink resolving outside the model's folder (OpenVINO reads the .bin
    beside the .xml by name: a link could make it read any file)."""
    xml = Path(xml)
    bin_ = xml.with_suffix(".bin")
    if not bin_.is_symlink():
        return
    folder, real = os.path.realpath(xml.parent), os.path.realpath(bin_)
    if os.path.commonpath([folder, real]) != folder:
        raise InputError(f"{bin_}: a symlink to {real}, outside the model's folder {folder}: refused")


def resolve_ir(xml: str | Path) -> Path:
    """The .xml to load for `xml`: itself when its pair is consistent. A mixed pair (`install_ir` killed
    between its two renames) falls back to the intact previous pair `stem.prev.*` with one RuntimeWarning;
    InputError when there is none (or it is mixed too). A .bin outside the folder is refused (`check_bin_inside`)."""
    import warnings

    xml = Path(xml)
    check_bin_inside(xml)
    if not pair_is_mixed(xml, recorded_bin_hash(xml)):
        return xml
    prev = prev_paths(xml)[0]
    if prev.is_file() and prev.with_suffix(".bin").is_file():
        check_bin_inside(prev)
        recorded = recorded_bin_hash(prev)
        if recorded and not pair_is_mixed(prev, recorded):
            warnings.warn(f"{xml}: its weights file {xml.with_suffix('.bin').name} belongs to another model (an "
                          f"interrupted overwrite); loading the intact previous model {prev.name}",
                          RuntimeWarning, stacklevel=3)
            return prev
    check_pair(xml, recorded_bin_hash(xml))
    return xml


def recorded_bin_hash(xml: str | Path) -> str | None:
    """The .bin sha256 an IR written by `save_ir` records, read from the .xml text (before OpenVINO parses it)."""
    import re

    try:
        with open(xml, "rb") as f:
            text = f.read(64 << 20)
    except OSError:
        return None
    m = re.search(rb'<' + BIN_HASH_KEY.encode() + rb' value="([0-9a-f]{64})"', text)
    return m.group(1).decode() if m else None


def prev_paths(out: str | Path) -> tuple[Path, Path]:
    """Where `install_ir` keeps the previous pair while it replaces it: `stem.prev.xml` + `stem.prev.bin`."""
    xml, _ = ir_paths(out)
    return xml.with_name(xml.stem + ".prev.xml"), xml.with_name(xml.stem + ".prev.bin")


def convert_to_ir(model: onnx.ModelProto | bytes, metadata: ModelMetadata, workdir: str | Path) -> Path:
    """Convert `model` into `workdir/model.xml` (+ .bin) with `metadata`; return the .xml path."""
    return save_ir(read_onnx(model, workdir), metadata, workdir)


def install_ir(xml: Path, out: str | Path) -> tuple[Path, Path]:
    """Move a converted IR pair (`xml` and its `.bin`) to the names of `ir_paths(out)`.

    Two renames cannot be one atomic step: an existing pair is first linked to `stem.prev.xml/.bin`, then
    the new .bin and .xml replace it, then the previous pair is removed. Killed in between, the final names
    may hold a mixed pair: the load detects it (the .xml records its .bin's sha256) and loads the intact
    previous pair instead, with one warning (`resolve_ir`): the path works at every step."""
    dst_xml, dst_bin = ir_paths(out)
    prev_xml, prev_bin = prev_paths(out)
    kept = dst_xml.is_file() and dst_bin.is_file()
    if kept:
        for src, dst in ((dst_bin, prev_bin), (dst_xml, prev_xml)):
            with contextlib.suppress(FileNotFoundError):
                dst.unlink()
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
    os.replace(xml.with_suffix(".bin"), dst_bin)
    os.replace(xml, dst_xml)
    if kept:
        for p in (prev_xml, prev_bin):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return dst_xml, dst_bin


@contextlib.contextmanager
def ir_workdir(out: str | Path):
    """A temporary folder on the target's filesystem (so the final renames are atomic), removed after."""
    parent = Path(out).parent
    remove_stale_temps(Path(out))
    d = tempfile.mkdtemp(prefix=temp_prefix(Path(out).stem), suffix=".ir.tmp",
                         dir=parent if str(parent) else ".")
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
