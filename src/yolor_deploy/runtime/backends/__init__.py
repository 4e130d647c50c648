"""What runs a model: every backend shows the `Detector` one face and says what the model is.

- `protocol.py`: `Backend`, the face (a preprocessed batch in, the model's raw outputs out);
- `onnxruntime.py`: `OrtBackend` (execution providers, sessions) and `cpu_session`;
- `openvino.py`: `OpenVINOBackend` (an ONNX model or an OpenVINO IR);
- `torch_backend.py`: `TorchBackend`, a PyTorch checkpoint: the one runtime module that imports torch (lazily);
- `remote.py`: `RemoteBackend`, a model on an Open Inference Protocol server (HTTP or gRPC, `tritonclient`);
- `metadata.py`: our metadata read from a model, defaults for a model without it;
- `report_hint.py`: an optimize report's runtime settings, read only when asked;
- `validate.py`: a model's inputs and outputs checked against its metadata;
- `throughput.py`: how a backend is driven in throughput mode (several images in flight, input order kept).

Holds no code itself: import from the modules.
"""
