"""Model-file helpers shared by export, verify, quantize and the runtime (no torch): our metadata in an ONNX
model (`onnx_meta`), OpenVINO IR conversion and writing (`openvino_ir`)."""
