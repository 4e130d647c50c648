"""Triton's model configuration (`ModelConfig`) for an exported model: as a dict in the protobuf's JSON field
names, and as the text format of `config.pbtxt`.

One definition serves two places: `yolor-deploy triton` writes it into a model repository, and `serve` answers it
at `/v2/models/NAME/config` (and gRPC `ModelConfig`). Our metadata travels as `parameters`: the whole
`ModelMetadata` JSON under `yolor_metadata` (what a remote `Detector` reads back), and readable copies of the
classes, strides, letterbox and NMS settings.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..contract import ModelMetadata

METADATA_PARAM = "yolor_metadata"
AUTO_PAD_MULTIPLE = 64  # the runtime's letterbox pads a dynamic input to this multiple (upstream detect.py)
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "int64": "TYPE_INT64",
                "int32": "TYPE_INT32", "int8": "TYPE_INT8", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL"}


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: name, numpy dtype name (float32, int64, ...), dims with None where dynamic."""

    name: str
    dtype: str
    dims: tuple[int | None, ...]


def letterbox_note(meta: ModelMetadata, dynamic_hw: bool) -> dict[str, Any]:
    """How the raw input is made from an image (what `Detector.preprocess` does)."""
    return {"size": list(meta.imgsz) if meta.imgsz else None, "keep_ratio": True, "center": True,
            "pad_value": meta.pad_value, "pad_to_multiple": AUTO_PAD_MULTIPLE if dynamic_hw else None,
            "color": "RGB", "scale": "1/255", "layout": "NCHW"}


def model_config(name: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], meta: ModelMetadata,
                 backend: str, max_batch: int = 8) -> dict[str, Any]:
    """The ModelConfig of a model whose graph has `inputs`/`outputs`. A dynamic batch axis gives
    `max_batch_size` = `max_batch`, dims without the batch axis and `dynamic_batching`; a fixed batch gives
    `max_batch_size` 0 and the full dims. `backend`: "onnxruntime" or "openvino"."""
    batched = all(t.dims and t.dims[0] is None for t in (*inputs, *outputs))

    def tensor(t: TensorSpec) -> dict[str, Any]:
        if t.dtype not in TRITON_TYPES:
            raise ValueError(f"{name}: tensor {t.name!r} has type {t.dtype}, which this writer does not map")
        dims = t.dims[1:] if batched else t.dims
        return {"name": t.name, "data_type": TRITON_TYPES[t.dtype], "dims": [-1 if d is None else d for d in dims]}

    dynamic_hw = bool(inputs) and any(d is None for d in inputs[0].dims[2:])
    params = {
        METADATA_PARAM: meta.to_json(), "names": json.dumps(list(meta.names)), "strides": json.dumps(list(meta.stride)),
        "letterbox": json.dumps(letterbox_note(meta, dynamic_hw)),
        "nms": json.dumps({"mode": meta.nms.mode, "conf_thres": meta.nms.conf_thres, "iou_thres": meta.nms.iou_thres,
                           "max_det": meta.nms.max_det}),
    }
    config: dict[str, Any] = {"name": name}
    if backend == "onnxruntime":
        config["platform"] = "onnxruntime_onnx"
    config.update({"backend": backend, "max_batch_size": max_batch if batched else 0,
                   "input": [tensor(t) for t in inputs], "output": [tensor(t) for t in outputs]})
    if batched:
        config["dynamic_batching"] = {}
    config["instance_group"] = [{"count": 1, "kind": "KIND_CPU"}]
    config["parameters"] = {k: {"string_value": v} for k, v in params.items()}
    return config


def to_pbtxt(config: dict[str, Any]) -> str:
    """The ModelConfig dict -> protobuf text format (`config.pbtxt`)."""
    return "".join(_field(k, v, 0) for k, v in config.items())


def _field(key: str, value: Any, depth: int) -> str:
    pad = "  " * depth
    if key == "parameters":  # map<string, ModelParameter>: one entry per key
        return "".join(f"{pad}parameters {{\n{pad}  key: {_quote(k)}\n{pad}  value {{\n{pad}    string_value: "
                       f"{_quote(v['string_value'])}\n{pad}  }}\n{pad}}}\n" for k, v in value.items())
    if isinstance(value, dict):
        body = "".join(_field(k, v, depth + 1) for k, v in value.items())
        return f"{pad}{key} {{\n{body}{pad}}}\n" if body else f"{pad}{key} {{ }}\n"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return "".join(_field(key, v, depth) for v in value)
    if isinstance(value, list):
        return f"{pad}{key}: [ {', '.join(str(v) for v in value)} ]\n"
    if isinstance(value, str):
        return f"{pad}{key}: {value if value.startswith(('TYPE_', 'KIND_')) else _quote(value)}\n"
    return f"{pad}{key}: {value}\n"


def _quote(text: str) -> str:
    """A text-format string literal (UTF-8 kept as is; backslash, quote, newline escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def metadata_from_config(config: dict[str, Any]) -> ModelMetadata | None:
    """Our metadata back from a ModelConfig dict (JSON field names), None when it carries none."""
    entry = (config.get("parameters") or {}).get(METADATA_PARAM)
    text = entry.get("string_value") if isinstance(entry, dict) else None
    return ModelMetadata.from_json(text) if text else None
