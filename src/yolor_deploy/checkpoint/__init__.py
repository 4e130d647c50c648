"""Safe checkpoint loading (allowlist unpickler) and our own save format."""
from .load import file_sha256, load_checkpoint
from .save import save_checkpoint

__all__ = ["file_sha256", "load_checkpoint", "save_checkpoint"]
