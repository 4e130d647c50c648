"""Find the first top-level layer where an exported ONNX model departs from its PyTorch model.

PyTorch side: forward hooks on every top-level layer (`model.model[i]` on the paper branch,
`model.module_list[i]` on the main branch) of the original model in fp32 and fp64, and of the
export-prepared (folded) copy. ONNX side: the TorchScript exporter names nodes by module scope
(`/model.3/cv1/conv/Conv`, `/module_list.12/Conv2d/Conv`), and onnxslim keeps that prefix even where
it renames a node or its output tensor. The tensors a scope hands to other scopes (or to the graph
outputs) are that layer's outputs; they are added as extra graph outputs and read back from ORT.

A layer with no node of its own (main-branch `[yolo]`, one-source `[route]`, a folded implicit layer)
reads the tensor of the layer whose output it passes on, found by object identity in the folded
PyTorch forward; a layer that is only a constant (main `[implicit_*]`) is skipped.

Status per layer, with err = max |onnx - fp64 PyTorch| and tolerance = FACTOR * (PyTorch fp32's own
error) + rtol * max |fp64|:
- "ok": within tolerance of the original model;
- "folded": off the original but within tolerance of the folded model the export was made from: the
  export's folds moved math across this layer boundary (main head: the control multiply lives in the
  conv before it). Expected there; elsewhere it points at a fold;
- "DIVERGED": off both; "skipped": nothing in the graph to compare.
The decoded output (the tensor named `output`, also inside an NMS graph, whose tail is pruned off) is
judged with the export verification rule (`rule.check_groups`). `--half` exports get a larger
rtol (HALF_RTOL), applied to the decoded output too.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from ..nn.model import YOLORModel
from .rule import GROUPS, check_groups, noise_stats

FACTOR = 2.0  # per-layer tolerance: FACTOR x PyTorch fp32's own error + rtol x max|value|

DEFAULT_RTOL = 1e-3
HALF_RTOL = 2e-2  # fp16 activations: about 1e-3 relative per layer, accumulating
OUTPUT = "output"


@dataclass
class LayerDiff:
    """One compared tensor. `index` is None for the decoded output row; `part` numbers list outputs."""

    index: int | None
    part: int | None
    type: str
    shape: tuple
    onnx_shape: tuple | None
    tensor: str | None  # the ONNX tensor compared
    max_abs: float  # vs PyTorch fp32 (nan when skipped)
    max_rel: float  # |d| / max(|fp64|, 1e-3 * max|fp64|): the floor keeps near-zero values from dominating
    err: float  # max |onnx - fp64|
    tolerance: float
    status: str  # "ok" | "folded" | "DIVERGED" | "skipped"
    note: str = ""

    @property
    def label(self) -> str:
        base = OUTPUT if self.index is None else str(self.index)
        return base if self.part is None else f"{base}[{self.part}]"

    @property
    def diverged(self) -> bool:
        return self.status == "DIVERGED"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["label"] = self.label
        return d


def layer_container(model: YOLORModel) -> tuple[str, torch.nn.Module]:
    """(scope attribute, the top-level layers) of a model of either branch."""
    if model.branch == "main":
        return "module_list", model.module_list
    return "model", model.model


def layer_type(model: YOLORModel, i: int) -> str:
    """Upstream's name for layer i: the cfg section type (main) or the module class (paper)."""
    if model.branch == "main" and model.spec is not None:
        return model.spec.sections[i].type
    return type(layer_container(model)[1][i]).__name__


def scope_index(node_name: str, attr: str) -> int | None:
    """Top-level layer index from a node name: `/model.3/cv1/conv/Conv` -> 3 (attr "model")."""
    for part in node_name.split("/"):
        m = re.fullmatch(rf"{re.escape(attr)}\.(\d+)", part)
        if m:
            return int(m.group(1))
    return None


