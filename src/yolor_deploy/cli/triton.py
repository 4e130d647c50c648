"""`yolor-deploy triton`: a Triton Inference Server model repository entry from an exported model."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HELP = "write a Triton model repository entry (config.pbtxt + model) for an exported .onnx or OpenVINO .xml"
DESCRIPTION = """\
Write REPO/NAME/config.pbtxt and REPO/NAME/1/model.onnx (onnxruntime backend) or model.xml + model.bin
(openvino backend) for an exported model: max_batch_size, input/output names, types and dims read from the
graph (dynamic dims -1), dynamic_batching, instance_group KIND_CPU, and the model's metadata (classes,
strides, letterbox, NMS; the whole metadata JSON under `yolor_metadata`) as parameters, which a remote
`Detector("http://TRITON:8000", model=NAME)` reads back. The entry is written atomically; an existing
non-empty REPO/NAME is refused unless --force.

examples:
  yolor-deploy triton shapes-dynamic.onnx --out model_repository
  yolor-deploy triton best.xml --out model_repository --name shapes --max-batch 16
  tritonserver --model-repository model_repository
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="exported model: .onnx or OpenVINO .xml (its .bin beside it)")
    p.add_argument("--out", required=True, metavar="REPO", help="the model repository folder")
    p.add_argument("--name", default=None, help="model name in the repository (default: the file's stem)")
    p.add_argument("--max-batch", type=int, default=8,
                   help="max_batch_size for a dynamic-batch model (default 8; a fixed-batch model writes 0)")
    p.add_argument("--force", action="store_true", help="replace an existing REPO/NAME")


def onnx_io(path: Path) -> tuple[list, list]:
    """(inputs, outputs) as formats.triton.TensorSpec, straight from the ONNX graph (symbolic dims: None)."""
    import onnx

    from ..formats.triton import TensorSpec

    g = onnx.load(str(path), load_external_data=False).graph
    init = {i.name for i in g.initializer}

    def spec(v) -> TensorSpec:
        t = v.type.tensor_type
        dtype = str(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type))
        return TensorSpec(v.name, dtype, tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim))

    return [spec(v) for v in g.input if v.name not in init], [spec(v) for v in g.output]


def graph_io(backend) -> tuple[list, list]:
    """(inputs, outputs) as formats.triton.TensorSpec from an open runtime backend (an IR); output types from one
    call on a blank input of the model's size."""
    import numpy as np

    from ..formats.triton import TensorSpec

    shape = [d or 1 for d in backend.input_shape[:2]] + [d or s for d, s in
                                                         zip(backend.input_shape[2:], backend.metadata.imgsz or
                                                             (640, 640))]
    outs = backend(np.zeros(shape, backend.input_dtype))
    inputs = [TensorSpec(getattr(backend, "input_name", "images"), str(np.dtype(backend.input_dtype)),
                         tuple(backend.input_shape))]
    outputs = [TensorSpec(n, str(np.asarray(o).dtype), tuple(s))
               for n, o, s in zip(backend.output_names, outs, backend.output_shapes)]
    return inputs, outputs


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..formats.triton import model_config, to_pbtxt
    from ..formats.triton_repo import write_entry
    from ..runtime.detector import open_backend

    path = Path(args.model)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".onnx", ".xml"):
        raise InputError(f"{path}: a Triton entry is written for an exported .onnx or OpenVINO .xml model")
    if not 1 <= args.max_batch <= 4096:
        raise InputError(f"--max-batch {args.max_batch}: out of range (expected 1..4096)")
    name = args.name or path.stem
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
        raise InputError(f"--name {name!r}: use letters, digits, '_', '-', '.' (a folder name in the repository)")
    kind = "openvino" if suffix == ".xml" else "onnxruntime"
    backend = open_backend(path, backend=kind, threads=1)
    inputs, outputs = onnx_io(path) if kind == "onnxruntime" else graph_io(backend)
    try:
        config = model_config(name, inputs, outputs, backend.metadata, kind, args.max_batch)
    except ValueError as e:
        raise InputError(f"{path}: {e}") from None
    files = [path] if kind == "onnxruntime" else [path, path.with_suffix(".bin")]
    entry = write_entry(args.out, name, to_pbtxt(config), files, kind, force=args.force)
    dims = ", ".join(f"{t['name']} {t['dims']}" for t in config["input"] + config["output"])
    print(f"wrote {entry}/config.pbtxt and {entry}/1/ ({kind}, max_batch_size {config['max_batch_size']}; {dims})",
          file=sys.stderr)
    return 0
