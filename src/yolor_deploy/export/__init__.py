"""Export-time rewrites and ONNX export (kept apart from the faithful networks in nn/)."""
