"""Torch-free inference: letterbox, ONNX Runtime, NumPy NMS, results, sources and drawing.

Imports only numpy, onnxruntime or openvino (lazily, when a model is opened) and OpenCV; never torch. A `.pt`
checkpoint given to `Detector` is run by `yolor_deploy.runtime.torch_backend`, imported only then.

`opencv` is imported first: it loads OpenCV with its pixel cap set (see `runtime/opencv.py`).
"""
from . import opencv  # noqa: F401 - first: OpenCV reads its pixel cap only when it loads
from .backends import Backend, OrtBackend, ProviderError, resolve_providers
from .boxes import box_convert, box_iou, clip_boxes, scale_boxes
from .detector import BACKENDS, Batch, Detector, StageTimes, open_backend, parse_backend
from .draw import draw_detections
from .letterbox import letterbox
from .metadata import METADATA_KEY, MetadataWarning, ModelMetadata, NmsSettings, parse_metadata
from .nms import batched_nms, nms, non_max_suppression
from .report_hint import read_report_hint
from .results import Detections
from .sources import Source, VideoReader, read_image, resolve_sources

__all__ = [
    "BACKENDS", "Backend", "Batch", "Detections", "Detector", "METADATA_KEY", "MetadataWarning", "ModelMetadata",
    "NmsSettings", "OrtBackend", "ProviderError", "Source", "StageTimes", "VideoReader", "batched_nms",
    "box_convert", "box_iou", "clip_boxes", "draw_detections", "letterbox", "nms", "non_max_suppression",
    "open_backend", "parse_backend", "parse_metadata", "read_image", "read_report_hint", "resolve_providers",
    "resolve_sources", "scale_boxes",
]
