"""An OpenVINO model (the runtime's `OpenVINOBackend`: CPU, f32) behind the small part of the
onnxruntime session API that the verifier uses (`get_inputs()[0].name`, `run(None, feeds)`), so the
same rule checks OpenVINO."""
from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..errors import InputError, VerificationError
from ..runtime.backends.metadata import MetadataWarning


class OpenVINOSession:
    def __init__(self, model_path: str | Path, device: str = "CPU"):
        from ..runtime.backends.openvino import OpenVINOBackend

        try:
            with warnings.catch_warnings():  # intermediate models carry no metadata: nothing to warn about
                warnings.simplefilter("ignore", MetadataWarning)
                self._backend = OpenVINOBackend(model_path, device=device)
        except InputError as e:
            raise VerificationError(str(e)) from None

    @property
    def backend(self):
        return self._backend

    def get_inputs(self):
        return [SimpleNamespace(name=self._backend.input_name)]

    def run(self, output_names, feeds: dict) -> list[np.ndarray]:
        return self._backend(feeds[self._backend.input_name])
