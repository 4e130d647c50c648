"""Export-time rewrites and ONNX export (kept apart from the faithful networks in nn/)."""
from .onnx_export import ExportOptions, ExportResult, export_onnx

__all__ = ["ExportOptions", "ExportResult", "export_onnx"]
