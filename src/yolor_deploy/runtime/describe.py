"""What a deployable model file (`.onnx`, OpenVINO `.xml`) holds: input/output shapes and our
metadata, read by the runtime that would run it (no torch), plus the ONNX opset and op counts."""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from .backends.metadata import METADATA_KEY, MetadataWarning
from .detector import open_backend

MODEL_SUFFIXES = (".onnx", ".xml")


def _dims(shape) -> list:
    return ["?" if d is None else d for d in shape]


def describe_model(path: str | Path) -> dict:
    """A JSON-able description of the model at `path` (InputError when it cannot be opened)."""
    path = Path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetadataWarning)
        backend = open_backend(path)
    m = backend.metadata
    info = {
        "file": str(path), "format": "OpenVINO IR" if path.suffix.lower() == ".xml" else "ONNX",
        "runtime": backend.name, "load_s": round(backend.load_seconds, 3),
        "input": {"shape": _dims(backend.input_shape), "dtype": str(backend.input_dtype)},
        "outputs": {n: _dims(s) for n, s in zip(backend.output_names, backend.output_shapes)},
        "metadata": METADATA_KEY if m.from_model else "none (defaults assumed)",
        "names": list(m.names), "stride": list(m.stride), "imgsz": list(m.imgsz) if m.imgsz else None,
        "dynamic": m.dynamic, "batch": m.batch, "pad_value": m.pad_value, "nms": asdict(m.nms), "half": m.half,
        "quantized": m.quantized or None, "branch": m.branch, "variant": m.variant,
        "source_sha256": m.source_sha256, "version": m.version,
        "warnings": [str(w.message) for w in caught if issubclass(w.category, MetadataWarning)],
    }
    if info["format"] == "ONNX":
        info.update(_onnx_graph(path))
    return info


def _onnx_graph(path: Path) -> dict:
    """Opset and op counts (onnx is part of the runtime extra; skipped quietly if absent)."""
    try:
        import onnx
    except ImportError:
        return {}
    model = onnx.load(str(path), load_external_data=False)
    ops = Counter(n.op_type for n in model.graph.node)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return {"opset": opset, "nodes": sum(ops.values()), "op_types": dict(ops.most_common())}
