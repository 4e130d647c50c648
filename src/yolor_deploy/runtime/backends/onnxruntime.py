"""An ONNX model run by ONNX Runtime, behind the `Backend` face (`protocol.py`): execution providers
(names, aliases, availability), the session, the model's metadata; and `cpu_session`, the quiet CPU session
that verification runs. Imports onnxruntime lazily, and never torch.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...contract import RuntimeHint
from ...errors import InputError, YolorDeployError, first_line
from .metadata import METADATA_KEY, ModelMetadata, parse_metadata, read_metadata, static_dim

# Short names accepted for execution providers (case-insensitive), besides the full ORT names.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "gpu": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
}
DEFAULT_PROVIDER_ORDER = ("CUDAExecutionProvider", "CPUExecutionProvider")


class ProviderError(YolorDeployError):
    """A requested execution provider is unknown or not available in this onnxruntime build."""


def resolve_providers(providers: str | Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """Map provider names (full ORT names or aliases like "cpu", "cuda"; a comma-separated string
    is split) to ORT names, checking each is available. None: CUDA if available, then CPU."""
    available = list(available)
    if providers is None:
        chosen = [p for p in DEFAULT_PROVIDER_ORDER if p in available]
        return chosen or available[:1]
    if isinstance(providers, str):
        providers = [p for p in providers.split(",") if p.strip()]
    out = []
    for p in providers:
        p = p.strip()
        full = PROVIDER_ALIASES.get(p.lower(), p)
        if full not in available:
            raise ProviderError(
                f"execution provider {p!r} is not available in this onnxruntime build; available: "
                f"{', '.join(available)} (aliases: {', '.join(sorted(PROVIDER_ALIASES))})"
            )
        if full not in out:
            out.append(full)
    return out


class OrtBackend:
    """An ONNX model in ONNX Runtime. `threads` sets intra-op threads (None: the model's runtime hint,
    written by `yolor-deploy optimize`, else ORT's default). `spinning=False` stops idle worker threads
    from spinning (for interleaved timing of several models on few cores)."""

    def __init__(self, model_path: str | Path, providers: str | Sequence[str] | None = None,
                 threads: int | None = None, spinning: bool = True):
        import onnxruntime as ort

        path = Path(model_path)
        self.path = str(path)
        if not path.is_file():
            raise InputError(f"{path}: no such model file")
        chosen = resolve_providers(providers, ort.get_available_providers())
        t0 = time.perf_counter()
        self.session = self._session(ort, path, chosen, threads, spinning)
        if threads is None:
            hint = self.runtime_hint()
            if hint is not None and hint.backend == "onnxruntime" and hint.threads:
                self.session = self._session(ort, path, chosen, hint.threads, spinning)
        self.load_seconds = time.perf_counter() - t0
        active = self.session.get_providers()
        missing = [p for p in chosen if p not in active]
        if missing:
            warnings.warn(f"{path}: onnxruntime did not enable {', '.join(missing)}; running on "
                          f"{', '.join(active)}", RuntimeWarning, stacklevel=2)
        self.providers = active
        self.name = f"onnxruntime ({active[0]})"

        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise InputError(f"{path}: expected one image input [B,3,H,W], found "
                             f"{[(i.name, i.shape) for i in inputs]}")
        inp = inputs[0]
        self.input_name = inp.name
        self.input_shape = tuple(static_dim(d) for d in inp.shape)
        self.input_dtype = np.dtype(np.float16 if inp.type == "tensor(float16)" else np.float32)
        outputs = self.session.get_outputs()
        self.output_names = [o.name for o in outputs]
        self.output_shapes = [tuple(static_dim(d) for d in o.shape) for o in outputs]
        self.metadata = self._read_metadata(outputs)

    @staticmethod
    def _session(ort, path: Path, providers: list[str], threads: int | None, spinning: bool):
        opts = ort.SessionOptions()
        opts.log_severity_level = 4  # fatal only: a failing run raises, with the same text, to our caller
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        if not spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # what ORT raises on a bad model or provider; anything else (our own bug) stays an exception of its
        # own kind, not "cannot load"
        refusals: tuple[type[BaseException], ...] = (*_ort_errors(), RuntimeError, ValueError)
        try:
            return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except refusals as e:
            msg = first_line(e)
            if "EfficientNMS_TRT" in str(e):
                msg = ("its graph holds TensorRT's EfficientNMS_TRT plugin (an --nms trt export): run it with "
                       "--providers tensorrt, or export with --nms onnx or none")
            raise InputError(f"{path}: cannot load ONNX model ({msg[:300]})") from None

    def runtime_hint(self) -> RuntimeHint | None:
        """The runtime hint in the model's metadata (None without one); malformed metadata is reported later."""
        text = (self.session.get_modelmeta().custom_metadata_map or {}).get(METADATA_KEY)
        if text is None:
            return None
        try:
            return parse_metadata(text, self.path).runtime
        except InputError:
            return None

    def _read_metadata(self, outputs) -> ModelMetadata:
        meta_map = self.session.get_modelmeta().custom_metadata_map or {}
        self.metadata_text = meta_map.get(METADATA_KEY)
        return read_metadata(self.metadata_text, self.path, self.output_names,
                             outputs[0].shape, self.input_shape)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """ndarray[B, 3, H, W] -> the model's outputs, in `output_names` order."""
        return self.session.run(None, {self.input_name: x.astype(self.input_dtype, copy=False)})


def _ort_errors() -> tuple[type[BaseException], ...]:
    """ONNX Runtime's own exception types (pybind classes derived from Exception: Fail, InvalidGraph, ...)."""
    import inspect

    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return tuple(c for c in vars(state).values() if inspect.isclass(c) and issubclass(c, Exception))


def cpu_session(model):
    """A quiet CPU ONNX Runtime session for a ModelProto (or serialized bytes): what verification
    and layer diffs run, independent of the user's provider choice."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
