"""NMS appended to the exported graph: torch modules whose NMS node is emitted by a symbolic.

- `OnnxNMS`: standard `NonMaxSuppression` (ONNX Runtime, OpenVINO), class-aware (it runs per class
  by definition), then top-`max_det` over all classes per image, padded.
- `TrtNMS`: one `TRT::EfficientNMS_TRT` plugin node (TensorRT >= 8).
Both take the decoded `[B, N, 5+nc]` prediction and return num_dets [B,1], boxes [B,K,4] xyxy,
scores [B,K], classes [B,K] with K = max_det; rows at or after num_dets are padding (zeros).
"""
from __future__ import annotations

import torch
from torch import nn


def boxes_scores(pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pred[B,N,5+nc] -> boxes[B,N,4] xyxy, scores[B,N,nc] = obj*cls (upstream's conf)."""
    xy, wh, obj, cls = pred.split((2, 2, 1, pred.shape[-1] - 5), -1)
    return torch.cat((xy - wh / 2, xy + wh / 2), -1), obj * cls


class _NonMaxSuppression(torch.autograd.Function):
    """Eager stand-in returning plausible indices; exported as ONNX NonMaxSuppression."""

    @staticmethod
    def forward(ctx, boxes, scores, max_out, iou, score):  # noqa: ARG004
        b, c, n = scores.shape
        k = min(n, 10)
        idx = torch.zeros(b * c * k, 3, dtype=torch.int64)
        idx[:, 0] = torch.arange(b).repeat_interleave(c * k)
        idx[:, 1] = torch.arange(c).repeat_interleave(k).repeat(b)
        idx[:, 2] = torch.arange(k).repeat(b * c)
        return idx

    @staticmethod
    def symbolic(g, boxes, scores, max_out, iou, score):
        return g.op("NonMaxSuppression", boxes, scores, max_out, iou, score, center_point_box_i=0)


class _NMSHead(nn.Module):
    """pred[B,N,5+nc] -> (num_dets, boxes, scores, classes) with these thresholds."""

    def __init__(self, conf_thres: float, iou_thres: float, max_det: int):
        super().__init__()
        self.conf_thres, self.iou_thres, self.max_det = conf_thres, iou_thres, max_det


class OnnxNMS(_NMSHead):
    def forward(self, pred: torch.Tensor):
        boxes, scores = boxes_scores(pred)
        b, n, c = scores.shape
        per_class = scores.transpose(1, 2).contiguous()  # [B, C, N], the layout NonMaxSuppression takes
        sel = _NonMaxSuppression.apply(
            boxes, per_class, torch.tensor([self.max_det]),
            torch.tensor([self.iou_thres], dtype=torch.float32), torch.tensor([self.conf_thres], dtype=torch.float32))
        # selected (batch, class, box) -> a dense [B, C*N] score map, then top max_det per image
        flat_sel = sel[:, 0] * (c * n) + sel[:, 1] * n + sel[:, 2]
        flat_scores = per_class.reshape(-1)
        kept = torch.zeros_like(flat_scores).scatter(0, flat_sel, flat_scores.gather(0, flat_sel)).view(b, c * n)
        # max_det zero columns after the C*N scores: TopK's k is a constant of the graph, and at run time C*N
        # may be below max_det (few classes, a small dynamic input); padding picks are masked out below
        pad = (kept[:, :1] * 0).expand(b, self.max_det)
        top_scores, top_idx = torch.cat((kept, pad), 1).topk(self.max_det, dim=1)
        valid = top_scores > 0
        box_idx = (top_idx % n).unsqueeze(-1).expand(-1, -1, 4)
        out_boxes = boxes.gather(1, box_idx) * valid.unsqueeze(-1)
        classes = (top_idx // n) * valid
        return valid.sum(1, keepdim=True), out_boxes, top_scores, classes


class _EfficientNMS(torch.autograd.Function):
    @staticmethod
    def forward(ctx, boxes, scores, iou, score, max_det, background):  # noqa: ARG004
        b = boxes.shape[0]
        return (torch.randint(0, max_det, (b, 1), dtype=torch.int32), torch.rand(b, max_det, 4),
                torch.rand(b, max_det), torch.randint(0, scores.shape[-1], (b, max_det), dtype=torch.int32))

    @staticmethod
    def symbolic(g, boxes, scores, iou, score, max_det, background):
        return g.op("TRT::EfficientNMS_TRT", boxes, scores, background_class_i=background, box_coding_i=0,
                    iou_threshold_f=iou, max_output_boxes_i=max_det, plugin_version_s="1",
                    score_activation_i=0, score_threshold_f=score, outputs=4)


class TrtNMS(_NMSHead):
    def forward(self, pred: torch.Tensor):
        boxes, scores = boxes_scores(pred)
        return _EfficientNMS.apply(boxes, scores, self.iou_thres, self.conf_thres, self.max_det, -1)


NMS_MODULES = {"onnx": OnnxNMS, "trt": TrtNMS}
