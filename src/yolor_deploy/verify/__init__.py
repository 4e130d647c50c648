"""Verification of exported models against PyTorch (raw tensors and detections after NMS)."""
