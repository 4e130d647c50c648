"""`quantize_onnx`: an fp32 ONNX export -> ONNX Runtime static int8 model (QDQ format), or, with
`backend="openvino"`, an OpenVINO int8 IR made by NNCF (`openvino_nncf`).

What stays float, and why (measured on the trained shapes model, 20 images at 256):
- the *tail*, every node after the last Conv on its path: the box decode (grid from CumSum,
  Pow, Where) and an NMS graph. Quantizing the decode sends mAP@0.5 to 0.0; it is a few cheap
  element-wise ops, so it costs no speed to keep it float;
- the outputs of the detection-head Convs (the logits that the decode reads): a Conv output is
  quantized only where a quantized op consumes it, which the head's is not. mAP@0.5:0.95 0.693 ->
  0.727 (fp32 0.746). Their weights and inputs are still int8.
Weights are int8 (per output channel by default), activations uint8 (ORT's fast path on x86).
Per-channel `DequantizeLinear` needs opset >= 13, so older exports are refused.

Calibration images are preprocessed by the runtime's own `Detector.preprocess` (letterbox to the
model's size, RGB, /255), so the ranges are those the deployed model will see.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..contract import ModelMetadata
from ..errors import ExportError, InputError, first_line
from ..formats.onnx_meta import get_metadata, op_types, opset_version, set_metadata, unique_opsets

MIN_QUANT_OPSET = 13  # per-axis DequantizeLinear
METHODS = ("minmax", "percentile")
QUANTIZED_TAG = "int8-qdq"
QUANT_BACKENDS = ("onnxruntime", "openvino")
NNCF_PRESETS = ("performance", "mixed")


@dataclass
class QuantizeOptions:
    calib_size: int = 32  # calibration images at most (evenly spaced over the sources)
    per_channel: bool = True
    method: str = "minmax"  # or "percentile" (99.999th percentile of a histogram)
    providers: Sequence[str] | None = None  # for the calibration runs (default: CPU)
    backend: str = "onnxruntime"  # or "openvino": NNCF int8, written as an OpenVINO IR (.xml + .bin)
    nncf_preset: str = "performance"  # openvino: NNCF preset, "performance" (symmetric) or "mixed"


@dataclass
class QuantizeResult:
    path: Path
    metadata: ModelMetadata
    calib_images: list[Path]
    float_nodes: list[str]  # nodes kept in float (the decode/NMS tail)
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    op_types: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# --- checks -------------------------------------------------------------------------------------
def load_fp32_model(path: str | Path) -> onnx.ModelProto:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    try:
        return onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - protobuf raises several types; report one line
        raise InputError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None


def check_quantizable(model: onnx.ModelProto, source: str = "model", backend: str = "onnxruntime") -> ModelMetadata:
    """Our metadata of `model`, or InputError saying why it cannot be quantized here."""
    opset = opset_version(model)
    if backend == "onnxruntime" and opset < MIN_QUANT_OPSET:
        raise InputError(f"{source}: opset {opset} cannot hold per-channel int8 (DequantizeLinear with an "
                         f"axis needs opset {MIN_QUANT_OPSET}); re-export with `--opset {MIN_QUANT_OPSET}` or higher")
    try:
        meta = get_metadata(model)
    except ValueError as e:
        raise InputError(f"{source}: malformed yolor_deploy metadata ({e})") from None
    if meta is None:
        raise InputError(f"{source}: no yolor_deploy metadata; quantize a model made by `yolor-deploy export`")
    if meta.quantized:
        raise InputError(f"{source}: already quantized ({meta.quantized}); quantize the fp32 export")
    if meta.half:
        raise InputError(f"{source}: an fp16 (--half) export; quantize the fp32 export instead")
    if meta.nms.mode == "trt":
        raise InputError(f"{source}: --nms trt graphs cannot run in ONNX Runtime for calibration; "
                         f"quantize an --nms none or --nms onnx export")
    return meta


# --- graph preparation --------------------------------------------------------------------------
def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every node a unique name (`nodes_to_exclude` works by name)."""
    seen: set[str] = set()
    for i, n in enumerate(model.graph.node):
        if not n.name or n.name in seen:
            n.name = f"{n.op_type}_q{i}"
        seen.add(n.name)
    return model