def layer_tensors(graph: onnx.GraphProto, attr: str) -> dict[int, list[str]]:
    """Per layer index, the tensors its nodes hand to other scopes or to the graph outputs (graph order)."""
    scope = {}
    for n in graph.node:
        i = scope_index(n.name, attr)
        for t in n.output:
            scope[t] = i
    used_outside: set[str] = {o.name for o in graph.output}
    for n in graph.node:
        i = scope_index(n.name, attr)
        used_outside.update(t for t in n.input if t in scope and scope[t] != i)
    out: dict[int, list[str]] = {}
    for n in graph.node:
        i = scope_index(n.name, attr)
        if i is not None:
            out.setdefault(i, []).extend(t for t in n.output if t in used_outside)
    return out


def _prune_to(graph: onnx.GraphProto, names: list[str]) -> None:
    """Keep only the nodes the tensors `names` depend on (drops e.g. a TensorRT NMS tail)."""
    producer = {t: k for k, n in enumerate(graph.node) for t in n.output}
    keep, todo = set(), [producer[t] for t in names if t in producer]
    while todo:
        k = todo.pop()
        if k not in keep:
            keep.add(k)
            todo.extend(producer[t] for t in graph.node[k].input if t in producer)
    nodes = [n for k, n in enumerate(graph.node) if k in keep]
    del graph.node[:]
    graph.node.extend(nodes)


def run_with_outputs(proto: onnx.ModelProto, names: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """Run `proto` in ONNX Runtime (CPU) with `names` as its graph outputs."""
    from ..runtime.backends.onnxruntime import cpu_session

    model = onnx.ModelProto.FromString(proto.SerializeToString())
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shapes only give element types; FLOAT is the fallback
        pass
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.output]}
    g = model.graph
    _prune_to(g, names)
    del g.output[:]
    g.output.extend(onnx.helper.make_tensor_value_info(t, types.get(t) or onnx.TensorProto.FLOAT, None)
                    for t in names)
    sess = cpu_session(model)
    values = sess.run(names, {sess.get_inputs()[0].name: x})
    return dict(zip(names, values))


def _parts(out) -> list[torch.Tensor]:
    return [t for t in out if torch.is_tensor(t)] if isinstance(out, (list, tuple)) else [out]


def torch_layer_outputs(model: YOLORModel, x: torch.Tensor) -> tuple[list, torch.Tensor]:
    """(output of every top-level layer, as returned, None where not run; the decoded output)."""
    _, layers = layer_container(model)
    outs: list = [None] * len(layers)
    hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: outs.__setitem__(i, out))
             for i, m in enumerate(layers)]
    try:
        with torch.no_grad():
            pred = model(x)
    finally:
        for h in hooks:
            h.remove()
    return outs, pred


def _passthrough_source(folded_outs: list, i: int, tensors: dict) -> int | None:
    """The nearest earlier layer with graph tensors whose output object layer i returns as is
    (Identity, `[yolo]`, one-source `[route]`, possibly chained)."""
    o = folded_outs[i]
    return next((j for j in range(i - 1, -1, -1) if folded_outs[j] is o and j in tensors), None)


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0


def _judge(y: np.ndarray, t32, t64, tf, rtol: float) -> tuple[float, float, float, float, str]:
    """(max abs vs fp32, max rel vs fp32, err vs fp64, tolerance, status) for one tensor."""
    r32, r64, rf = t32.detach().numpy(), t64.detach().numpy(), tf.detach().numpy()
    d = np.abs(y.astype(np.float64) - r32.astype(np.float64))
    scale = float(np.abs(r64).max()) if r64.size else 0.0
    mrel = float((d / np.maximum(np.abs(r64), max(1e-6, 1e-3 * scale))).max()) if d.size else 0.0
    err = _max_abs(y, r64)
    tol = FACTOR * _max_abs(r32, r64) + rtol * scale
    if np.isfinite(err) and err <= tol:
        status = "ok"
    elif rf.shape == y.shape and _max_abs(y, rf) <= tol:
        status = "folded"
    else:
        status = "DIVERGED"
    return (float(d.max()) if d.size else 0.0), mrel, err, tol, status


