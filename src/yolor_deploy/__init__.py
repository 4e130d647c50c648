"""yolor-deploy: safe loading, verified ONNX export and a torch-free runtime for YOLOR detectors."""
__version__ = "0.1.0"

__all__ = ["Detector", "Detections", "__version__", "create_model", "export_onnx", "load_checkpoint",
           "save_checkpoint", "verify_file"]


def __getattr__(name: str):
    # Lazy: importing the package (e.g. for the runtime) must not import torch.
    if name == "Detector":  # the runtime's, with stream() (api.py)
        from .api import Detector
        return Detector
    if name == "Detections":
        from .runtime import Detections
        return Detections
    if name == "export_onnx":
        from .export import export_onnx
        return export_onnx
    if name == "verify_file":
        from .verify.exported import verify_file
        return verify_file
    if name == "create_model":
        from .nn.registry import create_model
        return create_model
    if name in ("load_checkpoint", "save_checkpoint"):
        from . import checkpoint
        return getattr(checkpoint, name)
    raise AttributeError(name)
