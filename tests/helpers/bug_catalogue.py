"""A catalogue of real export bugs, injected into an otherwise correct export, to prove the verification
rule is sharp: every one must fail. Used by tests/test_verify_catalogue.py and scripts/verify_margins.py.

Each bug is a context manager taking the model and yielding the model to export (a modified copy for
weight bugs); decode bugs replace the export decode while the context is open. The verification always
compares against the *original* model.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from yolor_deploy.export import rewrites
from yolor_deploy.export.rewrites import runtime_grid
from yolor_deploy.nn.decode import Decode


def _decode(offset=-0.5, wh="sig2", grid_shift=0.0, anchor_roll=0, swap_cls=False, wh_scale=1.0, xy_add=0.0):
    """An export decode with one thing wrong (the arguments' defaults give the correct decode)."""

    def decode(self, maps, anchors_px, strides):
        out, raw = [], []
        for i, p in enumerate(maps):
            bs, _, ny, nx = p.shape
            p = p.float().reshape(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2)
            raw.append(p)
            xy, whs, conf = p.sigmoid().split((2, 2, self.no - 4), -1)
            xy = (xy * 2.0 + offset + runtime_grid(p) + grid_shift) * strides[i] + xy_add
            anchor = anchors_px[(i + anchor_roll) % len(maps)].float().view(1, self.na, 1, 1, 2)
            size = p[..., 2:4].exp() * anchor if wh == "exp" else (whs * 2) ** 2 * anchor
            size = size * wh_scale
            if swap_cls:
                conf = torch.cat((conf[..., :1], conf[..., 2:3], conf[..., 1:2], conf[..., 3:]), -1)
            out.append(torch.cat((xy, size, conf), -1).flatten(1, 3))
        return torch.cat(out, 1), raw

    return decode


@contextlib.contextmanager
def _patched_decode(fn) -> Iterator[None]:
    saved = rewrites.decode_for_export
    rewrites.decode_for_export = fn
    try:
        yield
    finally:
        rewrites.decode_for_export = saved


def decode_bug(**kw) -> Callable:
    @contextlib.contextmanager
    def bug(model):
        with _patched_decode(_decode(**kw)):
            yield model

    return bug


@contextlib.contextmanager
def in_place_decode(model):
    """Upstream's eager decode (slice writes into the sigmoid output) exported as is: ScatterND."""
    with _patched_decode(Decode.forward):
        yield model


@contextlib.contextmanager
def bn_eps(model):
    """Every BatchNorm with eps 1e-5 (torch's default) instead of the branch's (1e-3 paper, 1e-4 main)."""
    m = model.clone()
    for bn in m.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.eps = 1e-5
    yield m


@contextlib.contextmanager
def implicit_dropped(model):
    """The first implicit layer (ImplicitA / [implicit_add] or ImplicitM / [implicit_mul]) left out."""
    m = model.clone()
    layer = next(x for x in m.modules() if isinstance(getattr(x, "implicit", None), torch.nn.Parameter))
    with torch.no_grad():
        identity = 0.0 if abs(float(layer.implicit.mean())) < 0.5 else 1.0
        layer.implicit.fill_(identity)
    yield m


BUGS: dict[str, Callable] = {
    "missing -0.5 grid offset": decode_bug(offset=0.0),
    "exp instead of (2*sigmoid)^2": decode_bug(wh="exp"),
    "BN eps 1e-5": bn_eps,
    "implicit layer dropped": implicit_dropped,
    "anchors of the wrong level": decode_bug(anchor_roll=1),
    "grid shifted by half a cell": decode_bug(grid_shift=0.5),
    "in-place decode (ScatterND)": in_place_decode,
    "two class columns swapped": decode_bug(swap_cls=True),
    "wh off by 0.5%": decode_bug(wh_scale=1.005),
    "boxes off by 1 px": decode_bug(xy_add=1.0),
}


def export_with_bug(model, bug: str, imgsz=(320, 320), dynamic: bool = False):
    """The ONNX ModelProto of `model` exported with `bug` injected (no verification)."""
    from yolor_deploy.export import passes
    from yolor_deploy.export.onnx_export import ExportOptions, build_metadata, build_raw_onnx

    o = ExportOptions(imgsz=imgsz, dynamic=dynamic, verify=False)
    with BUGS[bug](model) as m:
        proto, _ = build_raw_onnx(m, o)
    return passes.set_metadata(proto, build_metadata(model, o))


def margin(report) -> float:
    """How far a report is from passing: the largest err/tol (inf for a structural or shape failure)."""
    if report.graph is not None and not report.graph.passed:
        return float("inf")
    ratios = [g.ratio for c in report.cases for g in c.groups]
    dets = [c.detections.unmatched / c.detections.tolerance for c in report.cases
            if c.detections is not None and c.detections.tolerance > 0]
    if any(not c.shape_ok for c in report.cases):
        return float("inf")
    return max(ratios + dets, default=0.0)
