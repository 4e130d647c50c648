"""The eager YOLOR decode against the paper formula written out in float64 NumPy (fast killer tests)."""
from __future__ import annotations

import numpy as np
import torch

from yolor_deploy.nn.decode import Decode, make_grid


def decode_reference(maps: list[np.ndarray], anchors: np.ndarray, strides: list[float], na: int, no: int):
    """Row by row, in float64: xy = (2*s - 0.5 + cell) * stride, wh = (2*s)**2 * anchor, the rest s."""
    rows, raws = [], []
    for lvl, m in enumerate(maps):
        bs, _, ny, nx = m.shape
        raw = np.empty((bs, na, ny, nx, no))
        out = np.empty((bs, na, ny, nx, no))
        for b in range(bs):
            for a in range(na):
                for gy in range(ny):
                    for gx in range(nx):
                        v = m[b, a * no:(a + 1) * no, gy, gx].astype(np.float64)
                        raw[b, a, gy, gx] = v
                        s = 1.0 / (1.0 + np.exp(-v))
                        out[b, a, gy, gx] = s
                        out[b, a, gy, gx, 0] = (2 * s[0] - 0.5 + gx) * strides[lvl]
                        out[b, a, gy, gx, 1] = (2 * s[1] - 0.5 + gy) * strides[lvl]
                        out[b, a, gy, gx, 2] = (2 * s[2]) ** 2 * anchors[lvl, a, 0]
                        out[b, a, gy, gx, 3] = (2 * s[3]) ** 2 * anchors[lvl, a, 1]
        rows.append(out.reshape(bs, -1, no))
        raws.append(raw)
    return np.concatenate(rows, 1), raws


def test_decode_matches_the_float64_formula():
    rng = np.random.default_rng(0)
    na, no, strides = 3, 7, [8.0, 16.0]
    shapes = [(2, na * no, 3, 5), (2, na * no, 2, 4)]  # ny != nx: a swapped grid axis shows
    maps = [rng.normal(0, 2, s).astype(np.float32) for s in shapes]
    anchors = rng.uniform(5, 90, (2, na, 2)).astype(np.float32)
    want, want_raw = decode_reference(maps, anchors.astype(np.float64), strides, na, no)
    pred, raw = Decode(na, no)([torch.from_numpy(m) for m in maps], torch.from_numpy(anchors), strides)
    assert pred.dtype == torch.float32 and pred.shape == want.shape == (2, na * (15 + 8), no)
    np.testing.assert_allclose(pred.numpy(), want, rtol=2e-6, atol=2e-5)
    assert len(raw) == 2
    for r, w in zip(raw, want_raw):
        assert r.shape == w.shape
        np.testing.assert_array_equal(r.numpy(), w.astype(np.float32))


def test_decode_in_float64_is_exact_to_rounding():
    """In float64 the eager decode and the formula agree to ~1e-15: no float32 slack hides a constant."""
    rng = np.random.default_rng(1)
    na, no = 2, 6
    maps = [rng.normal(0, 3, (1, na * no, 4, 3))]
    anchors = rng.uniform(1, 50, (1, na, 2))
    want, _ = decode_reference(maps, anchors, [32.0], na, no)
    pred, _ = Decode(na, no)([torch.from_numpy(maps[0])], torch.from_numpy(anchors), [32.0])
    assert pred.dtype == torch.float64
    np.testing.assert_allclose(pred.numpy(), want, rtol=1e-12, atol=1e-12)


def test_make_grid_cell_offsets():
    g = make_grid(3, 2)
    assert g.dtype == torch.float32 and g.shape == (1, 1, 2, 3, 2)
    want = np.array([[[0, 0], [1, 0], [2, 0]], [[0, 1], [1, 1], [2, 1]]], dtype=np.float32)
    np.testing.assert_array_equal(g[0, 0].numpy(), want)
    assert make_grid(2, 1, torch.float64).dtype == torch.float64


def test_make_grid_and_decode_stay_on_the_maps_device():
    """On the meta device (no data): a grid or an anchor left on the CPU would not mix with the maps."""
    meta = torch.device("meta")
    assert make_grid(3, 2, device=meta).device == meta
    maps = [torch.empty(1, 2 * 6, 4, 3, device=meta)]
    pred, raw = Decode(2, 6)(maps, torch.ones(1, 2, 2, device=meta), [8.0])
    assert pred.device == meta and pred.shape == (1, 2 * 12, 6) and raw[0].shape == (1, 2, 4, 3, 6)


def test_make_grid_warns_nothing():
    """meshgrid without an explicit indexing= warns (and 'xy' would swap the axes). torch warns once per
    process: warn_always makes every call show it, whatever ran before."""
    import warnings

    always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            make_grid(4, 2)
    finally:
        torch.set_warn_always(always)


def test_decode_takes_anchors_in_the_maps_dtype():
    """float16 maps with float32 anchors decode as with the anchors rounded to float16 first."""
    rng = np.random.default_rng(2)
    maps = [torch.from_numpy(rng.normal(0, 2, (1, 2 * 6, 3, 4)).astype(np.float16))]
    anchors = torch.from_numpy(rng.uniform(5, 90, (1, 2, 2)).astype(np.float32)) + 0.0123
    pred32, _ = Decode(2, 6)(maps, anchors, [16.0])
    pred16, _ = Decode(2, 6)(maps, anchors.half(), [16.0])
    assert pred32.dtype == torch.float16
    np.testing.assert_array_equal(pred32.numpy(), pred16.numpy())