def tail_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that feed no Conv (the decode and any NMS after the last convolutions)."""
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    feeds_conv: set[str] = set()
    stack = [n for n in nodes if n.op_type == "Conv"]
    while stack:
        for name in stack.pop().input:
            p = producer.get(name)
            if p is not None and p.name not in feeds_conv:
                feeds_conv.add(p.name)
                stack.append(p)
    return [n.name for n in nodes if n.op_type != "Conv" and n.name not in feeds_conv]


# --- calibration data ---------------------------------------------------------------------------
def pick_evenly(items: Sequence, k: int) -> list:
    """At most `k` items, evenly spaced over `items` (first and last included), in order."""
    if k >= len(items):
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, k).round()]


def calibration_images(sources: Sequence[str | Path], limit: int) -> list[Path]:
    """Image files from files/folders/globs, at most `limit`, evenly spaced; InputError if none."""
    from ..runtime.inputs.sources import resolve_sources

    if not sources:
        raise InputError("no calibration source given (--calib IMAGES...)")
    found = resolve_sources(sources)
    images = [s.path for s in found if s.kind == "image"]
    if not images:
        raise InputError(f"{', '.join(map(str, sources))}: no images to calibrate on (videos are not used)")
    return pick_evenly(images, limit)


def calibration_batches(model_path: str | Path, images: Sequence[Path | np.ndarray],
                        warn=None) -> list[np.ndarray]:
    """Model inputs ndarray[B, 3, H, W] for `images`, preprocessed exactly as `Detector` does."""
    from ..runtime import Detector
    from ..runtime.inputs.sources import read_image

    with warnings.catch_warnings():  # NMS-threshold notes: no detection is made here
        warnings.simplefilter("ignore")
        det = Detector(model_path, providers=["CPUExecutionProvider"])
    arrays = []
    for im in images:
        if isinstance(im, np.ndarray):
            arrays.append(im)
            continue
        try:
            arrays.append(read_image(im))
        except InputError as e:
            (warn or warnings.warn)(f"{e}; skipped")
    if not arrays:
        raise InputError("none of the calibration images could be read")
    return [b.tensor for b in det.preprocess(arrays)]


def _data_reader(input_name: str, batches: list[np.ndarray]):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        """Feeds `batches`; `set_range` lets ORT calibrate one batch at a time (bounded memory)."""

        def __init__(self):
            self.set_range(0, len(batches))

        def __len__(self) -> int:
            return len(batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._it = iter(batches[start_index:end_index])

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {input_name: x}

    return Reader()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ORT's quantizer prints progress and logs warnings on the root logger: keep them off our output."""
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(before)


