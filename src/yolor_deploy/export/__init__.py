"""Export-time rewrites and ONNX export (kept apart from the faithful networks in nn/).

Imports are lazy: `import yolor_deploy.export` alone loads no torch.
"""
__all__ = ["ExportOptions", "ExportResult", "export_onnx"]


def __getattr__(name: str):
    if name in __all__:
        from . import onnx_export

        return getattr(onnx_export, name)
    raise AttributeError(name)
