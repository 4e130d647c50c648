"""int8 quantization of exported ONNX models (torch-free): ONNX Runtime static QDQ (`ort_qdq`) and
OpenVINO NNCF (`openvino_nncf`), calibrated with the runtime's own preprocessing."""
from .ort_qdq import QuantizeOptions, QuantizeResult, evaluate_pair, quantize_onnx

__all__ = ["QuantizeOptions", "QuantizeResult", "evaluate_pair", "quantize_onnx"]
