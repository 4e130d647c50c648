"""Measured accuracy: COCO mAP (pycocotools) of a `Detector` on images with YOLO txt labels.

Torch-free like the runtime: an ONNX model is measured through ONNX Runtime only.
"""
from .coco import (
    CocoMetrics,
    LabeledImage,
    category_ids,
    coco_evaluate,
    coco_ground_truth,
    coco_results,
    evaluate,
    find_labeled_images,
    image_ids,
    read_yolo_labels,
)

__all__ = [
    "CocoMetrics", "LabeledImage", "category_ids", "coco_evaluate", "coco_ground_truth", "coco_results",
    "evaluate", "find_labeled_images", "image_ids", "read_yolo_labels",
]
