"""Pure functions on ONNX `ModelProto`s (copy in, return new; never mutate the argument): our metadata
(the contract's `ModelMetadata`, as JSON under METADATA_KEY), op counts, opset entries. No torch."""
from __future__ import annotations

import json

import onnx

from ..contract import METADATA_KEY, ModelMetadata


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def set_metadata(model: onnx.ModelProto, meta: ModelMetadata) -> onnx.ModelProto:
    """A copy of `model` carrying `meta` (one JSON value), plus plain `names`/`stride` keys for other tools."""
    out = copy_model(model)
    props = {p.key: p.value for p in out.metadata_props}
    props[METADATA_KEY] = meta.to_json()
    props["names"] = json.dumps({i: n for i, n in enumerate(meta.names)})
    props["stride"] = str(meta.max_stride)
    del out.metadata_props[:]
    for k, v in props.items():
        out.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    out.producer_name = "yolor-deploy"
    out.producer_version = meta.version
    return out


def metadata_text(model: onnx.ModelProto) -> str | None:
    return next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)


def get_metadata(model: onnx.ModelProto) -> ModelMetadata | None:
    """Our metadata, validated (contract.MetadataError when malformed), or None when absent."""
    text = metadata_text(model)
    return None if text is None else ModelMetadata.from_json(text)


def op_types(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in model.graph.node:
        key = f"{n.domain}::{n.op_type}" if n.domain and n.domain != "ai.onnx" else n.op_type
        counts[key] = counts.get(key, 0) + 1
    return counts


def opset_version(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def unique_opsets(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with one opset entry per domain, the highest (`onnx.compose.merge_models` repeats them; ORT's
    quantizer refuses such files)."""
    out = copy_model(model)
    best: dict[str, int] = {}
    for o in out.opset_import:
        dom = "" if o.domain == "ai.onnx" else o.domain
        best[dom] = max(best.get(dom, 0), o.version)
    del out.opset_import[:]
    out.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in best.items())
    return out
