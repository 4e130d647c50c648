"""Raw-tensor inference through the server's batcher: an Open Inference Protocol `images` tensor
(FP32 [B, 3, H, W], letterboxed as the model's metadata says) -> the model's raw outputs, unchanged.

A `RawJob` rides the same `DynamicBatcher` as detection requests (it counts B images against the queue); the
batch step runs it as its own model call(s): a fixed-batch model gets chunks of its batch, padded with the
letterbox's pad value, and the padding rows are cut from the outputs.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..runtime.detector import Detector


@dataclass
class RawJob:
    """One request's input tensor ndarray[B, 3, H, W] float32."""

    tensor: np.ndarray


def run_raw(detector: Detector, tensor: np.ndarray,
            on_model_call: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """The model's raw outputs for `tensor`, in the backend's output order, B rows each."""
    fixed = detector.backend.input_shape[0]
    n = tensor.shape[0]
    step = fixed or n
    parts: list[list[np.ndarray]] = []
    for k in range(0, n, step):
        chunk = tensor[k:k + step]
        if fixed and len(chunk) < fixed:
            pad = np.full((fixed - len(chunk), *chunk.shape[1:]), detector.metadata.pad_value / 255.0, np.float32)
            chunk = np.concatenate([chunk, pad])
        outs = detector.backend(np.ascontiguousarray(chunk))
        if on_model_call is not None:
            on_model_call(min(step, n - k))
        parts.append([np.asarray(o)[:min(step, n - k)] for o in outs])
    return [np.concatenate(cols) for cols in zip(*parts)]
