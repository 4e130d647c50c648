"""`export_onnx`: checkpoint -> verified ONNX file.

Exporter: torch 2.13's TorchScript-based `torch.onnx.export(..., dynamo=False)`. The dynamo exporter
(the 2.13 default) silently raises a requested opset 12 to 18, needs onnxscript, and is the one that
refused upstream's code with dynamic shapes; the TorchScript exporter honours `--opset` and, with
our export-time rewrites, gives truly dynamic batch/height/width.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import onnx
import torch

from ..contract import NMS_MODES, PAD_VALUE, ModelMetadata, NmsSettings, parse_imgsz, round_to_stride
from ..errors import ExportError, VerificationError, first_line
from ..formats.onnx_meta import op_types, set_metadata
from ..nn.fold import prepare_for_export
from ..nn.model import YOLORModel
from . import passes
from .rewrites import export_context

if TYPE_CHECKING:
    from ..verify.transforms import TransformCheck
    from ..verify.verify import VerifyReport

log = logging.getLogger(__name__)
MIN_OPSET, MAX_OPSET = 11, 20  # CumSum/NonMaxSuppression need 11; the TorchScript exporter stops at 20


@dataclass
class ExportOptions:
    imgsz: tuple[int, int] = (640, 640)
    batch: int = 1
    dynamic: bool = False
    opset: int = 17
    simplify: bool = True
    half: bool = False
    nms: str = "none"
    conf_thres: float = 0.25
    iou_thres: float = 0.45
    max_det: int = 300
    fold: bool = True
    verify: bool = True
    verify_image: str | None = None
    verify_openvino: bool = False
    openvino: bool = False  # also write an OpenVINO IR (stem.xml + stem.bin), verified in OpenVINO
    report: str | None = None


@dataclass
class ExportResult:
    path: Path
    metadata: ModelMetadata
    report: VerifyReport | None = None
    fold_counts: dict = field(default_factory=dict)
    op_types: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    openvino_paths: tuple[Path, Path] | None = None  # (.xml, .bin) when options.openvino


class ExportWrapper(torch.nn.Module):
    """images [B,3,H,W] float32 -> [B,N,5+nc] float32 (network in fp16 when `half`, decode in fp32)."""

    def __init__(self, model: YOLORModel, half: bool):
        super().__init__()
        self.model, self.half = model, half

    def forward(self, images):
        x = images.half() if self.half else images
        maps = self.model.head_maps(x)
        pred, _ = self.model.decode(maps, self.model.anchors_px(), [float(s) for s in self.model.strides])
        return pred


def round_imgsz(imgsz, stride: int) -> tuple[tuple[int, int], list[str]]:
    hw, note = round_to_stride(parse_imgsz(imgsz), stride)
    return hw, [note] if note else []


def check_options(o: ExportOptions) -> None:
    if not MIN_OPSET <= o.opset <= MAX_OPSET:
        raise ExportError(f"opset {o.opset} is not supported: use {MIN_OPSET}..{MAX_OPSET} "
                          f"(CumSum and NonMaxSuppression need {MIN_OPSET})")
    if o.nms not in NMS_MODES:
        raise ExportError(f"--nms {o.nms!r}: choose one of {', '.join(NMS_MODES)}")
    if o.batch < 1 or o.max_det < 1:
        raise ExportError("batch and max_det must be >= 1")
    if o.openvino and o.nms == "trt":
        raise ExportError("--openvino with --nms trt: EfficientNMS_TRT runs only in TensorRT; use --nms onnx or none")
    if not (0.0 <= o.conf_thres < 1.0 and 0.0 < o.iou_thres <= 1.0):
        raise ExportError("conf_thres must be in [0, 1) and iou_thres in (0, 1]")


def _check_writable(out: Path) -> None:
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise ExportError(f"{out}: output path is a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"{out}: cannot create output folder ({e.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise ExportError(f"{out}: output folder is not writable")


def build_raw_onnx(model: YOLORModel, o: ExportOptions,
                   prepared: YOLORModel | None = None) -> tuple[onnx.ModelProto, dict]:
    """Trace `prepared` (the float64 folded copy of `model`, made here when None; cast in place to the
    export dtype) with the export-time rewrites applied."""
    emodel = prepared if prepared is not None else prepare_for_export(model, fold=o.fold, dtype=torch.float64)
    emodel = emodel.to(torch.float16 if o.half else torch.float32)
    wrapper = ExportWrapper(emodel, o.half).eval()
    example = (torch.zeros(o.batch, 3, *o.imgsz),)
    dyn = {"images": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 1: "anchors"}} if o.dynamic else None
    try:
        with export_context(), torch.no_grad():
            proto = passes.export_module(wrapper, example, ["images"], ["output"], dyn, o.opset)
    except Exception as e:  # noqa: BLE001 - the exporter raises many types; report one line
        raise ExportError(f"torch.onnx.export failed at opset {o.opset}: {first_line(e)}") from None
    if o.simplify:
        proto = passes.simplify(proto)
    return proto, dict(emodel.fold_counts)


def check_transforms(model: YOLORModel, prepared: YOLORModel, refs: list) -> list[TransformCheck]:
    """The folds, then the export-time rewrites, each judged in float64 against the untouched `model`
    (`verify.transforms`) on the verification inputs, before anything is traced. `prepared` is the float64
    folded copy; the rewrites are judged only when the folds pass. The folded network's head maps are
    computed once per input: the folds are judged with the eager decode on them, the rewrites with the
    export decode on the same maps (the rewrites change only the decode)."""
    from ..verify.transforms import check_transform

    maps_by_input: dict[bytes, list[torch.Tensor]] = {}

    def maps(x: torch.Tensor) -> list[torch.Tensor]:
        key = hashlib.sha256(x.numpy().tobytes()).digest() + str(tuple(x.shape)).encode()
        if key not in maps_by_input:
            maps_by_input[key] = prepared.head_maps(x)
        return maps_by_input[key]

    def decoded(x: torch.Tensor) -> torch.Tensor:
        return prepared.decode(maps(x), prepared.anchors_px(), [float(s) for s in prepared.strides])[0]

    def rewritten(x: torch.Tensor) -> torch.Tensor:
        with export_context():
            return decoded(x)

    what = ", ".join(f"{k} {v}" for k, v in prepared.fold_counts.items()) or "none"
    checks = [check_transform("folds", what, model, prepared, decoded, refs)]
    if checks[0].passed:
        checks.append(check_transform("rewrites", "decode without slice writes, grids from the input shape",
                                      model, prepared, rewritten, refs))
    return checks


def build_metadata(model: YOLORModel, o: ExportOptions) -> ModelMetadata:
    return ModelMetadata(
        names=tuple(model.names), stride=tuple(int(s) for s in model.strides), imgsz=tuple(o.imgsz),  # type: ignore[arg-type]
        dynamic=o.dynamic, batch=None if o.dynamic else o.batch, pad_value=PAD_VALUE,
        nms=NmsSettings(o.nms, o.conf_thres, o.iou_thres, o.max_det), half=o.half, branch=model.branch,
        variant=str(model.variant), source_sha256=model.source_sha256,
        version=sys.modules[__name__.split(".")[0]].__version__)  # the package, imported first (as serve/app.py)


def _references(model: YOLORModel, o: ExportOptions) -> list:
    """The untouched model's float64 outputs and fp32 noise on the verification inputs (`verify.noise`)."""
    from ..verify.exported import references
    from ..verify.verify import verification_inputs

    return references(model, verification_inputs(o.imgsz, o.batch, max(model.strides), o.dynamic, o.verify_image))