def _skipped(i: int, type_name: str, t: torch.Tensor, note: str) -> LayerDiff:
    nan = float("nan")
    return LayerDiff(i, None, type_name, tuple(t.shape), None, None, nan, nan, nan, nan, "skipped", note)


def _pick(cands: list[str], values: dict, shape: tuple, used: set) -> str | None:
    """The last candidate in graph order with this shape (or the only candidate)."""
    same = [c for c in cands if c not in used and tuple(values[c].shape) == shape]
    if same:
        return same[-1]
    return cands[0] if len(cands) == 1 else None


def _layer_rows(i, type_name, parts32, parts64, partsf, cands, values, rtol, note) -> list[LayerDiff]:
    rows, used = [], set()
    multi = len(parts32) > 1
    for k, (t32, t64, tf) in enumerate(zip(parts32, parts64, partsf)):
        shape = tuple(t32.shape)
        name = _pick(cands, values, shape, used)
        if name is None:
            nan = float("nan")
            rows.append(LayerDiff(i, k if multi else None, type_name, shape, None, None, nan, nan, nan, nan,
                                  "skipped", f"none of {len(cands)} graph tensors has shape {list(shape)}"))
            continue
        used.add(name)
        y = values[name]
        if tuple(y.shape) != shape:
            nan = float("nan")
            rows.append(LayerDiff(i, k if multi else None, type_name, shape, tuple(y.shape), name, nan, nan, nan,
                                  nan, "DIVERGED", "shape differs"))
            continue
        mabs, mrel, err, tol, status = _judge(y, t32, t64, tf, rtol)
        rows.append(LayerDiff(i, k if multi else None, type_name, shape, tuple(y.shape), name, mabs, mrel, err,
                              tol, status, note))
    return rows


def _output_row(y: np.ndarray, p32: torch.Tensor, p64: torch.Tensor, noise: list[np.ndarray],
                rtol: float) -> LayerDiff:
    """The export verification rule (`rule.py`, noise from the untouched model's fp32 variants, `noise.py`)
    per column group; `rtol` (> 0 for --half exports) widens each group's tolerance by rtol x its largest
    value."""
    shape = tuple(p32.shape)
    if tuple(y.shape) != shape:
        nan = float("nan")
        return LayerDiff(None, None, "decode", shape, tuple(y.shape), OUTPUT, nan, nan, nan, nan, "DIVERGED",
                         "shape differs")
    r32, r64 = p32.detach().numpy(), p64.detach().numpy()
    groups = check_groups(y, r64, noise_stats(r64, [r32, *noise]))
    for g in groups:
        lo, hi = GROUPS[g.group]
        g.tolerance += rtol * float(np.abs(r64[..., lo:hi]).max(initial=0.0))
        g.passed = bool(np.isfinite(g.onnx_err) and g.onnx_err <= g.tolerance)
    worst = max(groups, key=lambda g: g.ratio)
    d = np.abs(y.astype(np.float64) - r32)
    mrel = float((d / np.maximum(np.abs(r64), 1e-3)).max()) if d.size else 0.0
    bad = [g.group for g in groups if not g.passed]
    return LayerDiff(None, None, "decode", shape, tuple(y.shape), OUTPUT, float(d.max()), mrel, worst.onnx_err,
                     worst.tolerance, "DIVERGED" if bad else "ok",
                     f"column groups off: {', '.join(bad)}" if bad else f"worst group: {worst.group}")


def is_half(proto: onnx.ModelProto) -> bool:
    from ..formats.onnx_meta import get_metadata

    try:
        meta = get_metadata(proto)
    except ValueError:
        return False
    return bool(meta is not None and meta.half)


