"""Small configs shared by the config tests."""

# A minimal valid darknet cfg: one conv, the head conv, one [yolo] level.
MINI = """[net]
width=64

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=silu

[convolutional]
filters=18
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=0,1,2
anchors=10,13, 16,30, 33,23
classes=1
num=3
"""


# Main-branch fold tests: a conv stem with the implicit pair the folds look for, and a one-level head tail.
IMPLICIT_STEM = """[net]
[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=silu

[implicit_add]
filters=8

[implicit_mul]
filters=18
"""
YOLO_TAIL = """[yolo]
mask=0,1,2
anchors=10,13, 16,30, 33,23
classes=1
"""
