"""An OpenVINO compiled model behind the small part of the onnxruntime session API that the
verifier uses (`get_inputs()[0].name`, `run(None, feeds)`), so the same rule checks OpenVINO."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..errors import VerificationError


class OpenVINOSession:
    def __init__(self, model_path: str | Path, device: str = "CPU"):
        try:
            import openvino as ov
        except ImportError:
            raise VerificationError("OpenVINO is not installed: pip install 'yolor-deploy[openvino]'") from None
        core = ov.Core()
        # f32 inference precision: OpenVINO may otherwise pick bf16/f16 on CPUs that have them
        self._compiled = core.compile_model(str(model_path), device, {"INFERENCE_PRECISION_HINT": "f32"})
        self._input = self._compiled.inputs[0].get_any_name()

    def get_inputs(self):
        return [SimpleNamespace(name=self._input)]

    def run(self, output_names, feeds: dict) -> list[np.ndarray]:
        result = self._compiled(feeds[self._input])
        return [np.asarray(result[o]) for o in self._compiled.outputs]
