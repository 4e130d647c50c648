"""What comes out: detections, drawn and written.

- `detections.py`: `Detections` (one image's boxes, scores, classes; our JSON, COCO results, YOLO labels);
- `draw.py`: boxes and labels drawn on an image (anything `Drawable`; it does not import the detections);
- `writer.py`: `ResultWriter`, the files `predict` writes (annotated images and videos, labels, COCO JSON).

Holds no code itself: import from the modules.
"""
