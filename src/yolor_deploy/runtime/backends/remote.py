"""A model on an Open Inference Protocol server (KServe v2: `yolor-deploy serve`, Triton, KServe, ...), behind the
`Backend` face: the Detector letterboxes, runs NMS and scales boxes here, exactly as for a local model; only the
model call goes over the wire, as the raw input tensor (binary data over HTTP, raw contents over gRPC).

What the Detector needs to know about the model is read from the server's model configuration (Triton's
`ModelConfig`): input and output names and dims, and our metadata JSON in `parameters.yolor_metadata` (written
there by `yolor-deploy triton` and answered by `serve`). Uses `tritonclient` (the `client` extra), imported when
a remote model is opened.
"""
from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ...contract import MetadataError, ModelMetadata
from ...errors import InputError, first_line
from ...formats.triton import METADATA_PARAM

SCHEMES = ("http", "https", "grpc")
TYPES = {"TYPE_FP32": (np.float32, "FP32"), "TYPE_FP16": (np.float16, "FP16")}


def is_remote(source: Any) -> bool:
    """`source` is a server URL (http://, https://, grpc://), not a file."""
    return isinstance(source, str) and source.split("://", 1)[0].lower() in SCHEMES and "://" in source


def _dims(entry: dict[str, Any]) -> list[int | None]:
    return [None if int(d) < 0 else int(d) for d in entry.get("dims", [])]


class RemoteBackend:
    """`model` (version `version`, default the server's choice) served at `url`."""

    def __init__(self, url: str, model: str, version: str = "", timeout_s: float = 60.0):
        t0 = time.perf_counter()
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES or not parts.netloc or parts.path not in ("", "/"):
            raise InputError(f"{url}: expected http://HOST:PORT, https://HOST:PORT or grpc://HOST:PORT")
        if not model:
            raise InputError(f"{url}: name the model to run on it (model=NAME, --model NAME)")
        self.url, self.model, self.version, self.grpc = url.rstrip("/"), model, version, scheme == "grpc"
        self.path = f"{self.url}/{model}"
        self.name = f"remote ({'gRPC' if self.grpc else scheme.upper()}, Open Inference Protocol)"
        try:
            if self.grpc:
                import tritonclient.grpc as client_mod
            else:
                import tritonclient.http as client_mod
        except ImportError as e:
            raise InputError(f'{url}: a remote model needs tritonclient (missing {e.name}): '
                             f'pip install "yolor-deploy[client]"') from None
        self._mod = client_mod
        try:
            if self.grpc:
                self.client = client_mod.InferenceServerClient(parts.netloc)
                config = self.client.get_model_config(model, version, as_json=True, client_timeout=timeout_s)
                config = config.get("config", config)
            else:
                self.client = client_mod.InferenceServerClient(parts.netloc, ssl=scheme == "https",
                                                               connection_timeout=timeout_s,
                                                               network_timeout=timeout_s)
                config = self.client.get_model_config(model, version)
        except Exception as e:  # noqa: BLE001 - tritonclient raises its own exception and transport errors
            raise InputError(f"{self.path}: cannot read the model's configuration ({first_line(e)})") from None
        self._setup(config)
        self.load_seconds = time.perf_counter() - t0

    def _setup(self, config: dict[str, Any]) -> None:
        entry = (config.get("parameters") or {}).get(METADATA_PARAM) or {}
        text = entry.get("string_value") if isinstance(entry, dict) else None
        if not text:
            raise InputError(f"{self.path}: its configuration carries no {METADATA_PARAM} parameter (write the "
                             f"model repository with `yolor-deploy triton`)")
        try:
            self.metadata = ModelMetadata.from_json(text)
        except (MetadataError, ValueError) as e:
            raise InputError(f"{self.path}: {METADATA_PARAM}: {e}") from None
        inputs, outputs = config.get("input") or [], config.get("output") or []
        if len(inputs) != 1 or not outputs:
            raise InputError(f"{self.path}: expected one input and some outputs, the configuration has "
                             f"{len(inputs)} and {len(outputs)}")
        batched = int(config.get("max_batch_size") or 0) > 0
        lead: list[int | None] = [None] if batched else []
        kind = inputs[0].get("data_type", "TYPE_FP32")
        if kind not in TYPES:
            raise InputError(f"{self.path}: input {inputs[0].get('name')} is {kind}, not an FP32/FP16 image tensor")
        self.input_name = str(inputs[0]["name"])
        self.input_dtype = np.dtype(TYPES[kind][0])
        self._datatype = TYPES[kind][1]
        self.input_shape = tuple(lead + _dims(inputs[0]))
        self.output_names = [str(o["name"]) for o in outputs]
        self.output_shapes = [tuple(lead + _dims(o)) for o in outputs]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        inp = self._mod.InferInput(self.input_name, list(x.shape), self._datatype)
        if self.grpc:
            inp.set_data_from_numpy(x)
            outs = [self._mod.InferRequestedOutput(n) for n in self.output_names]
        else:
            inp.set_data_from_numpy(x, binary_data=True)
            outs = [self._mod.InferRequestedOutput(n, binary_data=True) for n in self.output_names]
        result = self.client.infer(self.model, [inp], model_version=self.version, outputs=outs)
        return [result.as_numpy(n) for n in self.output_names]
