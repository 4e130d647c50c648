"""Build the artifact a candidate runs: the fp32 ONNX as given, its OpenVINO IR, ONNX Runtime QDQ int8,
NNCF int8 IR, or an fp16 ONNX. Every file goes into the run's work folder; `write_best` copies the
chosen one to the output with its runtime hint (`contract.RuntimeHint`) in its metadata."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import onnx

from ..contract import ModelMetadata, RuntimeHint
from ..errors import ExportError
from ..formats.onnx_meta import get_metadata, set_metadata
from .candidates import CandidateSpec


def build_artifact(spec: CandidateSpec, source: Path, calib: Sequence[str | Path], calib_size: int,
                   workdir: Path) -> Path:
    """The model file `spec` runs, built into `workdir` (the source itself for the fp32 ONNX)."""
    from ..quantize.ort_qdq import QuantizeOptions, quantize_onnx

    stem = f"{spec.artifact}-{hashlib.sha256(repr(spec.artifact_key).encode()).hexdigest()[:8]}"
    if spec.artifact == "onnx":
        return source
    if spec.artifact == "ir":
        return convert_ir(source, workdir / f"{stem}.xml")
    if spec.artifact == "onnx-fp16":
        return convert_fp16(source, workdir / f"{stem}.onnx")
    if spec.artifact in ("ort-qdq", "nncf"):
        backend = "openvino" if spec.artifact == "nncf" else "onnxruntime"
        out = workdir / f"{stem}{'.xml' if backend == 'openvino' else '.onnx'}"
        opts = QuantizeOptions(calib_size=calib_size, backend=backend, **dict(spec.settings))
        return quantize_onnx(source, out, calib, opts).path
    raise ExportError(f"unknown artifact {spec.artifact!r}")


def open_candidate(spec: CandidateSpec, file: str | Path, threads: int, streams: int = 1):
    """The backend that runs a candidate's built file, as `Detector(best.*)` opens it: OpenVINO at the spec's
    inference precision, ONNX Runtime (CUDA for GPU candidates, no spinning threads: several models are timed
    interleaved). `streams` > 1: opened for that many calls in flight, as throughput mode opens it (OpenVINO's
    THROUGHPUT hint with `streams` streams; ONNX Runtime with threads // streams threads per call)."""
    import warnings

    from ..runtime.backends.onnxruntime import OrtBackend
    from ..runtime.backends.openvino import OpenVINOBackend

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.backend == "openvino":
            return OpenVINOBackend(file, threads=threads, precision=spec.infer_precision, streams=streams)
        prov = ["CUDAExecutionProvider"] if spec.needs == ("gpu",) else ["CPUExecutionProvider"]
        return OrtBackend(file, providers=prov, threads=max(1, threads // max(streams, 1)), spinning=False)


def convert_ir(source: Path, out: Path) -> Path:
    """The fp32 ONNX `source` as an OpenVINO IR at `out` (.xml + .bin), our metadata in rt_info."""
    from ..formats.openvino_ir import convert_to_ir, install_ir, ir_workdir

    proto = onnx.load(str(source))
    meta = _metadata(proto, source)
    with ir_workdir(out) as d:
        xml = convert_to_ir(proto, meta, d)
        return install_ir(xml, out)[0]


def convert_fp16(source: Path, out: Path) -> Path:
    """fp16 weights and activations, fp32 input/output (ONNX Runtime's converter); for GPU providers."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from ..fs import atomic_path

    proto = onnx.load(str(source))
    meta = _metadata(proto, source)
    half = convert_float_to_float16(proto, keep_io_types=True, disable_shape_infer=True)
    half = set_metadata(half, meta.replace(half=True))
    with atomic_path(out) as tmp:
        onnx.save(half, str(tmp))
    return out


def _metadata(proto: onnx.ModelProto, source: Path) -> ModelMetadata:
    meta = get_metadata(proto)
    if meta is None:
        raise ExportError(f"{source}: no yolor_deploy metadata")
    return meta


def write_best(artifact: Path, hint: RuntimeHint, out_dir: Path) -> list[Path]:
    """Copy `artifact` to `out_dir/best.onnx` or `best.xml` + `best.bin`, its metadata carrying `hint`;
    the other kind of best (from an earlier run) is removed. Returns the files written."""
    from ..formats.openvino_ir import import_openvino, install_ir, ir_workdir, save_ir
    from ..fs import atomic_path
    from ..runtime.backends.openvino import rt_metadata

    if artifact.suffix.lower() == ".xml":
        target = out_dir / "best.xml"
        model = import_openvino().Core().read_model(str(artifact))
        meta = ModelMetadata.from_json(rt_metadata(model) or "{}").replace(runtime=hint)
        with ir_workdir(target) as d:
            written = list(install_ir(save_ir(model, meta, d), target))
        _remove(out_dir / "best.onnx")
    else:
        target = out_dir / "best.onnx"
        proto = onnx.load(str(artifact))
        meta = _metadata(proto, artifact).replace(runtime=hint)
        with atomic_path(target) as tmp:
            onnx.save(set_metadata(proto, meta), str(tmp))
        written = [target]
        _remove(out_dir / "best.xml", out_dir / "best.bin")
    return written


def _remove(*paths: Path) -> None:
    for p in paths:
        if p.is_file():
            p.unlink()

