"""Verify a model file made by any exporter (ours, upstream's `export.py`, a hand-fixed script) against a
checkpoint: `yolor-deploy verify CKPT MODEL.onnx|MODEL.xml`. `export` runs the same functions.

What the file holds decides what is checked:
- an output [B, N, 5+nc] (named `output`, or the first of that shape; also inside our NMS graphs): the raw
  rule (`rule.py`) and detections (`detections.py`); `--half` models (metadata `half`, or mostly fp16
  weights) on detections only;
- our NMS outputs (num_dets, boxes, scores, classes): the NMS graph against NumPy NMS on the raw output
  it receives; an OpenVINO IR with NMS inside: its detections against float64 PyTorch's;
- the ONNX graph: no ScatterND.
Sizes: a static input is verified at its own size; a dynamic one at the metadata's export size (or
`imgsz`, default 640) and at two other sizes with batch 2.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from ..contract import NMS_OUTPUTS, RAW_OUTPUT, MetadataError, ModelMetadata, NmsSettings, round_to_stride
from ..errors import InputError, VerificationError, first_line
from ..nn.model import YOLORModel
from .noise import Reference, ReferenceModels
from .verify import (
    NmsCheck,
    VerifyReport,
    graph_checks,
    judge_nms_only,
    verification_inputs,
    verify_nms_graph,
    verify_raw,
)

RAW = RAW_OUTPUT


@dataclass
class ModelFacts:
    """What verification needs to know about an exported model."""

    imgsz: tuple[int, int]
    batch: int
    dynamic: bool
    half: bool
    nms: str  # "none" | "onnx" | "trt"
    conf_thres: float = 0.25
    iou_thres: float = 0.45
    max_det: int = 300


def references(model: YOLORModel, inputs: list[tuple[str, np.ndarray]]) -> list[tuple[str, Reference]]:
    """float64 and fp32-variant PyTorch outputs of the untouched `model` for every input (see noise.py)."""
    models = ReferenceModels(model)
    return [(label, models.reference(x)) for label, x in inputs]


def _dims(vi: onnx.ValueInfoProto) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in vi.type.tensor_type.shape.dim]


def _meta(proto: onnx.ModelProto) -> ModelMetadata | None:
    from ..formats.onnx_meta import get_metadata

    try:
        return get_metadata(proto)
    except MetadataError as e:
        raise InputError(f"malformed yolor_deploy metadata ({e})") from None


def _mostly_half(proto: onnx.ModelProto) -> bool:
    kinds = [t.data_type for t in proto.graph.initializer if len(t.dims) >= 2]
    return kinds.count(onnx.TensorProto.FLOAT16) > kinds.count(onnx.TensorProto.FLOAT)


def onnx_facts(proto: onnx.ModelProto, imgsz: tuple[int, int] | None, stride: int) -> ModelFacts:
    if len(proto.graph.input) != 1 or len(_dims(proto.graph.input[0])) != 4:
        raise VerificationError("expected one image input [B,3,H,W], found "
                                f"{[(i.name, _dims(i)) for i in proto.graph.input]}")
    b, _, h, w = _dims(proto.graph.input[0])
    meta = _meta(proto)
    outs = [o.name for o in proto.graph.output]
    nms = meta.nms if meta is not None else NmsSettings("onnx" if "num_dets" in outs else "none")
    if h is not None and w is not None:
        hw = (h, w)
    else:
        hw, _ = round_to_stride(imgsz or (meta.imgsz if meta is not None else None) or (640, 640), stride)
    half = meta.half if meta is not None else _mostly_half(proto)
    return ModelFacts(hw, b or 1, b is None or h is None, half, nms.mode, nms.conf_thres, nms.iou_thres,
                      nms.max_det)


def raw_output_model(proto: onnx.ModelProto, nc: int) -> onnx.ModelProto | None:
    """`proto` cut down to its raw prediction tensor [B, N, 5+nc] (our `output`, or the first graph output of
    that shape), or None when it has none."""
    from .layer_diff import _prune_to

    names = [o.name for o in proto.graph.output]
    produced = {t for n in proto.graph.node for t in n.output}
    if RAW in names and len(names) == 1:
        return proto
    if RAW in produced:
        target = RAW
    else:
        cands = [o.name for o in proto.graph.output if len(_dims(o)) == 3 and _dims(o)[2] in (nc + 5, None)]
        if not cands:
            return None
        target = cands[0]
    m = onnx.ModelProto.FromString(proto.SerializeToString())
    _prune_to(m.graph, [target])
    del m.graph.output[:]
    m.graph.output.append(onnx.helper.make_tensor_value_info(target, onnx.TensorProto.FLOAT, None))
    return m


def verify_onnx(model: YOLORModel, proto: onnx.ModelProto, image: str | Path | None,
                imgsz: tuple[int, int] | None = None, refs=None,
                serialized: bytes | None = None) -> tuple[VerifyReport, list]:
    """Judge an ONNX model (in ONNX Runtime, CPU) against `model`. Returns (report, refs used). `serialized`:
    `proto`'s bytes when the caller has them (the session then reads those, not a second serialization)."""
    from ..formats.onnx_meta import op_types
    from ..runtime.backends.onnxruntime import cpu_session

    f = onnx_facts(proto, imgsz, max(model.strides))
    if refs is None:
        refs = references(model, verification_inputs(f.imgsz, f.batch, max(model.strides), f.dynamic, image))
    kw = dict(conf_thres=f.conf_thres, iou_thres=f.iou_thres, max_det=f.max_det)
    raw = raw_output_model(proto, model.nc)
    if raw is None:
        outs = ", ".join(f"{o.name} {_dims(o)}" for o in proto.graph.output)
        report = VerifyReport(half=f.half)
        from .verify import FAIL, CaseReport

        report.cases.append(CaseReport("outputs", refs[0][1].x.shape, (), False, np.inf, np.inf, [], None, FAIL,
                                       f"no decoded output [B, N, {model.nc + 5}] (outputs: {outs}): raw head "
                                       "maps only? (upstream's IDetect export drops the decode)"))
        return report, refs
    try:
        whole = serialized if serialized is not None else proto
        raw_sess = cpu_session(whole if raw is proto else raw)
        report = verify_raw(raw_sess, refs, half=f.half, **kw)
        if f.nms == "onnx":
            report.nms = verify_nms_graph(raw_sess, cpu_session(whole), [(k, r.x) for k, r in refs], **kw)
    except VerificationError:
        raise
    except Exception as e:  # noqa: BLE001 - ONNX Runtime refusing the model is a verdict, not a crash
        raise VerificationError(f"ONNX Runtime cannot run the model: {first_line(e)}") from None
    if f.nms == "trt":
        report.nms = NmsCheck("trt", note="EfficientNMS_TRT runs only in TensorRT: raw outputs verified")
    report.graph = graph_checks(op_types(proto))
    return report, refs


