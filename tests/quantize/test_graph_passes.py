"""Exact rewrites before quantization (`quantize.graph_passes`) and what they buy in the NNCF graph."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest

from yolor_deploy.assets import trained_checkpoint
from yolor_deploy.export import export_onnx
from yolor_deploy.quantize.graph_passes import silu_before_concat
from yolor_deploy.runtime.backends.onnxruntime import cpu_session


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("passes") / "shapes.onnx"
    export_onnx(str(trained_checkpoint()), path, imgsz=(256, 256), opset=17, verify=False)
    return onnx.load(str(path))


def test_silu_moves_before_concat_bit_exactly(model):
    before = Counter(n.op_type for n in model.graph.node)
    out, count = silu_before_concat(model)
    onnx.checker.check_model(out)
    after = Counter(n.op_type for n in out.graph.node)
    assert count == 8  # the folded CSP tails of the shapes model (yolor-p6 has 12)
    assert after["Concat"] == before["Concat"] and after["Sigmoid"] == before["Sigmoid"] + count
    assert after["Mul"] == before["Mul"] + count
    assert Counter(n.op_type for n in model.graph.node) == before  # the argument is untouched
    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    ref = cpu_session(model).run(None, {"images": x})[0]
    new = cpu_session(out).run(None, {"images": x})[0]
    assert np.array_equal(ref, new)  # element-wise ops commute with Concat: bit for bit
    assert silu_before_concat(out)[1] == 0  # nothing left to move


def test_concat_with_other_readers_is_left_alone(model):
    g = onnx.helper
    x = g.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])
    y = g.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    z = g.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [1, 4])
    nodes = [g.make_node("Concat", ["x", "x"], ["c"], axis=1, name="cat"),
             g.make_node("Sigmoid", ["c"], ["s"], name="sig"), g.make_node("Mul", ["c", "s"], ["y"], name="mul")]
    m = g.make_model(g.make_graph(nodes, "t", [x], [y, z]), opset_imports=[g.make_opsetid("", 17)])
    assert silu_before_concat(m)[1] == 0  # the Concat's output is also a graph output: moving would change it
    nodes[2] = g.make_node("Mul", ["s", "s"], ["y"], name="mul")  # not a SiLU
    m = g.make_model(g.make_graph(nodes, "t", [x], [y]), opset_imports=[g.make_opsetid("", 17)])
    assert silu_before_concat(m)[1] == 0
