"""Small ONNX models for the runtime tests: the runtime's contract without a real network.

They stay test-built on purpose: exporting a real checkpoint (`yolor_deploy.export.export_onnx`,
covered by test_export.py and test_runtime_parity.py) is far slower, and these tests need models
the exporter never writes (no metadata, odd metadata, fixed NMS outputs).
`TinyYolo` is a stand-in with YOLOR's output contract: per stride an average pool and a 1x1 conv
to na*(5+nc) channels, then YOLOR's decode (grid from the runtime shape, so dynamic export works).
Models are built once per test session into a temporary folder (`model_path`).
"""
from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import warnings
from functools import cache
from pathlib import Path

import numpy as np

from yolor_deploy.contract import METADATA_KEY

NAMES = ["circle", "square", "triangle"]
STRIDES = (8, 16, 32)
_DIR = Path(tempfile.mkdtemp(prefix="yolor-rt-models-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)


def metadata(names=NAMES, stride=STRIDES, imgsz=(320, 320), dynamic=False, batch=1, nms="none",
             conf=0.25, iou=0.45, max_det=300) -> dict:
    """The contract's metadata as a dict (tests corrupt copies of it to check the readers)."""
    from yolor_deploy.contract import ModelMetadata, NmsSettings

    return ModelMetadata(names=tuple(names), stride=tuple(stride), imgsz=tuple(imgsz), dynamic=dynamic,
                         batch=batch, nms=NmsSettings(nms, conf, iou, max_det), branch="paper",
                         variant="tiny-test", source_sha256="0" * 64, version="0.1.0").to_dict()


def set_metadata(path: Path, meta: dict | None) -> None:
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    if meta is not None:
        m.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta))
    onnx.save(m, str(path))


def tiny_module(nc: int = 3, seed: int = 0):
    import torch
    from torch import nn

    class TinyYolo(nn.Module):
        def __init__(self):
            super().__init__()
            self.nc, self.na, self.no = nc, 3, nc + 5
            self.names = NAMES[:nc] if nc <= len(NAMES) else [f"c{i}" for i in range(nc)]
            self.strides = list(STRIDES)
            self.branch = "paper"
            g = torch.Generator().manual_seed(seed)
            self.heads = nn.ModuleList(nn.Conv2d(3, self.na * self.no, 1) for _ in STRIDES)
            with torch.no_grad():
                for h in self.heads:
                    h.weight.copy_(torch.randn(h.weight.shape, generator=g) * 0.5)
                    h.bias.copy_(torch.randn(h.bias.shape, generator=g))
                    h.bias.view(self.na, self.no)[:, 4] = -3.0  # objectness: a few boxes per image
            anchors = [[(s * 1.5, s * 2), (s * 3, s * 3), (s * 4, s * 2)] for s in STRIDES]
            self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32))

        def forward(self, x):
            out = []
            for i, s in enumerate(self.strides):
                p = self.heads[i](nn.functional.avg_pool2d(x, s, s) * 4 - 2)
                b, _, ny, nx = p.shape
                y = p.view(b, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
                gy, gx = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
                grid = torch.stack((gx, gy), 2).view(1, 1, ny, nx, 2).float()
                xy = (y[..., 0:2] * 2 - 0.5 + grid) * s
                wh = (y[..., 2:4] * 2) ** 2 * self.anchors[i].view(1, self.na, 1, 1, 2)
                out.append(torch.cat((xy, wh, y[..., 4:]), -1).reshape(b, -1, self.no))
            return torch.cat(out, 1)

    return TinyYolo().eval()


@cache
def model_path(kind: str = "static", nc: int = 3) -> Path:
    """kind: "static" (1x3x320x320), "static-b2" (2x3x320x320), "dynamic" (B, H, W), "nometa"
    (static, metadata stripped), "nms" (outputs as an --nms onnx export, fixed boxes)."""
    path = _DIR / f"tiny-{kind}-nc{nc}.onnx"
    if kind == "nms":
        _graph_nms_model(path)
        return path
    import torch

    m = tiny_module(nc)
    batch = 2 if kind == "static-b2" else 1
    x = torch.zeros(batch, 3, 320, 320)
    dyn = {"images": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 1: "anchors"}}
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), str(path), input_names=["images"], output_names=["output"], opset_version=13,
                          dynamic_axes=dyn if kind == "dynamic" else None, dynamo=False)
    meta = None if kind == "nometa" else metadata(
        names=m.names, dynamic=kind == "dynamic", batch=None if kind == "dynamic" else batch)
    set_metadata(path, meta)
    return path


NMS_BOXES = np.array([[[10, 60, 110, 160], [200, 100, 300, 220], [0, 0, 5, 5]]], np.float32)
NMS_SCORES = np.array([[0.9, 0.6, 0.0]], np.float32)
NMS_CLASSES = np.array([[2, 0, 0]], np.int64)


def _graph_nms_model(path: Path) -> None:
    """A static 1x3x320x320 model with NMS outputs: two detections whatever the image."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, outs = [], []
    consts = {"num_dets": np.array([[2]], np.int64), "boxes": NMS_BOXES, "scores": NMS_SCORES,
              "classes": NMS_CLASSES}
    for name, arr in consts.items():
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, name + "_v")))
        elem = TensorProto.INT64 if arr.dtype == np.int64 else TensorProto.FLOAT
        outs.append(helper.make_tensor_value_info(name, elem, list(arr.shape)))
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 320, 320])
    graph = helper.make_graph(nodes, "nms-test", [inp], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    set_metadata(path, metadata(nms="onnx", max_det=3))
