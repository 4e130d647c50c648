"""Torch-free inference: `Detector` (`detector.py`) and what it is made of, one room each:

- `inputs/`: what goes into a model: sources (files, folders, globs, videos) read and decoded as BGR frames,
  image headers checked before decoding, OpenCV loaded with its pixel cap, the letterbox;
- `backends/`: what runs a model: the `Backend` protocol, ONNX Runtime, OpenVINO, a PyTorch checkpoint
  (`backends/torch_backend.py`, the one module that imports torch, lazily), the model's metadata and runtime hints, and
  the checks of a model's inputs and outputs against its metadata;
- `post/`: what turns raw outputs into boxes: NMS, box formats and geometry;
- `results/`: what comes out: `Detections`, drawing them, the files `predict` writes;
- `describe.py`: what a deployable model file holds (`yolor-deploy info`).

Imports only numpy, onnxruntime or openvino (lazily, when a model is opened) and OpenCV; never torch.
OpenCV is loaded at its first use, never at import, with its pixel cap set (`runtime/inputs/opencv.py`).
"""
from .backends.metadata import METADATA_KEY, MetadataWarning, ModelMetadata, NmsSettings, parse_metadata
from .backends.onnxruntime import OrtBackend, ProviderError, resolve_providers
from .backends.protocol import Backend
from .backends.report_hint import read_report_hint
from .detector import BACKENDS, Batch, Detector, StageTimes, open_backend, parse_backend
from .inputs.letterbox import letterbox
from .inputs.sources import Source, VideoReader, read_image, resolve_sources
from .post.boxes import box_convert, box_iou, clip_boxes, scale_boxes
from .post.nms import batched_nms, nms, non_max_suppression
from .results.detections import Detections
from .results.draw import draw_detections

__all__ = [
    "BACKENDS", "Backend", "Batch", "Detections", "Detector", "METADATA_KEY", "MetadataWarning", "ModelMetadata",
    "NmsSettings", "OrtBackend", "ProviderError", "Source", "StageTimes", "VideoReader", "batched_nms",
    "box_convert", "box_iou", "clip_boxes", "draw_detections", "letterbox", "nms", "non_max_suppression",
    "open_backend", "parse_backend", "parse_metadata", "read_image", "read_report_hint", "resolve_providers",
    "resolve_sources", "scale_boxes",
]
