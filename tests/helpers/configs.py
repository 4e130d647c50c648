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
