"""Percentile calibration survives near-constant activations (ONNX Runtime's histogram cannot make 2048 float32
bins over a few float32 steps: "Too many bins for data range"; yolor-p6 with random weights has dozens of such
Sigmoid outputs, 0.49999988..0.5000001, which failed the `ort-int8-pct` optimize candidate)."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from helpers.runtime_models import metadata, set_metadata, tiny_module
from yolor_deploy.assets import val_images
from yolor_deploy.quantize.ort_qdq import QuantizeOptions, quantize_onnx
from yolor_deploy.runtime import Detector


class NearConstantStem(torch.nn.Module):
    """A 1x1 conv with weights of 1e-6 and a SiLU (as YOLOR's Conv blocks) in front of the runtime tests' tiny YOLO:
    its Sigmoid output, read by the SiLU's Mul, is 0.5 within a few float32 steps."""

    def __init__(self):
        super().__init__()
        self.stem, self.yolo = torch.nn.Conv2d(3, 3, 1), tiny_module()
        with torch.no_grad():
            self.stem.weight.copy_(torch.randn(self.stem.weight.shape, generator=torch.Generator().manual_seed(0)))
            self.stem.weight.mul_(1e-6)
            self.stem.bias.zero_()

    def forward(self, x):
        y = self.stem(x)
        return self.yolo(x + y * torch.sigmoid(y))


def near_constant_model(path):
    m = NearConstantStem().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.zeros(1, 3, 320, 320),), str(path), input_names=["images"],
                          output_names=["output"], opset_version=13, dynamo=False)
    set_metadata(path, metadata(names=m.yolo.names))
    return path


def test_percentile_calibration_of_near_constant_activations(tmp_path):
    fp32 = near_constant_model(tmp_path / "flat.onnx")
    calib = sorted(val_images().glob("*.jpg"))[:4]
    out = quantize_onnx(fp32, tmp_path / "flat-int8.onnx", calib, QuantizeOptions(calib_size=4, method="percentile"))
    det = Detector(out.path, conf_thres=0.0)
    raw = det.backend(det.preprocess([np.full((320, 320, 3), 114, np.uint8)])[0].tensor)[0]
    ref = Detector(fp32, conf_thres=0.0)
    expected = ref.backend(ref.preprocess([np.full((320, 320, 3), 114, np.uint8)])[0].tensor)[0]
    assert np.isfinite(raw).all() and np.abs(raw[..., 4:] - expected[..., 4:]).max() < 0.05  # scores survive
