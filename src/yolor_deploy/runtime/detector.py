"""`Detector`: images in, `Detections` out, through one pre/post-processing path for every backend.

Input sizing follows upstream `detect.py`: a dynamic model (or a PyTorch checkpoint) letterboxes to
`imgsz` (rounded up to a multiple of the largest stride) with the minimum-rectangle padding
(`auto=True`) to a multiple of 64, the value detect.py uses for every YOLOR model (64 is a multiple
of all YOLOR strides); a static-shape ONNX model letterboxes to its fixed input size (`auto=False`).
"""
from __future__ import annotations

import importlib.util
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..contract import MAX_THREADS, NMS_OUTPUTS, RuntimeHint, parse_imgsz, round_to_stride
from ..errors import InputError, internal_error
from ..fs import check_regular
from .backends.onnxruntime import OrtBackend
from .backends.protocol import Backend
from .backends.throughput import check_mode, default_streams, ordered_map, threads_per_stream
from .backends.validate import check_model_io, check_nms_outputs, check_raw_output
from .inputs.letterbox import letterbox
from .inputs.sources import read_image, to_bgr8
from .post.boxes import scale_boxes
from .post.nms import non_max_suppression
from .results.detections import Detections

ImageLike = np.ndarray | str | Path
T = TypeVar("T")
TORCH_SUFFIXES = (".pt", ".pth")
DEFAULT_IMGSZ = (640, 640)  # for a dynamic model that records no size (upstream detect.py's default)
AUTO_PAD_MULTIPLE = 64  # upstream detect.py: LoadImages(..., auto_size=64)


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over `images` images in `batches` backend calls."""

    pre: float = 0.0
    infer: float = 0.0
    post: float = 0.0
    images: int = 0
    batches: int = 0

    def add(self, other: StageTimes) -> None:
        for k in ("pre", "infer", "post", "images", "batches"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def per_image_ms(self) -> dict[str, float]:
        n = max(self.images, 1)
        return {k: 1000 * getattr(self, k) / n for k in ("pre", "infer", "post")}


@dataclass
class Batch:
    """A model input: `tensor` ndarray[B, 3, H, W]; the first `len(shapes)` rows are real images of
    original (h, w) `shapes`, at positions `index` of the call; the rest is padding."""

    tensor: np.ndarray
    shapes: list[tuple[int, int]]
    index: list[int] = field(default_factory=list)


BACKENDS = ("auto", "onnxruntime", "openvino", "torch")
BACKEND_ALIASES = {"ort": "onnxruntime", "ov": "openvino", "pytorch": "torch"}


def parse_backend(spec: str | None) -> tuple[str, str | None]:
    """"auto" | "onnxruntime" | "openvino[:DEVICE]" | "torch" (aliases ort, ov, pytorch) -> (kind, device)."""
    kind, _, device = (spec or "auto").strip().partition(":")
    kind = BACKEND_ALIASES.get(kind.lower(), kind.lower())
    if kind not in BACKENDS or (device and kind != "openvino"):
        raise InputError(f"backend {spec!r}: choose one of {', '.join(BACKENDS)} (openvino:DEVICE picks an "
                         f"OpenVINO device, e.g. openvino:GPU)")
    return kind, device or None


def open_backend(model: str | Path, providers=None, threads: int | None = None, cfg=None,
                 backend: str | None = "auto", hint: RuntimeHint | None = None, streams: int = 1) -> Backend:
    """See `_open_backend`. An OverflowError or TypeError out of it (a value from the file that our checks
    missed) is an `InternalError` naming the file: one line, never a generic error without the file."""
    if threads is not None and (type(threads) is not int or not 1 <= threads <= MAX_THREADS):
        shown = repr(threads)[:40] if type(threads) is not int or abs(threads) < 10**12 else "a huge number"
        raise InputError(f"{model}: threads {shown}: expected an integer in 1..{MAX_THREADS}")
    _check_model_files(Path(model))
    try:
        return _open_backend(model, providers, threads, cfg, backend, hint, streams)
    except (OverflowError, TypeError) as e:
        raise internal_error(str(model), e, "opening the model") from e


def _check_model_files(path: Path) -> None:
    """A model (and an IR's `.bin`) that is a FIFO, device, socket or folder is refused before any runtime
    opens it (ONNX Runtime or OpenVINO would block on a FIFO); a missing one is left to the backend's words."""
    for p in (path, path.with_suffix(".bin")) if path.suffix.lower() == ".xml" else (path,):
        try:
            check_regular(p)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise InputError(f"{p}: cannot read the model ({e.strerror or e})") from None


def _open_backend(model: str | Path, providers=None, threads: int | None = None, cfg=None,
                  backend: str | None = "auto", hint: RuntimeHint | None = None, streams: int = 1) -> Backend:
    """The backend that runs `model`. auto: what the model's own metadata says (`contract.RuntimeHint`, written
    by `optimize` into `best.*`), else ONNX Runtime for `.onnx`, OpenVINO for an IR `.xml`, PyTorch (imports
    torch) for `.pt`/`.pth` checkpoints. Nothing beside the model is read: a `report.json` counts only when the
    caller passes its hint (`hint`, e.g. from `read_report_hint`). `backend` forces one where it can
    run the file. `streams` > 1 (throughput mode): that many inferences will run at once; ONNX Runtime and
    PyTorch then give each call cores // streams threads (unless `threads` says otherwise), OpenVINO compiles
    with its THROUGHPUT hint and `streams` CPU streams (`threads`, if given, is then its total)."""
    path, user_threads = Path(model), threads
    suffix = path.suffix.lower()
    kind, device = parse_backend(backend)
    if suffix not in (".onnx", ".xml", *TORCH_SUFFIXES):
        raise InputError(f"{path}: unknown model type {suffix or '(no suffix)'!r} (expected .onnx, .xml "
                         f"(OpenVINO IR), .pt or .pth)")
    fits = {".onnx": ("onnxruntime", "openvino"), ".xml": ("openvino",)}.get(suffix, ("torch",))
    precision, auto = None, kind == "auto"
    if auto:
        kind = hint.backend if hint is not None and hint.backend in fits else fits[0]
        if hint is not None and hint.backend == kind:
            threads, precision = threads or hint.threads, hint.precision
    elif kind not in fits:
        raise InputError(f"{path}: the {kind} backend cannot run a {suffix} file (use {' or '.join(fits)})")
    if providers is not None and kind != "onnxruntime":
        raise InputError(f"{path}: execution providers are an ONNX Runtime setting, and this model runs in "
                         f"{kind} (for OpenVINO devices use --backend openvino:DEVICE)")
    # throughput mode: each of the `streams` calls in flight gets its share of the cores (a latency-mode
    # hint's thread count, measured for one call at a time, does not apply); `threads` from the caller wins
    per_call = (user_threads or threads_per_stream(streams)) if streams > 1 else threads
    if kind == "onnxruntime":
        ort_backend = OrtBackend(path, providers=providers, threads=per_call)
        own = ort_backend.runtime_hint() if auto and hint is None and providers is None else None
        if own is None or own.backend not in fits or own.backend == "onnxruntime":
            return ort_backend
        if importlib.util.find_spec("openvino") is None:
            warnings.warn(f"{path}: the model's metadata asks for OpenVINO ({own.precision}), which is not "
                          f"installed; running on ONNX Runtime", RuntimeWarning, stacklevel=3)
            return ort_backend
        kind = own.backend  # auto, and the model's own metadata says it runs in OpenVINO (which reads the rest)
    if kind == "openvino":
        from .backends.openvino import OpenVINOBackend

        return OpenVINOBackend(path, device=device, threads=threads, precision=precision, streams=streams)
    from .backends.torch_backend import TorchBackend

    return TorchBackend(path, cfg=cfg, threads=per_call)


class Detector:
    """Run a YOLOR model on BGR images (ndarrays or image paths).

    `source`: a path (`.onnx`, an OpenVINO `.xml`, or a checkpoint) or a ready `Backend` (or `model=` either);
    or an Open Inference Protocol server's URL (`http://HOST:PORT`, `https://`, `grpc://HOST:PORT`) with
    `model=NAME`: pre/post-processing here, the model call on the server (`backends/remote.py`); `backend`
    picks the runtime for a path (`open_backend`; auto follows the model's own metadata, or `hint` when
    given: e.g. `read_report_hint("report.json", model)` for a model an optimize report measured).
    Thresholds and NMS options as upstream `non_max_suppression`. `imgsz` (int or (H, W)) applies to
    dynamic models only; default: the export size from the metadata, else 640. `batch_size`: images per
    backend call (a static-batch model forces its own). `timings` accumulates stage times over calls, `last`
    holds those of the latest call. `mode`: "latency" (one call at a time on every core) or "throughput"
    (`streams` calls in flight through `predict_many` / `detect_batches`, default one per core, the backend opened
    for it: `open_backend`'s `streams`); calls from several threads are safe in either mode.
    """

    def __init__(self, source: str | Path | Backend | None = None, providers=None, conf_thres: float = 0.25,
                 iou_thres: float = 0.45, max_det: int = 300, classes: Sequence[int] | None = None,
                 agnostic: bool = False, multi_label: bool | None = None,
                 imgsz: int | Sequence[int] | None = None, batch_size: int | None = None,
                 threads: int | None = None, cfg=None, backend: str | None = "auto",
                 hint: RuntimeHint | None = None, *, model: str | Path | Backend | None = None,
                 mode: str = "latency", streams: int | None = None):
        self.mode = check_mode(mode)
        self.streams = 1 if mode == "latency" else int(streams or default_streams())
        self.backend = _remote_or_local(source, model, providers, threads, cfg, backend, hint, self.streams)
        self.metadata = self.backend.metadata
        check_model_io(self.backend)
        self.conf_thres, self.iou_thres, self.max_det = float(conf_thres), float(iou_thres), int(max_det)
        self.classes = list(classes) if classes else None
        bad = [c for c in self.classes or [] if not 0 <= int(c) < len(self.metadata.names)]
        if bad and self.metadata.names:
            raise InputError(f"classes {bad}: the model has {len(self.metadata.names)} classes "
                             f"(0..{len(self.metadata.names) - 1}: {', '.join(self.metadata.names[:10])}"
                             f"{', ...' if len(self.metadata.names) > 10 else ''})")
        self.agnostic, self.multi_label = agnostic, multi_label
        self._setup_size(imgsz)
        fixed_b = self.backend.input_shape[0]
        if fixed_b and batch_size and batch_size != fixed_b:
            warnings.warn(f"{self.backend.path}: the model takes batches of exactly {fixed_b}; "
                          f"batch size {batch_size} ignored", stacklevel=2)
        self.batch_size = fixed_b or max(int(batch_size or 1), 1)
        self._check_nms_settings()
        self.timings, self.last = StageTimes(), StageTimes()
        self._stats_lock = threading.Lock()  # calls may come from many threads; results never share state
        self.last_input_shape: tuple[int, ...] | None = None  # of the latest call's first batch

    # --- setup --------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return self.metadata.names

    def _setup_size(self, imgsz) -> None:
        _, _, h, w = self.backend.input_shape
        if h and w:  # static input
            if imgsz is not None and _hw(imgsz) != (h, w):
                warnings.warn(f"{self.backend.path}: static model, uses its fixed input {h}x{w}; "
                              f"imgsz {'x'.join(map(str, _hw(imgsz)))} ignored", stacklevel=3)
            self.imgsz, self.auto = (h, w), False
        else:
            size = _hw(imgsz) if imgsz is not None else (self.metadata.imgsz or DEFAULT_IMGSZ)
            if imgsz is None and not self.metadata.imgsz:
                warnings.warn(f"{self.backend.path}: the model does not record its training size; running at "
                              f"{DEFAULT_IMGSZ[0]} (set --imgsz, imgsz= in Python)", stacklevel=3)
            fixed, note = round_to_stride(size, self.metadata.max_stride)
            if note:
                warnings.warn(note, stacklevel=3)
            self.imgsz, self.auto = fixed, True
        self.pad_multiple = max(AUTO_PAD_MULTIPLE, self.metadata.max_stride)

    def _check_nms_settings(self) -> None:
        nms = self.metadata.nms
        if nms.mode == "none":
            return
        notes = []
        if self.conf_thres < nms.conf_thres:
            notes.append(f"conf_thres {self.conf_thres:g} is below the graph's {nms.conf_thres:g}")
        if abs(self.iou_thres - nms.iou_thres) > 1e-9:
            notes.append(f"iou_thres {self.iou_thres:g} differs from the graph's {nms.iou_thres:g}")
        if self.agnostic or self.multi_label is not None:
            notes.append("agnostic/multi-label options do not apply")
        if notes:
            warnings.warn(f"{self.backend.path}: NMS is inside the model ({nms.mode}); "
                          + "; ".join(notes), stacklevel=3)

    # --- stages -------------------------------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray]) -> list[Batch]:
        """BGR ndarray[h, w, 3] uint8 images -> letterboxed RGB 0..1 batches, grouped by shape."""
        pad = self.metadata.pad_value
        boxed = [letterbox(im, self.imgsz, (pad, pad, pad), auto=self.auto, stride=self.pad_multiple).image
                 for im in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, b in enumerate(boxed):
            groups.setdefault(b.shape[:2], []).append(i)
        batches = []
        for (h, w), idx in groups.items():
            for k in range(0, len(idx), self.batch_size):
                chunk = idx[k:k + self.batch_size]
                rows = self.backend.input_shape[0] or len(chunk)
                t = np.empty((rows, 3, h, w), dtype=np.float32)
                for j, i in enumerate(chunk):  # BGR HWC uint8 -> RGB CHW float32 / 255 (as upstream)
                    np.divide(boxed[i][:, :, ::-1].transpose(2, 0, 1), 255.0, out=t[j], dtype=np.float32)
                t[len(chunk):] = pad / 255.0
                batches.append(Batch(t, [images[i].shape[:2] for i in chunk], chunk))
        return batches

    def infer(self, batch: Batch) -> list[np.ndarray]:
        return self.backend(batch.tensor)

    def postprocess(self, outputs: list[np.ndarray], batch: Batch) -> list[Detections]:
        """Raw outputs -> Detections in original-image pixels, one per real image of the batch."""
        n, in_hw = len(batch.shapes), batch.tensor.shape[2:]
        if self.metadata.nms.mode == "none":
            pred = np.asarray(outputs[0], dtype=np.float32)
            check_raw_output(self.backend.path, pred, self.metadata.nc if self.metadata.from_model else None, n)
            pred = pred[:n]
            dets = non_max_suppression(pred, self.conf_thres, self.iou_thres, self.classes,
                                       self.agnostic, self.multi_label, self.max_det)
            rows = [(d[:, :4], d[:, 4], d[:, 5].astype(np.int64)) for d in dets]
        else:
            rows = self._graph_nms_rows(outputs, n)
        return [Detections(scale_boxes(b, in_hw, shape), s.astype(np.float32), c, self.names,
                           (int(shape[0]), int(shape[1])))
                for (b, s, c), shape in zip(rows, batch.shapes)]

    def _graph_nms_rows(self, outputs: list[np.ndarray], n: int):
        named = dict(zip(self.backend.output_names, outputs))
        num, boxes, scores, classes = (np.asarray(named[k]) for k in NMS_OUTPUTS)
        check_nms_outputs(self.backend.path, num, boxes, scores, classes, n)
        rows = []
        for i in range(n):
            k = int(np.clip(num[i].reshape(-1)[0], 0, boxes.shape[1]))
            b, s, c = boxes[i, :k].astype(np.float32), scores[i, :k].astype(np.float32), classes[i, :k].astype(np.int64)
            keep = s > self.conf_thres
            if self.classes:
                keep &= np.isin(c, self.classes)
            order = np.argsort(-s[keep], kind="stable")[: self.max_det]
            rows.append((b[keep][order], s[keep][order], c[keep][order]))
        return rows

    # --- front door ---------------------------------------------------------------------------
    def __call__(self, images: ImageLike | Sequence[ImageLike]) -> list[Detections]:
        """Detect in one image or a list (BGR ndarrays or image paths); one Detections per image."""
        if isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim in (2, 3)):
            images = [images]
        t0 = time.perf_counter()
        paths = [str(im) if isinstance(im, (str, Path)) else None for im in images]
        arrays = [read_image(im) if isinstance(im, (str, Path)) else to_bgr8(im) for im in images]
        batches = self.preprocess(arrays)
        times = StageTimes(pre=time.perf_counter() - t0, images=len(arrays))
        results: list[Detections | None] = [None] * len(arrays)
        self.last_input_shape = batches[0].tensor.shape if batches else None
        for batch in batches:
            t1 = time.perf_counter()
            outputs = self.infer(batch)
            t2 = time.perf_counter()
            for i, det in zip(batch.index, self.postprocess(outputs, batch)):
                det.path, det.image = paths[i], arrays[i]
                results[i] = det
            times.infer += t2 - t1
            times.post += time.perf_counter() - t2
            times.batches += 1
        with self._stats_lock:
            self.last = times
            self.timings.add(times)
        return results  # type: ignore[return-value]

    def predict_many(self, images: Iterable[ImageLike]) -> Iterator[Detections]:
        """One Detections per image, in input order; throughput mode keeps `streams` images in flight."""
        if self.streams <= 1:
            for im in images:
                yield self(im)[0]
            return
        yield from ordered_map(lambda im: self(im)[0], images, self.streams)

    def detect_batches(self, items: Iterable[T], image: Callable[[T], ImageLike] | None = None
                       ) -> Iterator[tuple[list[T], list[Detections], float]]:
        """`items` (frames, records, ...; `image(item)` is each one's image, default the item itself) in groups of
        `batch_size` through the model: (items, their Detections, ms per image) per group, in input order.
        Throughput mode keeps `streams` groups in flight (reading the items overlaps their inference)."""
        get: Callable[[T], Any] = image or (lambda item: item)

        def one(group: list[T]) -> tuple[list[T], list[Detections], float]:
            t0 = time.perf_counter()
            results = self([get(item) for item in group])
            return group, results, 1000 * (time.perf_counter() - t0) / max(len(group), 1)

        groups = _groups(items, self.batch_size)
        yield from (ordered_map(one, groups, self.streams) if self.streams > 1 else map(one, groups))


def _groups(items: Iterable[T], n: int) -> Iterator[list[T]]:
    it = iter(items)
    while group := list(islice(it, n)):
        yield group


def _remote_or_local(source, name, providers, threads, cfg, backend, hint, streams=1) -> Backend:
    """A server URL -> RemoteBackend running model `name` there; a path -> `open_backend`; a Backend as is.
    Without `source`, `name` is the model (`Detector(model="x.onnx")`)."""
    from .backends.remote import RemoteBackend, is_remote

    if is_remote(source):
        if not isinstance(name, str) or not name:
            raise InputError(f"{source}: name the model to run there (model=NAME)")
        return RemoteBackend(str(source), name)
    model = source
    if name is not None:
        if source is not None:
            raise InputError(f"model={name!r}: a model name goes with a server URL (http://, https://, grpc://), "
                             f"not with {source}")
        model = name
    if model is None:
        raise InputError("Detector: give a model file, a Backend, or a server URL and model=NAME")
    return model if not isinstance(model, (str, Path)) else open_backend(model, providers, threads, cfg, backend,
                                                                          hint, streams)


def _hw(imgsz: int | Sequence[int]) -> tuple[int, int]:
    try:
        return parse_imgsz(int(imgsz) if isinstance(imgsz, (int, np.integer)) else [int(v) for v in imgsz])
    except ValueError as e:
        raise InputError(f"imgsz {imgsz!r}: {e}") from None
