"""Open Inference Protocol (KServe v2) tensors over REST: JSON tensors and the binary tensor data extension.

A request body is JSON, or (header `Inference-Header-Content-Length: N`) N bytes of JSON followed by the raw
bytes of each input whose `parameters.binary_data_size` says how many, in input order. BYTES elements in binary
form are a 4-byte little-endian length and the bytes, repeated. An answer carries an output in binary when the
request's output entry asks `parameters.binary_data: true` (or the request's `parameters.binary_data_output`).
Every malformed request is `RequestError(400, ...)` naming the input and the problem.
"""
from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .inputs import bad_request

HEADER = "Inference-Header-Content-Length"
DTYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}


def datatype_of(array: np.ndarray) -> str:
    """numpy dtype -> the protocol's datatype name."""
    if array.dtype == np.object_ or array.dtype.kind in "SU":
        return "BYTES"
    for name, dt in DTYPES.items():
        if dt is not np.object_ and array.dtype == np.dtype(dt):
            return name
    raise ValueError(f"no Open Inference Protocol datatype for {array.dtype}")


@dataclass
class Tensor:
    """One named tensor; `data` is an ndarray of `shape` (dtype object holding bytes for BYTES)."""

    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray


@dataclass
class InferRequest:
    """An inference request, protocol-neutral (REST and gRPC both build it)."""

    inputs: list[Tensor]
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] | None = None  # names asked for (None: all)
    binary_outputs: set[str] = field(default_factory=set)
    binary_all: bool = False
    id: str = ""


def check_shape(name: str, shape: Any) -> list[int]:
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise bad_request(f"input {name!r}: shape {shape!r} is not a list of non-negative integers")
    return shape


def bytes_elements(name: str, raw: bytes) -> list[bytes]:
    """The binary BYTES form (length-prefixed elements) -> the elements."""
    out, i = [], 0
    while i < len(raw):
        if i + 4 > len(raw):
            raise bad_request(f"input {name!r}: BYTES data ends inside an element's 4-byte length")
        (n,) = struct.unpack_from("<I", raw, i)
        if i + 4 + n > len(raw):
            raise bad_request(f"input {name!r}: BYTES element of {n} bytes runs past the data")
        out.append(raw[i + 4:i + 4 + n])
        i += 4 + n
    return out


def bytes_serialized(elements: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def array_from_bytes(name: str, datatype: str, shape: list[int], raw: bytes) -> np.ndarray:
    """Raw tensor bytes (binary extension, gRPC raw_input_contents) -> ndarray of `shape`."""
    count = math.prod(shape)
    if datatype == "BYTES":
        elements = bytes_elements(name, raw)
        if len(elements) != count:
            raise bad_request(f"input {name!r}: {len(elements)} BYTES elements for shape {shape} ({count})")
        arr = np.empty(count, dtype=np.object_)
        arr[:] = elements
        return arr.reshape(shape)
    dtype = np.dtype(DTYPES[datatype])
    if len(raw) != count * dtype.itemsize:
        raise bad_request(f"input {name!r}: {len(raw)} bytes of data for {datatype} shape {shape} "
                          f"(expected {count * dtype.itemsize})")
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)


def array_from_json(name: str, datatype: str, shape: list[int], data: Any) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        flat = list(_flatten(data))
        if not all(isinstance(v, str) for v in flat):
            raise bad_request(f"input {name!r}: BYTES data in JSON must be strings (send binary data for images)")
        arr = np.empty(len(flat), dtype=np.object_)
        arr[:] = [v.encode() for v in flat]
    else:
        try:
            arr = np.asarray(list(_flatten(data)), dtype=DTYPES[datatype])
        except (TypeError, ValueError, OverflowError):
            raise bad_request(f"input {name!r}: data is not a list of {datatype} numbers") from None
    if arr.size != count:
        raise bad_request(f"input {name!r}: {arr.size} values for shape {shape} ({count} expected)")
    return arr.reshape(shape)


def _flatten(data: Any):
    if isinstance(data, list):
        for v in data:
            yield from _flatten(v)
    else:
        yield data


def parse_rest_request(body: bytes, header_length: str | None) -> InferRequest:
    """A REST infer body (JSON, or JSON + binary tensors) -> InferRequest."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise bad_request(f"{HEADER}: {header_length!r} is not a number") from None
        if not 0 < n <= len(body):
            raise bad_request(f"{HEADER}: {n} is outside the body's {len(body)} bytes")
        head, rest = body[:n], body[n:]
    else:
        head, rest = body, b""
    try:
        doc = json.loads(head)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"request body: not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise bad_request("request body: expected a JSON object with a non-empty 'inputs' list")
    inputs, offset = [], 0
    for entry in doc["inputs"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise bad_request("inputs: every input needs a 'name'")
        name, datatype = entry["name"], entry.get("datatype")
        if datatype not in DTYPES:
            raise bad_request(f"input {name!r}: datatype {datatype!r} is not one of {', '.join(DTYPES)}")
        shape = check_shape(name, entry.get("shape"))
        size = (entry.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(rest):
                raise bad_request(f"input {name!r}: binary_data_size {size!r} runs past the body's binary part")
            arr = array_from_bytes(name, datatype, shape, rest[offset:offset + size])
            offset += size
        elif "data" in entry:
            arr = array_from_json(name, datatype, shape, entry["data"])
        else:
            raise bad_request(f"input {name!r}: no 'data' and no binary_data_size")
        inputs.append(Tensor(name, datatype, shape, arr))
    if offset != len(rest):
        raise bad_request(f"request body: {len(rest) - offset} bytes of binary data belong to no input")
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise bad_request("parameters: expected a JSON object")
    req = InferRequest(inputs, params, id=str(doc.get("id", "")), binary_all=bool(params.get("binary_data_output")))
    if isinstance(doc.get("outputs"), list):
        req.outputs = []
        for o in doc["outputs"]:
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise bad_request("outputs: every output needs a 'name'")
            req.outputs.append(o["name"])
            if (o.get("parameters") or {}).get("binary_data"):
                req.binary_outputs.add(o["name"])
    return req


def rest_response(model: str, version: str, req: InferRequest,
                  outputs: list[tuple[str, np.ndarray]]) -> tuple[bytes, dict[str, str]]:
    """The answer body and headers: JSON, with binary outputs appended after it when asked."""
    entries, blobs = [], []
    for name, arr in outputs:
        dt = datatype_of(arr)
        entry: dict[str, Any] = {"name": name, "datatype": dt, "shape": list(arr.shape)}
        if req.binary_all or name in req.binary_outputs:
            raw = tensor_bytes(arr)
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = ([v.decode("utf-8", "replace") for v in arr.reshape(-1)] if dt == "BYTES"
                             else arr.reshape(-1).tolist())
        entries.append(entry)
    doc: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": entries}
    if req.id:
        doc["id"] = req.id
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return head, {"Content-Type": "application/json"}
    return head + b"".join(blobs), {HEADER: str(len(head)), "Content-Type": "application/octet-stream"}


def tensor_bytes(arr: np.ndarray) -> bytes:
    """An array's raw little-endian bytes (BYTES: length-prefixed elements)."""
    if datatype_of(arr) == "BYTES":
        return bytes_serialized([v if isinstance(v, bytes) else str(v).encode() for v in arr.reshape(-1)])
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
