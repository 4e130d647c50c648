"""Bundled sample data: our own synthetic image (scripts/make_sample_image.py) and a real trained YOLOR
checkpoint in upstream's released paper-branch format (shapes-ssss-w025.pt: yolor-ssss-s2d at width 0.25,
3 classes circle/square/triangle, trained with upstream train.py; mAP@0.5 0.957 on its validation set)."""
from importlib import resources
from pathlib import Path


def sample_image() -> Path:
    return Path(str(resources.files(__name__) / "shapes.jpg"))


def trained_checkpoint() -> Path:
    return Path(str(resources.files(__name__) / "shapes-ssss-w025.pt"))
