"""The served model as the Open Inference Protocol sees it, shared by the REST (`oip_rest.py`) and gRPC
(`oip_grpc.py`) front ends: its name (the model file's stem), version "1", metadata, Triton-style config, and
inference by either of the two ways in:

- `images`: FP32 [B, 3, H, W], letterboxed as `parameters.letterbox` says -> the model's raw outputs (for a model
  with NMS inside, boxes in the letterboxed input's pixels);
- `image_bytes`: BYTES [B], encoded images -> detections as tensors, boxes in original-image pixels:
  `num_dets` INT32 [B, 1], `boxes` FP32 [B, K, 4] (x1, y1, x2, y2), `scores` FP32 [B, K], `classes` INT32 [B, K]
  (K: the most detections of any image; rows past `num_dets` are zero); request parameters conf, iou, max_det,
  classes as in `/v1/detect`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..contract import NMS_OUTPUTS
from ..formats.triton import TensorSpec, letterbox_note, model_config
from .admission import PixelBudget, image_pixels
from .engine import Engine, answer_within
from .inputs import PARAM_NAMES, RequestError, bad_request, decode_images, parse_params
from .metrics import ServeMetrics
from .oip_tensors import InferRequest, Tensor
from .settings import ServeSettings

RAW_INPUT, BYTES_INPUT = "images", "image_bytes"
VERSION = "1"
DETECTION_OUTPUTS = [("num_dets", "INT32", [-1, 1]), ("boxes", "FP32", [-1, -1, 4]), ("scores", "FP32", [-1, -1]),
                     ("classes", "INT32", [-1, -1])]
USAGE = (f"two ways in: '{RAW_INPUT}' FP32 [B,3,H,W] letterboxed as parameters.letterbox says -> the model's raw "
         f"outputs; or '{BYTES_INPUT}' BYTES [B] encoded images -> {', '.join(NMS_OUTPUTS)} in original-image "
         f"pixels, with request parameters conf, iou, max_det, classes")


class OipModel:
    """The protocol's view of `engine`'s model. Errors are `RequestError`s (status, kind, one line)."""

    def __init__(self, engine: Engine, settings: ServeSettings, metrics: ServeMetrics,
                 budget: PixelBudget | None = None):
        """`budget`: the app's decoded-pixel admission (`serve.admission`), shared with `/v1`."""
        self.engine, self.settings, self.metrics = engine, settings, metrics
        self.budget = budget or PixelBudget(settings.pixel_budget)
        info = engine.info()
        self.info = info
        self.name = Path(str(info["model"])).stem

    # --- lookup ---------------------------------------------------------------------------------
    def check(self, name: str, version: str | None = None) -> None:
        if name != self.name:
            raise RequestError(404, "unknown_model", f"model {name!r}: unknown (this server serves {self.name!r})")
        if version not in (None, "", VERSION):
            raise RequestError(404, "unknown_model", f"model {name!r} version {version!r}: unknown (the one "
                                                     f"version is {VERSION!r})")

    def ready(self) -> bool:
        return self.engine.ready()

    # --- description ----------------------------------------------------------------------------
    def _raw_io(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        detector = getattr(self.engine, "detector", None)
        if detector is None:
            raise RequestError(501, "unsupported", "raw tensors: this engine does not serve them (--engine local)")
        b = detector.backend
        dtypes = getattr(self, "_out_dtypes", None) or output_dtypes(b)
        return ([TensorSpec(RAW_INPUT, "float32", tuple(b.input_shape))],
                [TensorSpec(n, t, tuple(s)) for n, t, s in zip(b.output_names, dtypes, b.output_shapes)])

    def metadata(self) -> dict[str, Any]:
        shape = lambda t: [-1 if d is None else d for d in t.dims]  # noqa: E731
        types = {"float32": "FP32", "float16": "FP16", "int64": "INT64", "int32": "INT32"}
        try:
            inputs, outputs = self._raw_io()
        except RequestError:  # an engine without raw tensors (Ray Serve): image bytes only
            inputs, outputs = [], []
        raw_names = {t.name for t in outputs}
        params: dict[str, Any] = {"usage": USAGE if inputs else "one way in: " + USAGE.split("; or ")[1],
                                  "names": list(self.info.get("names", [])),
                                  "defaults": {"conf": self.settings.defaults.conf_thres,
                                               "iou": self.settings.defaults.iou_thres,
                                               "max_det": self.settings.defaults.max_det}}
        if inputs:
            params["letterbox"] = letterbox_note(self.engine.model_metadata(),  # type: ignore[attr-defined]
                                                 bool(self.info.get("dynamic_input", False)))
        return {
            "name": self.name, "versions": [VERSION], "platform": f"yolor-deploy_{self.info.get('backend', '')}",
            "inputs": [{"name": RAW_INPUT, "datatype": "FP32", "shape": shape(t)} for t in inputs]
            + [{"name": BYTES_INPUT, "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": t.name, "datatype": types.get(t.dtype, "FP32"), "shape": shape(t)} for t in outputs]
            + [{"name": n, "datatype": d, "shape": s} for n, d, s in DETECTION_OUTPUTS if n not in raw_names],
            "parameters": params,
        }

    def config(self) -> dict[str, Any]:
        inputs, outputs = self._raw_io()
        backend = "openvino" if "openvino" in str(self.info.get("backend", "")) else "onnxruntime"
        max_batch = int(self.info.get("batching", {}).get("max_batch", 1))
        return model_config(self.name, inputs, outputs, self.engine.model_metadata(),  # type: ignore[attr-defined]
                            backend, max_batch)

    # --- inference ------------------------------------------------------------------------------
    async def infer(self, req: InferRequest) -> list[tuple[str, np.ndarray]]:
        if not self.engine.ready():
            raise RequestError(503, "not_ready", f"not ready: {self.engine.not_ready_reason()}", {"Retry-After": "1"})
        names = [t.name for t in req.inputs]
        if len(names) != 1 or names[0] not in (RAW_INPUT, BYTES_INPUT):
            raise bad_request(f"inputs {names}: send exactly one of {RAW_INPUT!r} (FP32 [B,3,H,W]) or "
                              f"{BYTES_INPUT!r} (BYTES [B] encoded images)")
        t = req.inputs[0]
        if t.name == RAW_INPUT:
            outputs = await self._infer_raw(t)
        else:
            outputs = await self._detect(t, req.parameters)
        if req.outputs is not None:
            have = dict(outputs)
            missing = [n for n in req.outputs if n not in have]
            if missing:
                raise bad_request(f"outputs: {missing[0]!r} is not an output of this input (outputs: "
                                  f"{', '.join(have)})")
            outputs = [(n, have[n]) for n in req.outputs]
        return outputs

    async def _guarded(self, coro: Any) -> Any:
        t = self.settings.timeout_s
        return await answer_within(coro, t, f"no answer within {t:g} s")

    async def _infer_raw(self, t: Tensor) -> list[tuple[str, np.ndarray]]:
        inputs, outputs = self._raw_io()
        want = inputs[0].dims
        if t.datatype != "FP32":
            raise bad_request(f"input {RAW_INPUT!r}: datatype {t.datatype} (expected FP32)")
        if len(t.shape) != 4 or t.shape[1] != 3 or t.shape[0] < 1 or any(
                w is not None and w != g for w, g in zip(want[1:], t.shape[1:])):
            expect = ", ".join("H" if (w is None and i == 2) else "W" if w is None else str(w)
                               for i, w in enumerate(want[1:], 1))
            raise bad_request(f"input {RAW_INPUT!r}: shape {t.shape} (expected [B, {expect}])")
        stride = max(int(s) for s in self.engine.model_metadata().stride)  # type: ignore[attr-defined]
        if t.shape[2] % stride or t.shape[3] % stride or not t.shape[2] or not t.shape[3]:
            raise bad_request(f"input {RAW_INPUT!r}: shape {t.shape}: H and W must be positive multiples of "
                              f"the model's stride {stride}")
        if t.shape[0] > self.settings.max_images:
            raise RequestError(413, "too_many_images", f"input {RAW_INPUT!r}: batch {t.shape[0]} (at most "
                                                       f"{self.settings.max_images}: the server's --max-images)")
        raw = await self._guarded(self.engine.infer_raw(np.ascontiguousarray(t.data, np.float32)))  # type: ignore
        self._out_dtypes = [str(np.asarray(o).dtype) for o in raw]
        self.metrics.images.inc(t.shape[0])
        return [(o.name, np.asarray(a)) for o, a in zip(outputs, raw)]

    async def _detect(self, t: Tensor, parameters: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
        from starlette.concurrency import run_in_threadpool

        if t.datatype != "BYTES" or len(t.shape) != 1:
            raise bad_request(f"input {BYTES_INPUT!r}: {t.datatype} shape {t.shape} (expected BYTES [B])")
        if not 1 <= t.shape[0] <= self.settings.max_images:
            raise RequestError(413 if t.shape[0] else 400, "too_many_images",
                               f"input {BYTES_INPUT!r}: {t.shape[0]} images (1..{self.settings.max_images}: the "
                               f"server's --max-images)")
        items = [(k, ",".join(map(str, v)) if isinstance(v, list) else str(v))
                 for k, v in parameters.items() if k in PARAM_NAMES]
        params = parse_params(items, int(self.info["nc"]), self.settings.defaults)
        blobs = [bytes(b) for b in t.data.reshape(-1)]
        with self.budget.hold(sum(image_pixels(blobs, self.settings.max_pixels, BYTES_INPUT)), BYTES_INPUT):
            images = await run_in_threadpool(decode_images, blobs, self.settings.max_pixels, BYTES_INPUT)
            out = await self._guarded(self.engine.detect(images, params))
        self.metrics.images.inc(len(images))
        return detection_tensors(out.detections)


ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
             "tensor(int32)": "int32"}


def output_dtypes(backend: Any) -> list[str]:
    """The model's output types as numpy names, from the ONNX Runtime session or the OpenVINO compiled model
    (float32 where neither says: another backend; corrected by the first raw inference)."""
    session, compiled = getattr(backend, "session", None), getattr(backend, "compiled", None)
    try:
        if session is not None:
            return [ORT_TYPES.get(o.type, "float32") for o in session.get_outputs()]
        if compiled is not None:
            return [str(np.dtype(o.get_element_type().to_dtype())) for o in compiled.outputs]
    except (AttributeError, TypeError, ValueError, RuntimeError):
        pass
    return ["float32"] * len(backend.output_names)


def detection_tensors(detections: list[Any]) -> list[tuple[str, np.ndarray]]:
    """Detections per image -> num_dets, boxes, scores, classes (rows past num_dets zero)."""
    b, k = len(detections), max((len(d.scores) for d in detections), default=0)
    num = np.zeros((b, 1), np.int32)
    boxes, scores, classes = np.zeros((b, k, 4), np.float32), np.zeros((b, k), np.float32), np.zeros((b, k), np.int32)
    for i, d in enumerate(detections):
        n = len(d.scores)
        num[i, 0] = n
        boxes[i, :n], scores[i, :n], classes[i, :n] = d.xyxy, d.scores, d.classes
    return [("num_dets", num), ("boxes", boxes), ("scores", scores), ("classes", classes)]
