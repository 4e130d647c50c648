"""yolor-deploy: safe loading, verified ONNX export and a torch-free runtime for YOLOR detectors."""
__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "load_checkpoint", "save_checkpoint"]


def __getattr__(name: str):
    # Lazy: importing the package (e.g. for the runtime) must not import torch.
    if name == "create_model":
        from .nn.registry import create_model
        return create_model
    if name in ("load_checkpoint", "save_checkpoint"):
        from . import checkpoint
        return getattr(checkpoint, name)
    raise AttributeError(name)