def _verify(model: YOLORModel, final: onnx.ModelProto, data: bytes, o: ExportOptions, refs: list,
            ir_xml: Path | None = None):
    """The exported graph in ONNX Runtime vs PyTorch (raw output, NMS graph, graph structure); OpenVINO
    too when asked, or on the IR (`ir_xml`, the file that will be shipped) when one is made. The same
    functions as `yolor-deploy verify`, with the PyTorch references computed once; `data` is `final` serialized."""
    from ..verify.exported import verify_onnx, verify_openvino

    report, _ = verify_onnx(model, final, o.verify_image, o.imgsz, refs, serialized=data)
    if ir_xml is not None or (o.verify_openvino and o.nms != "trt"):
        with tempfile.TemporaryDirectory() as d:
            target = ir_xml
            if target is None:
                target = Path(d) / "final.onnx"
                target.write_bytes(data)
            ov_report, _ = verify_openvino(model, target, o.verify_image, o.imgsz, refs, source=final)
        for c in ov_report.cases:
            c.name = c.name if c.name.startswith("openvino") else f"openvino {c.name}"
        report.cases += ov_report.cases
        report.nms_openvino = ov_report.nms_openvino
    return report


def _save(data: bytes, path: Path) -> None:
    """The serialized model written to `path` through a temp file and a rename."""
    from ..fs import write_bytes

    try:
        write_bytes(path, data)
    except OSError as e:  # disk full, read-only filesystem, ...: nothing is left at `path`
        raise ExportError(f"{path}: cannot write ({e.strerror or e})") from None