def verify_openvino(model: YOLORModel, path: str | Path, image: str | Path | None,
                    imgsz: tuple[int, int] | None = None, refs=None,
                    source: onnx.ModelProto | None = None) -> tuple[VerifyReport, list]:
    """Judge a model running in OpenVINO (CPU, f32): an IR `.xml` or an `.onnx`. A model with NMS inside is
    judged on its detections, or, when its ONNX `source` is at hand (export), by running the source's raw
    output in OpenVINO with the raw rule and checking the NMS graph against NumPy NMS on it."""
    from .openvino_session import OpenVINOSession

    sess = OpenVINOSession(path)
    backend = sess.backend
    meta = backend.metadata
    b, _, h, w = backend.input_shape
    dynamic = b is None or h is None or w is None
    stride = max(model.strides)
    hw = (h, w) if not dynamic else round_to_stride(imgsz or meta.imgsz or (640, 640), stride)[0]
    if refs is None:
        refs = references(model, verification_inputs(hw, b or 1, stride, dynamic, image))  # type: ignore[arg-type]
    kw = dict(conf_thres=meta.nms.conf_thres, iou_thres=meta.nms.iou_thres, max_det=meta.nms.max_det)
    if "num_dets" not in backend.output_names:
        return verify_raw(sess, refs, half=meta.half, **kw), refs
    raw = raw_output_model(source, model.nc) if source is not None else None
    if raw is not None:
        with tempfile.TemporaryDirectory() as d:
            onnx.save(raw, f"{d}/raw.onnx")
            raw_sess = OpenVINOSession(f"{d}/raw.onnx")
            report = verify_raw(raw_sess, refs, half=meta.half, **kw)
            report.nms_openvino = verify_nms_graph(raw_sess, sess, [(k, r.x) for k, r in refs], **kw)
        return report, refs
    report = VerifyReport(half=meta.half)
    name = sess.get_inputs()[0].name
    for label, ref in refs:
        outs = sess.run(None, {name: ref.x})
        num, boxes, scores, classes = (outs[backend.output_names.index(k)] for k in NMS_OUTPUTS)
        dets = [np.concatenate([boxes[i, :int(num[i, 0])], scores[i, :int(num[i, 0]), None],
                                classes[i, :int(num[i, 0]), None].astype(np.float32)], 1) for i in range(len(num))]
        report.cases.append(judge_nms_only(dets, ref, label, **kw))
    return report, refs


def verify_file(model: YOLORModel, path: str | Path, image: str | Path | None = None,
                imgsz: tuple[int, int] | None = None, openvino: bool = False) -> VerifyReport:
    """`yolor-deploy verify`: an `.onnx` (ONNX Runtime; also OpenVINO when `openvino`) or an OpenVINO `.xml`."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such model file")
    torch.set_grad_enabled(False)
    if p.suffix.lower() == ".xml":
        report, _ = verify_openvino(model, p, image, imgsz)
        return report
    try:
        proto = onnx.load(str(p))
    except Exception as e:  # noqa: BLE001 - protobuf errors
        raise InputError(f"{p}: not an ONNX model ({first_line(e)})") from None
    report, refs = verify_onnx(model, proto, image, imgsz)
    if openvino:
        ov, _ = verify_openvino(model, p, image, imgsz, refs, source=proto)
        report.nms_openvino = ov.nms_openvino
        for c in ov.cases:
            c.name = c.name if c.name.startswith("openvino") else f"openvino {c.name}"
        report.cases += ov.cases
    return report
