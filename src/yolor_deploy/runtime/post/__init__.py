"""What turns a model's raw outputs into boxes on the original image, in NumPy.

- `nms.py`: non-maximum suppression with upstream YOLOR's semantics;
- `boxes.py`: box formats, areas, IoU, clipping, and scaling back from the letterboxed image.

Holds no code itself: import from the modules.
"""