@contextlib.contextmanager
def _narrow_range_histograms() -> Iterator[None]:
    """Work around ONNX Runtime's percentile calibration on near-constant tensors (restored on exit).

    ORT histograms |x| of each tensor over (min |x|, max |x|) with 2048 float32 bins; when all values lie within a
    few float32 steps (a Sigmoid of ~0, e.g. yolor-p6 with random weights: 0.49999988..0.5000001), numpy cannot
    make distinct edges and raises "Too many bins for data range", which failed the whole quantization. For such
    a tensor the histogram is made over (0, max |x|) instead: representable bins, the same percentile threshold
    (max |x|, where every value lies), and ORT's later merges extend it as usual."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    original = HistogramCollector.collect_absolute_value

    def collect_absolute_value(self, name_to_arr):
        for name, arr in name_to_arr.items():
            try:
                original(self, {name: arr})
            except ValueError as e:
                if "Too many bins" not in str(e) or name in self.histogram_dict:
                    raise
                data = np.asarray(arr).ravel()
                top = np.abs(data).max()
                hist, edges = np.histogram(np.abs(data), bins=self.num_bins, range=(0, float(top)))
                self.histogram_dict[name] = (hist, edges.astype(data.dtype), np.nanmin(data), np.nanmax(data))

    HistogramCollector.collect_absolute_value = collect_absolute_value
    try:
        yield
    finally:
        HistogramCollector.collect_absolute_value = original


# --- front door ---------------------------------------------------------------------------------
def quantize_model(model: onnx.ModelProto, batches: list[np.ndarray],
                   o: QuantizeOptions) -> tuple[onnx.ModelProto, list[str]]:
    """`model` (checked, fp32) -> (int8 QDQ model, names of nodes kept float); metadata not yet updated."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = name_nodes(unique_opsets(model))
    keep_float = tail_nodes(model)
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[o.method]
    extra = {"CalibStridedMinMax": 1,  # collect ranges one batch at a time (ORT merges them)
             "OpTypesToExcludeOutputQuantization": ["Conv"]}  # quantized only where a quantized op reads it
    with tempfile.TemporaryDirectory(prefix="yolor-quant.") as d, _quiet(), _narrow_range_histograms():
        src, dst = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        onnx.save(model, str(src))
        try:
            quantize_static(str(src), str(dst), _data_reader(model.graph.input[0].name, batches),
                            quant_format=QuantFormat.QDQ, per_channel=o.per_channel, reduce_range=False,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=method, nodes_to_exclude=keep_float, extra_options=extra,
                            calibration_providers=list(o.providers) if o.providers else None)
        except Exception as e:  # noqa: BLE001 - ORT raises many types; report one line
            raise ExportError(f"ONNX Runtime quantization failed: {first_line(e)}") from None
        return onnx.load(str(dst)), keep_float


def check_options(o: QuantizeOptions) -> None:
    if o.backend not in QUANT_BACKENDS:
        raise InputError(f"quantization backend {o.backend!r}: choose one of {', '.join(QUANT_BACKENDS)}")
    if o.method not in METHODS:
        raise InputError(f"calibration method {o.method!r}: choose one of {', '.join(METHODS)}")
    if o.calib_size < 1:
        raise InputError(f"calibration size must be at least 1, got {o.calib_size}")
    if o.nncf_preset not in NNCF_PRESETS:
        raise InputError(f"NNCF preset {o.nncf_preset!r}: choose one of {', '.join(NNCF_PRESETS)}")
    if o.backend == "openvino" and (o.method != "minmax" or not o.per_channel):
        raise InputError("--method and --no-per-channel are ONNX Runtime options; NNCF (openvino) picks its "
                         "own ranges and quantizes weights per channel")


def quantize_onnx(model: str | Path, out: str | Path, calib: Sequence[str | Path],
                  options: QuantizeOptions | None = None, accuracy=None, **kwargs) -> QuantizeResult:
    """Quantize the fp32 export `model` to int8, calibrated on the images of `calib` (files, folders,
    globs), and write it to `out` atomically with our metadata plus `"quantized"`: an ONNX Runtime QDQ
    `.onnx` (`backend="onnxruntime"`), or an OpenVINO IR `.xml` + `.bin` made by NNCF (`"openvino"`; with
    `accuracy`, an `openvino_nncf.AccuracyControl`, NNCF's quantization with accuracy control)."""
    t0 = time.perf_counter()
    o = options or QuantizeOptions(**kwargs)
    check_options(o)
    src, out = Path(model), Path(out)
    if out.is_dir():
        raise InputError(f"{out}: output path is a directory")
    if out.resolve() == src.resolve():
        raise InputError(f"{out}: would overwrite the fp32 model; choose another output")
    if o.backend == "openvino":
        from .openvino_nncf import check_ir_output

        check_ir_output(out)
    proto = load_fp32_model(src)
    meta = check_quantizable(proto, str(src), o.backend)
    images = calibration_images(calib, o.calib_size)
    notes: list[str] = []
    batches = calibration_batches(src, images, warn=notes.append)
    n_calib = len(images) - len(notes)
    if o.backend == "openvino":
        qmeta, keep_float, op_counts, bytes_out = _quantize_openvino(proto, batches, meta, n_calib, out,
                                                                     o.nncf_preset, accuracy)
    else:
        qmeta, keep_float, op_counts, bytes_out = _quantize_ort(proto, batches, meta, n_calib, out, o)
    return QuantizeResult(out, qmeta, list(images), keep_float, src.stat().st_size, bytes_out,
                          time.perf_counter() - t0, op_counts, notes)


