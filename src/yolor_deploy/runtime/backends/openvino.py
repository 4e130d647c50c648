"""An ONNX model or OpenVINO IR (`.xml` + `.bin`) run by the OpenVINO runtime, behind the `Backend` face.

Imports openvino lazily and never torch. Inference precision is pinned to f32 (OpenVINO otherwise
picks bf16/f16 on CPUs that have them, which changes detections) unless the caller or the model's own
runtime hint (`contract.RuntimeHint`, written by `yolor-deploy optimize`) asks for bf16/f16; `threads`
(else the hint's) sets `INFERENCE_NUM_THREADS`. Our metadata is read from the IR's `rt_info["yolor_deploy"]` (written by
`yolor-deploy export --openvino`) or, for an ONNX file, from the `metadata_props` that OpenVINO's
ONNX reader keeps under `rt_info["framework"]`.

Concurrency: an OpenVINO InferRequest runs one inference at a time and owns its output tensors, so calls
from several threads each take their own request from a pool (created on demand, kept for reuse) and
return copies of the outputs: a `Detector` on an OpenVINO model may be called from many threads at once.
"""
from __future__ import annotations

import queue
import re
import time
from pathlib import Path

import numpy as np

from ...contract import INFERENCE_PRECISIONS
from ...errors import InputError, first_line, internal_error
from ...formats.openvino_ir import import_openvino, resolve_ir
from .metadata import METADATA_KEY, parse_metadata, read_metadata, static_dim

DEFAULT_DEVICE = "CPU"


def rt_metadata(model) -> str | None:
    """Our metadata JSON from an OpenVINO model's rt_info (IR or ONNX-read), or None."""
    for key in ([METADATA_KEY], ["framework", METADATA_KEY]):
        if model.has_rt_info(key):
            return str(model.get_rt_info(key).astype(str))
    return None


class OpenVINOBackend:
    """`model_path`: `.onnx` or `.xml` (its `.bin` beside it). `device`: an OpenVINO device name."""

    def __init__(self, model_path: str | Path, device: str | None = None, threads: int | None = None,
                 precision: str | None = None, streams: int = 1):
        ov = import_openvino()
        path = Path(model_path)
        self.path = str(path)
        if not path.is_file():
            raise InputError(f"{path}: no such model file")
        if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
            raise InputError(f"{path}: OpenVINO IR without its weights file {path.with_suffix('.bin').name}")
        device = (device or DEFAULT_DEVICE).upper()
        core = ov.Core()
        if device not in core.available_devices and re.split(r"[.:]", device)[0] not in ("AUTO", "MULTI", "HETERO"):
            raise InputError(f"{path}: OpenVINO device {device!r} is not available; available: "
                             f"{', '.join(core.available_devices)}")
        t0 = time.perf_counter()
        load = resolve_ir(path) if path.suffix.lower() == ".xml" else path  # a mixed pair: the previous one
        try:
            model = core.read_model(str(load))
        except RuntimeError as e:  # what OpenVINO raises for a file it cannot read or compile
            raise InputError(f"{path}: cannot load model in OpenVINO ({first_line(e)})") from None
        except Exception as e:  # noqa: BLE001 - anything else (a TypeError from our arguments) is a bug of ours
            raise internal_error(str(path), e, "reading the model in OpenVINO") from e
        self.metadata_text = rt_metadata(model)
        hint = parse_metadata(self.metadata_text, self.path).runtime if self.metadata_text else None
        if hint is not None and hint.backend == "openvino":
            precision, threads = precision or hint.precision, threads or hint.threads
        self.precision = precision or "f32"
        if self.precision not in INFERENCE_PRECISIONS:
            raise InputError(f"{path}: OpenVINO inference precision {self.precision!r}: choose one of "
                             f"{', '.join(INFERENCE_PRECISIONS)}")
        # No CPU pinning: on a machine shared with other processes (or other models, as in `optimize`'s
        # interleaved timing) pinned threads wait for their core; measured on 2 shared cores, yolor-p6 int8
        # p50 / p90 270 / 549 ms pinned vs 254 / 352 ms unpinned in one interleaved run.
        # Throughput mode (`streams` > 1): the THROUGHPUT hint with that many CPU streams, each running its own
        # infer request on its share of the cores. Under the LATENCY hint there is one stream, and concurrent
        # requests wait for it in turn (no gain from several images in flight).
        self.streams = max(int(streams), 1)
        config: dict[str, str | int | bool] = {
            "INFERENCE_PRECISION_HINT": self.precision, "ENABLE_CPU_PINNING": False,
            "PERFORMANCE_HINT": "THROUGHPUT" if self.streams > 1 else "LATENCY"}
        if self.streams > 1:
            config["NUM_STREAMS"] = self.streams
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.compiled = core.compile_model(model, device, config if device == "CPU" else {})
        except RuntimeError as e:  # what OpenVINO raises for a file it cannot read or compile
            raise InputError(f"{path}: cannot load model in OpenVINO ({first_line(e)})") from None
        except Exception as e:  # noqa: BLE001 - anything else (a TypeError from our arguments) is a bug of ours
            raise internal_error(str(path), e, "compiling the model in OpenVINO") from e
        self.load_seconds = time.perf_counter() - t0
        self.name = (f"openvino {ov.get_version().split('-')[0]} ({device}"
                     f"{'' if self.precision == 'f32' else ', ' + self.precision}"
                     f"{f', {self.streams} streams' if self.streams > 1 else ''})")
        self._describe()

    @classmethod
    def from_compiled(cls, compiled, label: str, metadata_text: str | None) -> OpenVINOBackend:
        """A model someone else compiled (NNCF's accuracy control hands one to its validation function), with our
        metadata JSON (`metadata_text`, from the source model) and `label` standing for its path in messages."""
        self = cls.__new__(cls)
        self.path, self.compiled, self.metadata_text = label, compiled, metadata_text
        self.precision, self.streams, self.load_seconds = "f32", 1, 0.0
        self.name = f"openvino (compiled {label})"
        self._describe()
        return self

    def _describe(self) -> None:
        """Inputs, outputs and metadata of `self.compiled`; one infer request per stream, made now."""
        path = self.path
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(self.streams):
            self._requests.put(self.compiled.create_infer_request())
        inputs = self.compiled.inputs
        if len(inputs) != 1 or inputs[0].get_partial_shape().rank.get_length() != 4:
            raise InputError(f"{path}: expected one image input [B,3,H,W], found "
                             f"{[(i.get_any_name(), str(i.get_partial_shape())) for i in inputs]}")
        self.input_name = inputs[0].get_any_name()
        self.input_shape = _shape(inputs[0].get_partial_shape())
        self.input_dtype = np.dtype(np.float16 if inputs[0].get_element_type().get_type_name() == "f16"
                                    else np.float32)
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self.output_shapes = [_shape(o.get_partial_shape()) for o in self.compiled.outputs]
        self.metadata = read_metadata(self.metadata_text, self.path, self.output_names,
                                      _shape(self.compiled.outputs[0].get_partial_shape()), self.input_shape)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """ndarray[B, 3, H, W] -> the model's outputs, in `output_names` order (copies, not views).
        Thread-safe: each concurrent call runs on its own infer request."""
        try:
            request = self._requests.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            res = request.infer({0: np.ascontiguousarray(x, dtype=self.input_dtype)})
            return [np.array(res[o]) for o in self.compiled.outputs]
        finally:
            self._requests.put(request)


def _shape(partial) -> tuple[int | None, ...]:
    return tuple(static_dim(d.get_length()) if d.is_static else None for d in partial)