def diff_layers(model: YOLORModel, onnx_path: str | Path | onnx.ModelProto, x: np.ndarray,
                rtol: float | None = None) -> list[LayerDiff]:
    """Compare every top-level layer output (and the decoded `output`) of `model` with the ONNX model.

    `x`: ndarray[B, 3, H, W] float32, the input the ONNX model accepts. Rows come in layer order,
    the decoded output last. `rtol` defaults to DEFAULT_RTOL, HALF_RTOL for a `--half` export (whose
    decoded output then also gets the rtol part; an fp32 export's output is judged as `verify` does).
    """
    from ..nn.fold import prepare_for_export

    proto = onnx_path if isinstance(onnx_path, onnx.ModelProto) else onnx.load(str(onnx_path))
    half = is_half(proto)
    rtol = rtol if rtol is not None else (HALF_RTOL if half else DEFAULT_RTOL)
    m32 = model.float().eval()
    attr, layers = layer_container(m32)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    o32, p32 = torch_layer_outputs(m32, xt)
    o64, p64 = torch_layer_outputs(m32.clone().double(), xt.double())
    of, _ = torch_layer_outputs(prepare_for_export(m32, fold=True), xt)
    tensors = layer_tensors(proto.graph, attr)
    has_output = any(OUTPUT in n.output for n in proto.graph.node)
    names = list(dict.fromkeys([t for ts in tensors.values() for t in ts] + [OUTPUT] * has_output))
    values = run_with_outputs(proto, names, x)
    rows: list[LayerDiff] = []
    for i in range(len(layers)):
        type_name = layer_type(m32, i)
        if o32[i] is None:
            continue
        src, note = i, ""
        if i not in tensors:
            src = _passthrough_source(of, i, tensors)
            if src is None:
                rows.append(_skipped(i, type_name, _parts(o32[i])[0], "no node in the graph (a constant, "
                                                                    "or folded into a neighbour)"))
                continue
            note = f"no node of its own: the tensor of layer {src}"
        rows += _layer_rows(i, type_name, _parts(o32[i]), _parts(o64[i]), _parts(of[i]), tensors[src], values,
                            rtol, note)
    if has_output:
        from .noise import ReferenceModels

        noise = list(ReferenceModels(m32).reference(np.ascontiguousarray(x, dtype=np.float32)).fp32.values())
        rows.append(_output_row(values[OUTPUT], p32, p64, noise, rtol if half else 0.0))
    return rows


def first_divergence(diffs: list[LayerDiff]) -> LayerDiff | None:
    """The first diverging row in layer order (the decoded output last), or None."""
    return next((d for d in diffs if d.diverged), None)


def fold_hint(diffs: list[LayerDiff]) -> LayerDiff | None:
    """When only the output diverges: the first layer that matched the folded model but not the original."""
    return next((d for d in diffs if d.status == "folded"), None)


def diff_table(diffs: list[LayerDiff], title: str = "per-layer diff: ONNX Runtime vs PyTorch"):
    """A rich Table, one row per compared tensor."""
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in ("layer", "type", "shape", "max abs", "max rel", "err/tol", "status", "note"):
        t.add_column(col, justify="right" if col in ("layer", "max abs", "max rel", "err/tol") else "left",
                     no_wrap=col != "note")
    style = {"ok": "green", "folded": "yellow", "DIVERGED": "bold red", "skipped": "dim"}
    for d in diffs:
        ratio = "-" if not np.isfinite(d.err) or not d.tolerance else f"{d.err / d.tolerance:.2g}"
        t.add_row(d.label, d.type, "x".join(map(str, d.shape)), _fmt(d.max_abs), _fmt(d.max_rel), ratio,
                  f"[{style[d.status]}]{d.status}[/]", d.note)
    return t


def _fmt(v: float) -> str:
    return "-" if not np.isfinite(v) else f"{v:.3g}"
