"""The one contract between export and runtime: what an exported model says about itself.

Torch-free and numpy-free. `ModelMetadata` is written by export (`to_json`, stored under METADATA_KEY in
ONNX `metadata_props` and in an OpenVINO IR's `rt_info`) and read by every runtime backend, the torch
backend, `info`, `verify` and the tests (`from_json`, which validates everything it reads: a model file is
hostile until proven otherwise). Also here: the NMS modes and output names, and the image-size rules
(`parse_imgsz`, `round_to_stride`) that export and runtime must agree on.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

METADATA_KEY = "yolor_deploy"
FORMAT = 1
INPUT_NAME = "images"
RAW_OUTPUT = "output"  # [B, N, 5+nc]: cx, cy, w, h (input pixels), obj, cls... sigmoided
NMS_MODES = ("none", "onnx", "trt")
NMS_OUTPUTS = ("num_dets", "boxes", "scores", "classes")
DEFAULT_STRIDES = (8, 16, 32, 64)
PAD_VALUE = 114
INPUT_CONVENTION = {"name": INPUT_NAME, "layout": "NCHW", "color": "RGB", "scale": "0..1", "letterbox": True}

MAX_JSON_CHARS = 1 << 20  # metadata larger than 1 MiB is refused unparsed
MAX_CLASSES = 100_000
MAX_SIDE = 16_384
MAX_DET = 100_000
MAX_STRIDE = 1024
RUNTIME_BACKENDS = ("onnxruntime", "openvino")
INFERENCE_PRECISIONS = ("f32", "bf16", "f16")  # OpenVINO INFERENCE_PRECISION_HINT values we set
MAX_THREADS = 1024  # an explicit --threads
RUNTIME_HINT_KEYS = ("backend", "precision", "threads")  # others are refused (a hint never half-applies)


def max_hint_threads() -> int:
    """The most intra-op threads a runtime hint may ask for: 4 per core of this machine, at least 64 (a
    hint travels with its model: one measured on a 16-core server must still open on a laptop)."""
    return max(64, 4 * (os.cpu_count() or 1))


class MetadataError(ValueError):
    """The metadata is malformed; the message says what is wrong (the caller names the file)."""


@dataclass(frozen=True)
class NmsSettings:
    """NMS baked into the graph (`mode` "onnx"/"trt") or left to the runtime (`mode` "none")."""

    mode: str = "none"
    conf_thres: float = 0.25
    iou_thres: float = 0.45
    max_det: int = 300

    def __post_init__(self) -> None:
        if self.mode not in NMS_MODES:
            raise MetadataError(f"unknown nms mode {self.mode!r} (one of {', '.join(NMS_MODES)})")
        if not 0.0 <= self.conf_thres < 1.0 or not 0.0 < self.iou_thres <= 1.0:
            raise MetadataError(f"nms thresholds out of range: conf {self.conf_thres}, iou {self.iou_thres}")
        if not 1 <= self.max_det <= MAX_DET:
            raise MetadataError(f"nms max_det {self.max_det} out of range 1..{MAX_DET}")


@dataclass(frozen=True)
class RuntimeHint:
    """How a model was measured and is meant to run (`yolor-deploy optimize` writes it into `best.*`):
    the `backend`, OpenVINO's inference `precision` (f32, or bf16/f16 for the float ops, also those of
    an int8 model), and intra-op `threads` (None: the runtime's default). The runtime honours it unless
    the caller chooses otherwise."""

    backend: str = "onnxruntime"
    precision: str = "f32"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in RUNTIME_BACKENDS:
            raise MetadataError(f"runtime.backend {self.backend!r}: expected one of {', '.join(RUNTIME_BACKENDS)}")
        if self.precision not in INFERENCE_PRECISIONS:
            raise MetadataError(f"runtime.precision {self.precision!r}: expected one of "
                                f"{', '.join(INFERENCE_PRECISIONS)}")
        if self.precision != "f32" and self.backend != "openvino":
            raise MetadataError(f"runtime.precision {self.precision!r} is an OpenVINO setting "
                                f"(backend {self.backend!r})")
        if self.threads is not None and not 1 <= self.threads <= max_hint_threads():
            raise MetadataError(f"runtime.threads {self.threads} out of range 1..{max_hint_threads()} "
                                f"(4 per core, at least 64)")

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, "threads": self.threads}

    @classmethod
    def from_dict(cls, d: Any) -> RuntimeHint:
        """The one validator of a runtime hint, for the model's metadata and an optimize report alike:
        MetadataError naming the field for an unknown key, a non-string backend/precision, threads that are
        not a plain integer (a float, a bool, a string, a 401-digit number) or out of 1..max_hint_threads()."""
        if not isinstance(d, dict):
            raise MetadataError("'runtime' is not an object")
        unknown = set(d) - set(RUNTIME_HINT_KEYS)
        if unknown:
            raise MetadataError(f"runtime: unknown key(s) {', '.join(sorted(map(str, unknown)))[:200]} "
                                f"(expected {', '.join(RUNTIME_HINT_KEYS)})")
        threads = d.get("threads")
        if threads is not None and (type(threads) is not int or not 1 <= threads <= max_hint_threads()):
            shown = repr(threads) if type(threads) is not int or abs(threads) < 10**12 else "a huge number"
            raise MetadataError(f"runtime.threads: {shown[:40]} is not an integer" if type(threads) is not int else
                                f"runtime.threads {shown} out of range 1..{max_hint_threads()} (4 per core, >= 64)")
        return cls(backend=_hint_str(d.get("backend", "onnxruntime"), "runtime.backend"),
                   precision=_hint_str(d.get("precision", "f32"), "runtime.precision"), threads=threads)


@dataclass(frozen=True)
class ModelMetadata:
    """What the runtime needs to know about a model. `imgsz` is (H, W); `batch` None when dynamic."""

    names: tuple[str, ...]
    stride: tuple[int, ...] = DEFAULT_STRIDES
    imgsz: tuple[int, int] | None = None
    dynamic: bool = False
    batch: int | None = 1
    pad_value: int = PAD_VALUE
    nms: NmsSettings = field(default_factory=NmsSettings)
    half: bool = False
    branch: str = ""
    variant: str = ""
    source_sha256: str = ""
    version: str = ""
    quantized: str = ""  # int8 models: e.g. "int8-qdq" (ONNX Runtime) or "int8-nncf" (OpenVINO)
    quantization: Mapping[str, Any] | None = None  # int8 models: how they were made
    runtime: RuntimeHint | None = None  # how to run it (written by `optimize` into the model it picks)
    from_model: bool = True  # False when these are fallback defaults, not read from the model

    def __post_init__(self) -> None:
        if len(self.names) > MAX_CLASSES:
            raise MetadataError(f"{len(self.names)} class names (at most {MAX_CLASSES})")
        if not self.stride or any(not 1 <= s <= MAX_STRIDE for s in self.stride):
            raise MetadataError(f"stride {list(self.stride)}: expected positive integers <= {MAX_STRIDE}")
        if self.imgsz is not None and any(not 1 <= v <= MAX_SIDE for v in self.imgsz):
            raise MetadataError(f"imgsz {list(self.imgsz)}: expected 1..{MAX_SIDE}")
        if self.batch is not None and not 1 <= self.batch <= 65_536:
            raise MetadataError(f"batch {self.batch} out of range")
        if not 0 <= self.pad_value <= 255:
            raise MetadataError(f"pad_value {self.pad_value} out of range 0..255")

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def max_stride(self) -> int:
        return max(self.stride)

    def replace(self, **changes: Any) -> ModelMetadata:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": FORMAT, "names": list(self.names), "stride": list(self.stride),
            "imgsz": list(self.imgsz) if self.imgsz else None, "dynamic": self.dynamic, "batch": self.batch,
            "pad_value": self.pad_value,
            "nms": {"mode": self.nms.mode, "conf_thres": self.nms.conf_thres, "iou_thres": self.nms.iou_thres,
                    "max_det": self.nms.max_det},
            "half": self.half, "branch": self.branch, "variant": self.variant,
            "source_sha256": self.source_sha256, "version": self.version, "input": dict(INPUT_CONVENTION),
        }
        if self.quantized:
            d["quantized"] = self.quantized
        if self.quantization is not None:
            d["quantization"] = dict(self.quantization)
        if self.runtime is not None:
            d["runtime"] = self.runtime.to_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelMetadata:
        """Parse and validate; MetadataError with the reason when anything is off."""
        if len(text) > MAX_JSON_CHARS:
            raise MetadataError(f"{len(text)} characters (at most {MAX_JSON_CHARS})")
        try:
            d = json.loads(text, parse_constant=_no_constant)
        except RecursionError:
            raise MetadataError("nested too deeply") from None
        except ValueError as e:
            raise MetadataError(f"not JSON ({e})") from None
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: Any) -> ModelMetadata:
        if not isinstance(d, dict):
            raise MetadataError("not a JSON object")
        fmt = d.get("format", FORMAT)
        if fmt != FORMAT:
            raise MetadataError(f"unsupported metadata format {fmt!r} (this version reads format {FORMAT})")
        nms_d = _get(d, "nms", dict, {})
        quant = d.get("quantization")
        if quant is not None and not isinstance(quant, dict):
            raise MetadataError("'quantization' is not an object")
        imgsz = d.get("imgsz")
        batch = d.get("batch")
        return cls(
            names=tuple(_str(n, "names") for n in _get(d, "names", list, None)),
            stride=tuple(_int(s, "stride") for s in (_get(d, "stride", list, []) or DEFAULT_STRIDES)),
            imgsz=_hw(imgsz) if imgsz else None,
            dynamic=_bool(d.get("dynamic", False), "dynamic"),
            batch=_int(batch, "batch") if batch is not None else None,
            pad_value=_int(d.get("pad_value", PAD_VALUE), "pad_value"),
            nms=NmsSettings(mode=_str(nms_d.get("mode", "none"), "nms.mode"),
                            conf_thres=_float(nms_d.get("conf_thres", 0.25), "nms.conf_thres"),
                            iou_thres=_float(nms_d.get("iou_thres", 0.45), "nms.iou_thres"),
                            max_det=_int(nms_d.get("max_det", 300), "nms.max_det")),
            half=_bool(d.get("half", False), "half"),
            branch=_str(d.get("branch", ""), "branch"),
            variant=_str(d.get("variant", ""), "variant"),
            source_sha256=_str(d.get("source_sha256", ""), "source_sha256"),
            version=_str(d.get("version", ""), "version"),
            quantized=_str(d.get("quantized", ""), "quantized"),
            quantization=quant,
            runtime=RuntimeHint.from_dict(d["runtime"]) if d.get("runtime") is not None else None,
        )


def _no_constant(name: str) -> float:
    raise MetadataError(f"{name} is not a number")


def _get(d: dict, key: str, kind: type, default: Any) -> Any:
    if key not in d or d[key] is None:
        if default is None:
            raise MetadataError(f"missing {key!r}")
        return default
    if not isinstance(d[key], kind):
        raise MetadataError(f"{key!r} is not a {'list' if kind is list else 'object'}")
    return d[key]


def _int(v: Any, what: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if not isinstance(v, float) or not math.isfinite(v) or int(v) != v:
        raise MetadataError(f"{what}: {v!r} is not an integer")
    return int(v)


def _float(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise MetadataError(f"{what}: {v!r} is not a finite number")
    return float(v)


def _str(v: Any, what: str) -> str:
    if not isinstance(v, (str, int)) or isinstance(v, bool):
        raise MetadataError(f"{what}: {v!r} is not a string")
    return str(v)[:1000]


def _hint_str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise MetadataError(f"{what}: {repr(v)[:40] if not isinstance(v, int) else 'a number'} is not a string")
    return v[:100]


def _bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise MetadataError(f"{what}: {v!r} is not true/false")
    return v


def _hw(v: Any) -> tuple[int, int]:
    if not isinstance(v, list) or len(v) != 2:
        raise MetadataError(f"imgsz {v!r}: expected [H, W]")
    return _int(v[0], "imgsz"), _int(v[1], "imgsz")


def parse_imgsz(values: int | Sequence[int] | None, default: int = 640) -> tuple[int, int]:
    """`N` or `(H, W)` (CLI `--imgsz N` / `--imgsz H W`) -> (H, W); None -> (default, default)."""
    if values is None or (isinstance(values, Sequence) and len(values) == 0):
        return (default, default)
    if isinstance(values, int):
        return (values, values)
    if len(values) > 2:
        raise ValueError("image size takes N or H W")
    h, w = int(values[0]), int(values[-1])
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise ValueError(f"image size {h}x{w} out of range 1..{MAX_SIDE}")
    return (h, w)


def round_to_stride(hw: tuple[int, int], stride: int) -> tuple[tuple[int, int], str | None]:
    """(H, W) rounded up to multiples of `stride`, and a one-line note when that changed the size."""
    out = (max(stride, -(-hw[0] // stride) * stride), max(stride, -(-hw[1] // stride) * stride))
    note = None if out == tuple(hw) else (f"image size {hw[0]}x{hw[1]} is not a multiple of the largest stride "
                                          f"{stride}: using {out[0]}x{out[1]}")
    return out, note