def _quantize_ort(proto, batches, meta, n_calib, out: Path, o: QuantizeOptions):
    from ..fs import atomic_path

    qproto, keep_float = quantize_model(proto, batches, o)
    qmeta = meta.replace(quantized=QUANTIZED_TAG,
                         quantization={"format": "QDQ", "weights": "int8", "activations": "uint8",
                                       "per_channel": o.per_channel, "calibration": o.method,
                                       "calibration_images": n_calib, "float_nodes": len(keep_float)})
    qproto = set_metadata(qproto, qmeta)
    try:
        with atomic_path(out) as tmp:
            onnx.save(qproto, str(tmp))
    except OSError as e:
        raise InputError(f"{out}: cannot write ({e.strerror or e})") from None
    return qmeta, keep_float, op_types(qproto), out.stat().st_size


def _quantize_openvino(proto, batches, meta, n_calib, out: Path, preset: str = "performance", accuracy=None):
    from ..formats.openvino_ir import install_ir, ir_workdir
    from .graph_passes import silu_before_concat
    from .openvino_nncf import NNCF_TAG, float_tail_is_kept, quantize_to_ir

    proto = name_nodes(silu_before_concat(unique_opsets(proto))[0])  # exact; lets OpenVINO fuse the SiLUs
    keep_float = tail_nodes(proto)
    qmeta = meta.replace(quantized=NNCF_TAG,
                         quantization={"format": "OpenVINO IR (NNCF FakeQuantize)", "weights": "int8",
                                       "activations": "int8" if preset == "performance" else "uint8 (asymmetric)",
                                       "per_channel": True, "calibration": f"nncf {preset} preset",
                                       "calibration_images": n_calib,
                                       "float_nodes": len(keep_float),
                                       **({"accuracy_control": f"max drop {accuracy.max_drop:g} on "
                                                               f"{len(accuracy.items)} images"} if accuracy else {})})
    try:
        with ir_workdir(out) as d:
            xml, op_counts = quantize_to_ir(proto, batches, keep_float, qmeta, d, preset, accuracy)
            if not float_tail_is_kept(xml, keep_float):
                raise ExportError(f"{out}: NNCF quantized the box decode (its FakeQuantize feeds a kept-float "
                                  f"node); refusing to write a model whose boxes would be wrong")
            xml, bin_ = install_ir(xml, out)
    except OSError as e:
        raise InputError(f"{out}: cannot write ({e.strerror or e})") from None
    return qmeta, keep_float, op_counts, bin_.stat().st_size


def evaluate_pair(fp32: str | Path, int8: str | Path, images: str | Path, labels: str | Path, **detector_kw):
    """(fp32 CocoMetrics, int8 CocoMetrics) on the same images, through `Detector` + `evaluate`."""
    from ..eval import evaluate
    from ..runtime import Detector

    kw = {"conf_thres": 0.001, "iou_thres": 0.65, **detector_kw}  # upstream test.py settings
    return tuple(evaluate(Detector(m, **kw), images, labels) for m in (fp32, int8))
