"""The NMS appended to exported graphs (`export/nms.py`), exported alone with torch.onnx.export and run in
onnxruntime against a plain NumPy reference (fast killer tests; the full export is in test_export.py)."""
from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from yolor_deploy.export.nms import NMS_MODULES, OnnxNMS, TrtNMS, _NonMaxSuppression, boxes_scores

OUTPUTS = ["num_dets", "boxes", "scores", "classes"]


def export(module: torch.nn.Module, n: int, no: int) -> bytes:
    buf = io.BytesIO()
    dyn = {"pred": {0: "batch", 1: "anchors"}, **{k: {0: "batch"} for k in OUTPUTS}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.rand(1, n, no),), buf, dynamo=False, opset_version=17,
                          input_names=["pred"], output_names=OUTPUTS, dynamic_axes=dyn)
    return buf.getvalue()


def ref_iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ref_onnx_nms(pred: np.ndarray, conf: float, iou: float, max_det: int):
    """Per image: greedy NMS per class on obj*cls > conf, then the max_det best over classes, zero-padded."""
    out = []
    for x in pred.astype(np.float64):
        boxes = [(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2) for cx, cy, w, h in x[:, :4]]
        dets = []
        for c in range(x.shape[1] - 5):
            s = x[:, 4] * x[:, 5 + c]
            keep: list[int] = []
            for i in sorted(range(len(x)), key=lambda i: -s[i]):
                if s[i] > conf and all(ref_iou(boxes[j], boxes[i]) <= iou for j in keep):
                    keep.append(i)
            dets += [(s[i], c, boxes[i]) for i in keep]
        dets = sorted(dets, key=lambda d: -d[0])[:max_det]
        num = len(dets)
        dets += [(0.0, 0, (0.0, 0.0, 0.0, 0.0))] * (max_det - num)
        out.append((num, np.array([d[2] for d in dets]), np.array([d[0] for d in dets]),
                    np.array([d[1] for d in dets])))
    return out


def clustered_pred(rng: np.random.Generator, b: int, n: int, nc: int) -> np.ndarray:
    """Boxes in a few clusters (so that NMS suppresses), distinct scores, some below the threshold."""
    centres = rng.uniform(40, 400, (4, 2))
    cxcy = centres[rng.integers(0, 4, (b, n))] + rng.normal(0, 6, (b, n, 2))
    wh = rng.uniform(20, 60, (b, n, 2))
    obj = rng.uniform(0.05, 1, (b, n, 1))
    cls = rng.uniform(0.05, 1, (b, n, nc))
    return np.concatenate((cxcy, wh, obj, cls), -1).astype(np.float32)


def onnx_nms_session():
    """Exported in each test, not once per module: mutmut attributes a module fixture's calls to one test only."""
    conf, iou, max_det = 0.2, 0.45, 7
    return ort.InferenceSession(export(OnnxNMS(conf, iou, max_det), 40, 8), providers=["CPUExecutionProvider"]), \
        (conf, iou, max_det)


@pytest.mark.parametrize("seed,b,n", [(0, 2, 40), (1, 1, 25), (2, 3, 60)])
def test_onnx_nms_in_onnxruntime_equals_reference(seed, b, n):
    sess, (conf, iou, max_det) = onnx_nms_session()
    pred = clustered_pred(np.random.default_rng(seed), b, n, 3)
    num, boxes, scores, classes = sess.run(None, {"pred": pred})
    assert num.shape == (b, 1) and boxes.shape == (b, max_det, 4) and scores.shape == classes.shape == (b, max_det)
    for i, (w_num, w_boxes, w_scores, w_classes) in enumerate(ref_onnx_nms(pred, conf, iou, max_det)):
        assert num[i, 0] == w_num
        np.testing.assert_allclose(scores[i], w_scores, rtol=1e-6)
        np.testing.assert_array_equal(classes[i], w_classes)
        np.testing.assert_allclose(boxes[i], w_boxes, rtol=1e-5, atol=1e-4)


