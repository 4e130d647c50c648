"""The face every inference backend shows the `Detector`: run a preprocessed batch, return the model's raw
outputs. ONNX Runtime (`onnxruntime.py`), OpenVINO (`openvino.py`) and a PyTorch checkpoint (`torch.py`) all
have it, so one pre/post-processing path drives them all."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from .metadata import ModelMetadata


class Backend(Protocol):
    """What the Detector needs from a model.

    `input_shape`: (B, 3, H, W) with None for dynamic axes; `input_dtype`: float32 or float16;
    `output_names`: names of what `__call__` returns, in order; `__call__(x)` takes
    ndarray[B, 3, H, W] (RGB, 0..1, letterboxed) and returns the raw outputs as NumPy arrays.
    """

    name: str
    path: str
    metadata: ModelMetadata
    input_shape: tuple[int | None, ...]  # (B, 3, H, W)
    input_dtype: np.dtype
    output_names: list[str]
    output_shapes: list[tuple[int | None, ...]]
    load_seconds: float

    def __call__(self, x: np.ndarray) -> list[np.ndarray]: ...
