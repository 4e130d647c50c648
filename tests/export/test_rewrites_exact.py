"""The export form of the decode (`export/rewrites.py`) against upstream's formula written here in NumPy
float64 (no shared code): xy = (2 sigmoid - 0.5 + grid) * stride, wh = (2 sigmoid)^2 * anchor, rows level
by level as (anchor, gy, gx); grids from the runtime shape, also in a traced dynamic ONNX graph.
Fast: these are also the mutation-testing killers of `export/rewrites.py`."""
from __future__ import annotations

import io

import numpy as np
import onnxruntime as ort
import pytest
import torch

from yolor_deploy.export.rewrites import decode_for_export, export_context, runtime_grid
from yolor_deploy.nn.decode import Decode

NA, NC = 3, 2
NO = NC + 5
STRIDES = [8.0, 16.0, 32.0]
ANCHORS = np.array([[[10, 13], [16, 30], [33, 23]], [[30, 61], [62, 45], [59, 119]],
                    [[116, 90], [156, 198], [373, 326]]], dtype=np.float64)


def formula(maps: list[np.ndarray]) -> np.ndarray:
    out = []
    for i, p in enumerate(maps):
        b, _, ny, nx = p.shape
        y = 1.0 / (1.0 + np.exp(-p.astype(np.float64).reshape(b, NA, NO, ny, nx).transpose(0, 1, 3, 4, 2)))
        gy, gx = np.mgrid[0:ny, 0:nx]
        xy = (y[..., 0:2] * 2 - 0.5 + np.stack([gx, gy], -1)[None, None]) * STRIDES[i]
        wh = (y[..., 2:4] * 2) ** 2 * ANCHORS[i][None, :, None, None, :]
        out.append(np.concatenate([xy, wh, y[..., 4:]], -1).reshape(b, -1, NO))
    return np.concatenate(out, 1)


def random_maps(b: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 2, (b, NA * NO, h // int(s), w // int(s))) for s in STRIDES]


def run_rewrite(maps, dtype=torch.float64):
    d = Decode(NA, NO)
    with torch.no_grad():
        pred, raw = decode_for_export(d, [torch.from_numpy(m).to(dtype) for m in maps],
                                      torch.from_numpy(ANCHORS).to(dtype), STRIDES)
    return pred, raw


@pytest.mark.parametrize("b, h, w", [(1, 64, 64), (2, 96, 160), (1, 224, 32)])
def test_rewritten_decode_is_the_formula(b, h, w):
    maps = random_maps(b, h, w)
    pred, raw = run_rewrite(maps)
    assert pred.dtype == torch.float64 and pred.shape == (b, sum(NA * (h // int(s)) * (w // int(s))
                                                                  for s in STRIDES), NO)
    np.testing.assert_allclose(pred.numpy(), formula(maps), rtol=1e-12, atol=1e-9)
    assert [tuple(r.shape) for r in raw] == [(b, NA, h // int(s), w // int(s), NO) for s in STRIDES]
    eager, _ = Decode(NA, NO)([torch.from_numpy(m) for m in maps], torch.from_numpy(ANCHORS), STRIDES)
    np.testing.assert_allclose(eager.numpy(), formula(maps), rtol=1e-12, atol=1e-9)  # the reference form too


def test_half_maps_decode_in_float32():
    """fp16 maps (a --half export) are decoded in float32: exact to float32 on the fp16 values."""
    maps = random_maps(1, 64, 96, seed=1)
    pred, _ = run_rewrite([m.astype(np.float16) for m in maps], torch.float16)
    assert pred.dtype == torch.float32
    want = formula([m.astype(np.float16).astype(np.float64) for m in maps])
    np.testing.assert_allclose(pred.numpy(), want, rtol=2e-6, atol=1e-4)  # fp16 math would be ~1e-3 off


def test_decode_runs_in_the_dtype_of_the_maps():
    """Anchors of another dtype (float64 buffers, say) do not change the decode's dtype."""
    maps = random_maps(1, 64, 64, seed=3)
    with torch.no_grad():
        pred, _ = decode_for_export(Decode(NA, NO), [torch.from_numpy(m).float() for m in maps],
                                    torch.from_numpy(ANCHORS), STRIDES)
    assert pred.dtype == torch.float32
    np.testing.assert_allclose(pred.numpy(), formula([m.astype(np.float32) for m in maps]), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("ny, nx", [(1, 1), (3, 5), (7, 2)])
def test_runtime_grid_counts_cells_whatever_the_values(ny, nx):
    p = torch.randn(2, NA, ny, nx, NO)
    p[0, 0, 0, 0, 0] = float("nan")
    p[0, 0, -1, -1, 0] = -5.0
    g = runtime_grid(p)
    gy, gx = np.mgrid[0:ny, 0:nx]
    assert tuple(g.shape) == (1, 1, ny, nx, 2)
    np.testing.assert_array_equal(g[0, 0].numpy(), np.stack([gx, gy], -1))


def test_export_context_swaps_and_restores_the_decode():
    original = Decode.forward
    with pytest.raises(RuntimeError), export_context():
        assert Decode.forward is decode_for_export
        raise RuntimeError("boom")
    assert Decode.forward is original


class _Head(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.decode = Decode(NA, NO)

    def forward(self, m0, m1, m2):
        return self.decode([m0, m1, m2], torch.from_numpy(ANCHORS).float(), STRIDES)[0]


def test_traced_dynamic_decode_follows_the_input_shape():
    buf = io.BytesIO()
    example = tuple(torch.zeros(1, NA * NO, 64 // int(s), 64 // int(s)) for s in STRIDES)
    names = ["m0", "m1", "m2"]
    axes = {n: {0: "b", 2: f"h{k}", 3: f"w{k}"} for k, n in enumerate(names)}
    with export_context(), torch.no_grad():
        torch.onnx.export(_Head().eval(), example, buf, dynamo=False, opset_version=17, input_names=names,
                          output_names=["output"], dynamic_axes={**axes, "output": {0: "b", 1: "n"}})
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    assert "ScatterND" not in {n.op_type for n in __import__("onnx").load_from_string(buf.getvalue()).graph.node}
    maps = [m.astype(np.float32) for m in random_maps(2, 128, 192, seed=2)]
    got = sess.run(None, dict(zip(names, maps)))[0]
    np.testing.assert_allclose(got, formula(maps), rtol=1e-5, atol=2e-3)