def test_onnx_nms_pads_with_zeros_when_few_boxes_pass():
    sess, (conf, iou, max_det) = onnx_nms_session()
    pred = clustered_pred(np.random.default_rng(5), 1, 10, 3)
    pred[..., 4] = 0.01  # every obj*cls below conf but one
    pred[0, 3, 4], pred[0, 3, 5:] = 0.9, (0.1, 0.8, 0.3)  # conf 0.72 (class 1) and 0.27 (class 2)
    num, boxes, scores, classes = sess.run(None, {"pred": pred})
    assert num.tolist() == [[2]] and classes.dtype == np.int64 and boxes.dtype == np.float32
    np.testing.assert_allclose(scores[0], [0.72, 0.27, 0, 0, 0, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(classes[0], [1, 2, 0, 0, 0, 0, 0])
    cx, cy, w, h = pred[0, 3, :4]
    np.testing.assert_allclose(boxes[0, :2], [[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]] * 2, rtol=1e-6)
    assert not boxes[0, 2:].any()


def test_onnx_nms_padding_is_zero_when_the_first_box_of_class_0_is_kept():
    """The padding TopK sees is zeros, not a copy of a kept score: with box 0 of class 0 kept (the first entry
    of the flattened [C*N] scores), one detection comes out once, not max_det times."""
    sess, (conf, iou, max_det) = onnx_nms_session()
    pred = clustered_pred(np.random.default_rng(6), 1, 10, 3)
    pred[..., 4] = 0.01
    pred[0, 0, 4], pred[0, 0, 5:] = 0.9, (0.8, 0.1, 0.1)  # only box 0, class 0 passes: conf 0.72
    num, boxes, scores, classes = sess.run(None, {"pred": pred})
    assert num.tolist() == [[1]]
    np.testing.assert_allclose(scores[0], [0.72, 0, 0, 0, 0, 0, 0], rtol=1e-6)
    assert not classes[0].any() and not boxes[0, 1:].any()


def test_onnx_nms_k_is_max_det_even_with_more_candidates():
    """More class-boxes (3*20) than max_det: K = max_det, the best by score over all classes."""
    sess = ort.InferenceSession(export(OnnxNMS(0.0, 0.99, 4), 20, 8), providers=["CPUExecutionProvider"])
    pred = clustered_pred(np.random.default_rng(3), 1, 20, 3)
    num, _, scores, _ = sess.run(None, {"pred": pred})
    s = np.sort((pred[0, :, 4:5] * pred[0, :, 5:]).ravel())[::-1]
    assert num.tolist() == [[4]]
    np.testing.assert_allclose(scores[0], s[:4], rtol=1e-6)


def test_boxes_scores_eager():
    pred = torch.tensor([[[10.0, 20.0, 4.0, 6.0, 0.5, 0.2, 0.8]]])
    boxes, scores = boxes_scores(pred)
    assert boxes.tolist() == [[[8.0, 17.0, 12.0, 23.0]]]
    f = np.float32
    np.testing.assert_array_equal(scores.numpy(), [[[f(0.5) * f(0.2), f(0.5) * f(0.8)]]])


@pytest.mark.parametrize("b,c,n", [(2, 3, 4), (1, 2, 13)])
def test_eager_stand_in_selects_the_first_boxes_of_every_image_and_class(b, c, n):
    """Only shapes matter at trace time, but the indices must be in range: the first min(n, 10) boxes."""
    idx = _NonMaxSuppression.apply(torch.zeros(b, n, 4), torch.zeros(b, c, n), None, None, None)
    assert idx.dtype == torch.int64
    want = [(i, j, k) for i in range(b) for j in range(c) for k in range(min(n, 10))]
    assert [tuple(r) for r in idx.tolist()] == want


def test_trt_nms_exports_one_efficient_nms_plugin_node():
    """TensorRT only: check the node against the plugin's documented attributes and output types."""
    m = onnx.load_from_string(export(TrtNMS(0.3, 0.6, 50), 30, 9))
    (node,) = [n for n in m.graph.node if n.op_type == "EfficientNMS_TRT"]
    assert node.domain == "TRT" and len(node.input) == 2 and len(node.output) == 4
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"background_class": -1, "box_coding": 0, "iou_threshold": pytest.approx(0.6),
                     "max_output_boxes": 50, "plugin_version": b"1", "score_activation": 0,
                     "score_threshold": pytest.approx(0.3)}
    # the plugin has no shape inference: the exporter keeps the eager stand-in's dtypes and ranks
    types = {o.name: (o.type.tensor_type.elem_type, len(o.type.tensor_type.shape.dim)) for o in m.graph.output}
    i32, f32 = onnx.TensorProto.INT32, onnx.TensorProto.FLOAT
    assert types == {"num_dets": (i32, 2), "boxes": (f32, 3), "scores": (f32, 2), "classes": (i32, 2)}
    # the plugin's inputs are the xyxy boxes and the obj*cls scores of the prediction
    producers = {o: n for n in m.graph.node for o in n.output}
    assert producers[node.input[0]].op_type == "Concat" and producers[node.input[1]].op_type == "Mul"


def test_nms_modules_registry():
    assert NMS_MODULES == {"onnx": OnnxNMS, "trt": TrtNMS}
    head = OnnxNMS(0.25, 0.45, 300)
    assert (head.conf_thres, head.iou_thres, head.max_det) == (0.25, 0.45, 300)


def test_onnx_nms_runs_with_fewer_class_boxes_than_max_det():
    sess = ort.InferenceSession(export(OnnxNMS(0.25, 0.45, 300), 512, 6), providers=["CPUExecutionProvider"])
    pred = clustered_pred(np.random.default_rng(4), 1, 252, 1)  # 3 levels of a 64x64 input: 3 * (64 + 16 + 4)
    num, boxes, _, _ = sess.run(None, {"pred": pred})
    assert boxes.shape == (1, 300, 4) and 0 < num[0, 0] <= 252
