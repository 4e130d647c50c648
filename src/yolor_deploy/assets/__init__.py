"""Bundled sample data (our own synthetic image; see scripts/make_sample_image.py)."""
from importlib import resources
from pathlib import Path


def sample_image() -> Path:
    return Path(str(resources.files(__name__) / "shapes.jpg"))