def export_onnx(model: YOLORModel | str | Path, out: str | Path, cfg=None, options: ExportOptions | None = None,
                **kwargs) -> ExportResult:
    """Export `model` (a YOLORModel or a checkpoint path) to `out`, verify it, and write it only if it passes.

    A failing verification keeps the file as `<out>.failed.onnx` and raises VerificationError.
    """
    o = options or ExportOptions(**kwargs)
    check_options(o)
    out = Path(out)
    _check_writable(out)
    if not isinstance(model, torch.nn.Module):
        from ..checkpoint import load_checkpoint

        model = load_checkpoint(model, cfg=cfg)
    o.imgsz, notes = round_imgsz(o.imgsz, max(model.strides))
    for n in notes:
        log.warning(n)
    prepared = prepare_for_export(model, fold=o.fold, dtype=torch.float64)
    refs: list = []
    transforms: list = []
    if o.verify:  # folds and rewrites judged on their own, before anything is traced
        from ..verify.verify import VerifyReport

        refs = _references(model, o)
        transforms = check_transforms(model, prepared, refs)
        bad = next((t for t in transforms if not t.passed), None)
        if bad is not None:
            report = VerifyReport(transforms=transforms)
            _write_report(report, o.report, None)
            raise VerificationError(f"{out}: the export's {bad.name} change the function: {bad.reason}; "
                                    "nothing was written", report)
    raw, fold_counts = build_raw_onnx(model, o, prepared)
    final = raw
    if o.nms != "none":
        final = passes.add_nms(raw, o.nms, o.conf_thres,
                               o.iou_thres, o.max_det, o.opset, model.nc)
    meta = build_metadata(model, o)
    final = set_metadata(final, meta)
    # serialized once (a full-size model is ~0.6 GB: each serialization ~1 s) for the checker, the verifying
    # session and the file
    data = final.SerializeToString()
    if o.nms != "trt":
        onnx.checker.check_model(data)
    result = ExportResult(out, meta, None, fold_counts, op_types(final), notes)
    with contextlib.ExitStack() as stack:
        ir_xml = None
        if o.openvino:
            from ..formats.openvino_ir import convert_to_ir, ir_workdir

            ir_xml = convert_to_ir(data, meta, stack.enter_context(ir_workdir(out)))
        if o.verify:
            result.report = _verify(model, final, data, o, refs, ir_xml)
            result.report.transforms = transforms
            if not result.report.passed:
                kept = out.with_name(out.stem + ".failed.onnx")
                _save(data, kept)
                _write_report(result.report, o.report, None)
                raise VerificationError(f"{out}: verification failed ({'; '.join(result.report.failures()[:3])}); "
                                        f"the failing model was kept at {kept}", result.report)
        _save(data, out)
        if ir_xml is not None:
            from ..formats.openvino_ir import install_ir

            try:
                result.openvino_paths = install_ir(ir_xml, out)
            except OSError as e:
                raise ExportError(f"{out.with_suffix('.xml')}: cannot write the OpenVINO IR "
                                  f"({e.strerror or e}); the ONNX model was saved at {out}") from None
    if result.report is not None:  # after the model: a report that cannot be written loses nothing
        _write_report(result.report, o.report, out)
    return result


def _write_report(report: VerifyReport, path: str | None, saved: Path | None) -> None:
    if not path:
        return
    try:
        report.write_json(path)
    except OSError as e:
        tail = f"; the model was saved at {saved}" if saved is not None else ""
        raise ExportError(f"{path}: cannot write the report ({e.strerror or e}){tail}") from None
