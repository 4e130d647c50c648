"""Exact ONNX rewrites that let int8 kernels fuse more, applied before quantization. Pure functions
`ModelProto -> ModelProto` (a copy; the argument is never changed); no torch.

`silu_before_concat`: our export folds a CSP block's BN into its two branches, which leaves
`Concat(y1, y2) -> SiLU` (yolor-p6: 10 such tails). SiLU is element-wise, so it equals
`Concat(SiLU(y1), SiLU(y2))`, bit for bit. In that form every SiLU sits right after the op that makes its
input, so OpenVINO fuses it (and the FakeQuantize after it) into the int8 convolution and the Concat runs
on int8; before, the Concat and SiLU ran as f32 kernels on the full-resolution tensor.
"""
from __future__ import annotations

import onnx
from onnx import helper

from ..formats.onnx_meta import copy_model


def _silu_after(node: onnx.NodeProto, consumers: dict[str, list[onnx.NodeProto]]):
    """(Sigmoid, Mul) when `node`'s only output feeds exactly `x * Sigmoid(x)` and nothing else; else None."""
    out = node.output[0]
    users = consumers.get(out, [])
    if len(users) != 2:
        return None
    sig = next((u for u in users if u.op_type == "Sigmoid"), None)
    mul = next((u for u in users if u.op_type == "Mul"), None)
    if sig is None or mul is None or sorted(mul.input) != sorted([out, sig.output[0]]):
        return None
    if consumers.get(sig.output[0], []) != [mul]:
        return None
    return sig, mul


def silu_before_concat(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` with every `Concat -> SiLU` turned into `SiLU per input -> Concat`; and how many."""
    out = copy_model(model)
    g = out.graph
    graph_outputs = {o.name for o in g.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    new_nodes: list[onnx.NodeProto] = []
    drop: set[int] = set()
    count = 0
    for n in g.node:
        if id(n) in drop:
            continue
        silu = _silu_after(n, consumers) if n.op_type == "Concat" and n.output[0] not in graph_outputs else None
        if silu is None:
            new_nodes.append(n)
            continue
        sig, mul = silu
        drop.update((id(sig), id(mul)))
        parts = []
        for k, x in enumerate(n.input):
            s_out, m_out = f"{n.name}/silu{k}/sigmoid", f"{n.name}/silu{k}/mul"
            new_nodes.append(helper.make_node("Sigmoid", [x], [s_out], name=f"{n.name}/silu{k}/Sigmoid"))
            new_nodes.append(helper.make_node("Mul", [x, s_out], [m_out], name=f"{n.name}/silu{k}/Mul"))
            parts.append(m_out)
        concat = helper.make_node("Concat", parts, [mul.output[0]], name=n.name)
        concat.attribute.extend(n.attribute)
        new_nodes.append(concat)
        count += 1
    del g.node[:]
    g.node.extend(new_nodes)
    return out, count
