"""ONNX passes: pure functions `ModelProto -> ModelProto` (copy in, return new), chained by `export_onnx`:
simplify -> add_nms -> `formats.onnx_meta.set_metadata`. torch is imported only by the passes that
export a module."""
from __future__ import annotations

import io
import warnings

import onnx

from ..contract import NMS_OUTPUTS
from ..formats.onnx_meta import copy_model, get_metadata, op_types, set_metadata, unique_opsets

__all__ = ["add_nms", "export_module", "get_metadata", "op_types", "set_metadata", "simplify", "unique_opsets"]


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant folding and graph cleanup with onnxslim (the shapes stay as exported)."""
    import onnxslim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slim = onnxslim.slim(copy_model(model))
    return slim if isinstance(slim, onnx.ModelProto) else model


def export_module(module, example: tuple, input_names, output_names, dynamic_axes,
                  opset: int) -> onnx.ModelProto:
    """TorchScript-based `torch.onnx.export` of a torch.nn.Module into memory."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, buf, dynamo=False, opset_version=opset, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())



def add_nms(model: onnx.ModelProto, mode: str, conf_thres: float, iou_thres: float, max_det: int,
            opset: int, nc: int) -> onnx.ModelProto:
    """A copy of `model` with an NMS graph (`OnnxNMS` or `TrtNMS`) after its `output` [B, N, 5+nc]."""
    import torch

    model = copy_model(model)
    from .nms import NMS_MODULES

    out = model.graph.output[0]
    no = nc + 5
    post = NMS_MODULES[mode](conf_thres, iou_thres, max_det).eval()
    example = (torch.rand(1, 512, no),)
    dyn = {"pred": {0: "batch", 1: "anchors"}, **{k: {0: "batch"} for k in NMS_OUTPUTS}}
    nms_model = export_module(post, example, ["pred"], list(NMS_OUTPUTS), dyn, opset)
    if mode == "trt":
        nms_model.opset_import.append(onnx.helper.make_opsetid("TRT", 1))
        model.opset_import.append(onnx.helper.make_opsetid("TRT", 1))
    nms_model.ir_version = model.ir_version
    merged = onnx.compose.merge_models(model, nms_model, io_map=[(out.name, "pred")], prefix2="nms/")
    # merge_models prefixes the second graph's outputs: give them their contract names back
    for o in merged.graph.output:
        if o.name.startswith("nms/"):
            old, o.name = o.name, o.name[len("nms/"):]
            for node in merged.graph.node:
                node.output[:] = [o.name if x == old else x for x in node.output]
                node.input[:] = [o.name if x == old else x for x in node.input]
    _set_nms_output_shapes(merged, max_det)
    return unique_opsets(merged)


def _set_nms_output_shapes(model: onnx.ModelProto, k: int) -> None:
    """Declare the fixed dims of the NMS outputs (num_dets [B,1], boxes [B,K,4], scores/classes [B,K]):
    the exporter leaves them symbolic, TensorRT engine builders like them concrete."""
    fixed = {"num_dets": [1], "boxes": [k, 4], "scores": [k], "classes": [k]}
    for o in model.graph.output:
        dims = o.type.tensor_type.shape.dim
        for i, v in enumerate(fixed.get(o.name, []), start=1):
            if i < len(dims):
                dims[i].Clear()
                dims[i].dim_value = v
