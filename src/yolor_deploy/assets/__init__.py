"""Bundled sample data: our own synthetic image (scripts/make_sample_image.py) and a real trained YOLOR
checkpoint in upstream's released paper-branch format (shapes-ssss-w025.pt: yolor-ssss-s2d at width 0.25,
3 classes circle/square/triangle, trained with upstream train.py; mAP@0.5 0.957 on its validation set)."""
from importlib import resources
from pathlib import Path


def sample_image() -> Path:
    return Path(str(resources.files(__name__) / "shapes.jpg"))


def trained_checkpoint() -> Path:
    return Path(str(resources.files(__name__) / "shapes-ssss-w025.pt"))


def val_images() -> Path:
    """20 labelled validation images of the trained model (256x256 JPEG, upstream's synthetic shapes)."""
    return Path(str(resources.files(__name__) / "shapes-val" / "images"))


def val_labels() -> Path:
    """YOLO txt labels (cls cx cy w h, normalised) of `val_images()`."""
    return Path(str(resources.files(__name__) / "shapes-val" / "labels"))
