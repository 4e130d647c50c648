"""The candidates `optimize` considers: small declarative specs, filtered by what the machine has.

A spec says which artifact to build (`artifact`: the fp32 ONNX as given, its OpenVINO IR, an ONNX
Runtime QDQ int8 model, an NNCF int8 IR, an fp16 ONNX) with which quantizer settings, and how to run
it (`backend`, OpenVINO `infer_precision` for the float ops). Specs that share an artifact share one
build. A spec whose needs the machine lacks becomes a "skipped" row saying why.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from .machine import Machine

REFERENCE = "ort-fp32"
ARTIFACTS = ("onnx", "ir", "ort-qdq", "nncf", "onnx-fp16")


@dataclass(frozen=True)
class CandidateSpec:
    """`precision`: what the weights and most of the compute are (fp32, bf16, fp16, int8), for the table;
    `settings`: quantizer options (`QuantizeOptions` fields); `needs`: machine capabilities."""

    name: str
    backend: str  # "onnxruntime" | "openvino"
    precision: str
    artifact: str = "onnx"
    settings: Mapping[str, Any] = field(default_factory=dict)
    infer_precision: str = "f32"
    needs: tuple[str, ...] = ()
    note: str = ""

    @property
    def artifact_key(self) -> tuple:
        """Specs with equal keys run the same built file."""
        return (self.artifact, tuple(sorted((k, repr(v)) for k, v in self.settings.items())))


_ORT, _OV = "onnxruntime", "openvino"
CANDIDATES: tuple[CandidateSpec, ...] = (
    CandidateSpec(REFERENCE, _ORT, "fp32", note="the export as given (reference)"),
    CandidateSpec("ort-int8", _ORT, "int8", "ort-qdq", {"method": "minmax"},
                  note="QDQ, int8 weights per channel, uint8 activations (min/max); decode and head outputs float"),
    CandidateSpec("ort-int8-pct", _ORT, "int8", "ort-qdq", {"method": "percentile"},
                  note="as ort-int8, activation ranges from the 99.999th percentile"),
    CandidateSpec("ov-fp32", _OV, "fp32", "ir", needs=("openvino",), note="OpenVINO IR, f32"),
    CandidateSpec("ov-bf16", _OV, "bf16", "ir", infer_precision="bf16", needs=("openvino", "bf16"),
                  note="OpenVINO IR, bf16 inference precision"),
    CandidateSpec("ov-int8", _OV, "int8", "nncf", needs=("openvino",),
                  note="NNCF int8 (performance preset), SiLU fused (Swish, SiLU moved before Concat); decode f32"),
    CandidateSpec("ov-int8-bf16", _OV, "int8", "nncf", infer_precision="bf16", needs=("openvino", "bf16"),
                  note="NNCF int8, the remaining float ops in bf16 (the decode stays f32)"),
    CandidateSpec("ov-int8-mixed", _OV, "int8", "nncf", {"nncf_preset": "mixed"}, needs=("openvino",),
                  note="NNCF int8, mixed preset: asymmetric activations (accuracy over speed)"),
    CandidateSpec("ov-int8-acc", _OV, "int8", "nncf-acc", needs=("openvino",),
                  note="NNCF int8 with accuracy control: the costliest layers back in float until the drop is "
                       "within half the budget; built only when ov-int8 misses the budget"),
    CandidateSpec("ort-fp16-cuda", _ORT, "fp16", "onnx-fp16", needs=("gpu",),
                  note="fp16 weights and activations on the CUDA provider"),
)


def backend_names(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """--backends: comma-separated or a list of onnxruntime/openvino (aliases ort, ov); None: both."""
    if spec is None:
        return (_ORT, _OV)
    items = spec.split(",") if isinstance(spec, str) else [p for s in spec for p in s.split(",")]
    alias = {"ort": _ORT, "onnxruntime": _ORT, "ov": _OV, "openvino": _OV}
    out = []
    for item in (i.strip().lower() for i in items if i.strip()):
        if item not in alias:
            raise InputError(f"--backends {item!r}: choose from onnxruntime, openvino (aliases ort, ov)")
        if alias[item] not in out:
            out.append(alias[item])
    if not out:
        raise InputError("--backends: name at least one of onnxruntime, openvino")
    return tuple(out)


def plan_candidates(machine: Machine, backends: Sequence[str] = (_ORT, _OV),
                    names: Sequence[str] | None = None,
                    specs: Sequence[CandidateSpec] = CANDIDATES) -> list[tuple[CandidateSpec, str | None]]:
    """(spec, None) for each candidate to build, (spec, reason) for each skipped one; the reference
    (ORT fp32) always comes first. `names` restricts the list (unknown names are an InputError)."""
    known = {s.name for s in specs}
    if names:
        bad = sorted(set(names) - known)
        if bad:
            raise InputError(f"--candidates {', '.join(bad)}: unknown; known: {', '.join(sorted(known))}")
    out: list[tuple[CandidateSpec, str | None]] = []
    for s in specs:
        if s.name != REFERENCE and names and s.name not in names:
            continue
        if s.name != REFERENCE and s.backend not in backends:
            continue
        missing = [n for n in s.needs if not machine.has(n)]
        out.append((s, machine.why_not(missing[0]) if missing else None))
    return out
