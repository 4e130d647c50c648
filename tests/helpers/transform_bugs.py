"""A catalogue of plausible bugs in the export's own transforms (the folds and the export-time rewrites),
injected into the exporting process through the public API (monkeypatching the functions `export_onnx`
calls), as a user who makes a mistake in the export code would. Every one must be refused by
`export_onnx` before anything is written, naming the layer that departs. Used by
tests/export/test_transform_bugs.py and scripts/verify_margins.py.

Each bug: (branches it applies to, where it must be found: a layer type or "decode", install(monkeypatch)).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from yolor_deploy.export import rewrites
from yolor_deploy.export.rewrites import runtime_grid
from yolor_deploy.nn import fold_main, fold_ops, fold_paper
from yolor_deploy.nn import paper_layers as L

_good_scale_shift = fold_ops.bn_scale_shift
_good_affine = fold_ops.fold_affine_into_conv


@dataclass(frozen=True)
class TransformBug:
    branches: tuple[str, ...]
    found_in: str  # where the refusal must point: see `expected_layer` ("decode": every layer agrees)
    install: Callable  # install(monkeypatch)


def _scale_shift(eps: bool = True, sqrt: bool = True, bad_mean_every: int = 0):
    def bn_scale_shift(bn):
        var = bn.running_var.double() + (bn.eps if eps else 0.0)
        scale = bn.weight.double() / (torch.sqrt(var) if sqrt else var)
        mean = bn.running_mean.double().clone()
        if bad_mean_every:
            mean[::bad_mean_every] = -mean[::bad_mean_every]
        return scale, bn.bias.double() - mean * scale

    return lambda mp: mp.setattr(fold_ops, "bn_scale_shift", bn_scale_shift)


def _scale_after_shift(mp):
    """fused bias = (b + shift) * scale instead of b * scale + shift."""
    def affine(conv, scale, shift):
        fused = _good_affine(conv, scale, shift)
        b = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        with torch.no_grad():
            fused.bias.copy_((b + shift) * scale)
        return fused

    mp.setattr(fold_ops, "fold_affine_into_conv", affine)


def _csp_halves_swapped(mp):
    """The CSP tail's BN halves given to the wrong convs (y1's scale and shift to cv2, y2's to y1)."""
    good = fold_paper.fold_csp_tail

    def fold_csp_tail(m):
        bn = m.bn
        with torch.no_grad():
            c = bn.weight.numel() // 2
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t.copy_(torch.cat((t[c:], t[:c])))
        good(m)

    mp.setattr(fold_paper, "fold_csp_tail", fold_csp_tail)


def _implicit_head(variant: str):
    """IDetect's ImplicitM(conv(ImplicitA(x))) folded wrongly: `m_on_bias` leaves the multiplier off the
    conv's own bias, `a_after` adds ImplicitA's effect after the multiplier (wrong placement),
    `a_dropped` forgets ImplicitA."""
    def fold_implicit_head(head):
        for i, conv in enumerate(head.m):
            a = head.ia[i].implicit.double().view(-1)
            m = head.im[i].implicit.double().view(-1)
            w = conv.weight.double().view(conv.out_channels, -1)
            b = conv.bias.double()
            fused = _good_affine(conv, m, m * (w @ a))
            bias = {"m_on_bias": b + m * (w @ a), "a_after": m * b + w @ a, "a_dropped": m * b}[variant]
            with torch.no_grad():
                fused.bias.copy_(bias)
            head.m[i] = fused
            head.ia[i], head.im[i] = nn.Identity(), nn.Identity()
        return 2 * len(head.m)

    return lambda mp: mp.setattr(fold_paper, "fold_implicit_head", fold_implicit_head)


def _main_shift_sign(mp):
    """[shift_channels] folded with the wrong sign: conv(x - a) instead of conv(x + a)."""
    good = fold_main._fold_shift

    def fold_shift(model, i, layer):
        src = model.module_list[layer.sources[0]]
        with torch.no_grad():
            src.implicit.neg_()
        try:
            return good(model, i, layer)
        finally:
            with torch.no_grad():
                src.implicit.neg_()

    mp.setattr(fold_main, "_fold_shift", fold_shift)


def _main_control_weight_only(mp):
    """[control_channels] multiplier folded into the BN's weight but not its bias."""
    def fold_control(model, i, layer):
        m, seq = fold_main._vector(model, layer.sources[0]), fold_main._plain_conv(model, i - 1)
        if m is None or seq is None or "activation" in seq._modules:
            return False
        bn = seq._modules.get("BatchNorm2d")
        with torch.no_grad():
            if bn is not None:
                bn.weight.copy_(bn.weight.double() * m)
            else:
                seq.Conv2d.weight.mul_(m.view(-1, 1, 1, 1))
        return True

    mp.setattr(fold_main, "_fold_control", fold_control)


def _decode(offset=-0.5, anchor_roll=0, reverse_strides=False):
    """The export decode with one thing wrong (the defaults give the correct decode)."""
    def decode(self, maps, anchors_px, strides):
        out, raw = [], []
        n = len(maps)
        for i, p in enumerate(maps):
            bs, _, ny, nx = p.shape
            p = p.reshape(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2)
            raw.append(p)
            xy, wh, conf = p.sigmoid().split((2, 2, self.no - 4), -1)
            stride = strides[n - 1 - i] if reverse_strides else strides[i]
            xy = (xy * 2.0 + offset + runtime_grid(p)) * stride
            wh = (wh * 2) ** 2 * anchors_px[(i + anchor_roll) % n].to(p.dtype).view(1, self.na, 1, 1, 2)
            out.append(torch.cat((xy, wh, conf), -1).flatten(1, 3))
        return torch.cat(out, 1), raw

    return lambda mp: mp.setattr(rewrites, "decode_for_export", decode)


BOTH = ("paper", "main")
TRANSFORM_BUGS: dict[str, TransformBug] = {
    "BN eps left out (sqrt(var))": TransformBug(BOTH, "bn", _scale_shift(eps=False)),
    "BN sqrt forgotten (gamma / (var + eps))": TransformBug(BOTH, "bn", _scale_shift(sqrt=False)),
    "BN mean sign wrong on 1 channel in 8": TransformBug(BOTH, "bn", _scale_shift(bad_mean_every=8)),
    "fold scale applied after the shift": TransformBug(BOTH, "bn", _scale_after_shift),
    "CSP tail BN halves swapped": TransformBug(("paper",), "csp", _csp_halves_swapped),
    "ImplicitM left off the conv bias": TransformBug(("paper",), "head", _implicit_head("m_on_bias")),
    "ImplicitA added after ImplicitM": TransformBug(("paper",), "head", _implicit_head("a_after")),
    "ImplicitA dropped": TransformBug(("paper",), "head", _implicit_head("a_dropped")),
    "shift_channels folded with the wrong sign": TransformBug(("main",), "shift", _main_shift_sign),
    "control_channels only on the BN weight": TransformBug(("main",), "control", _main_control_weight_only),
    "missing -0.5 grid offset": TransformBug(BOTH, "decode", _decode(offset=0.0)),
    "anchors of the next level": TransformBug(BOTH, "decode", _decode(anchor_roll=1)),
    "strides in reverse order": TransformBug(BOTH, "decode", _decode(reverse_strides=True)),
}


def expected_layer(bug: TransformBug, model) -> int | None:
    """The top-level layer a refusal of `bug` must name on `model` (None: the decode)."""
    if model.branch == "main":
        layers, types = list(model.module_list), [s.type for s in model.spec.sections]
    else:
        layers, types = list(model.model), [type(m).__name__ for m in model.model]

    def first(pred) -> int:
        return next(i for i, m in enumerate(layers) if pred(i, m))

    if bug.found_in == "bn":
        return first(lambda i, m: any(isinstance(b, nn.BatchNorm2d) for b in m.modules()))
    if bug.found_in == "csp":
        return first(lambda i, m: any(isinstance(b, L._CSPTail) for b in m.modules()))
    if bug.found_in == "head":
        return len(layers) - 1
    if bug.found_in == "shift":  # the folded shift passes x on, the 1x1 conv after it adds W a; in upstream's
        # heads a [control_channels] follows that conv, whose fold moves the conv's output too
        j = first(lambda i, m: types[i] == "shift_channels") + 1
        return j + 1 if types[j + 1] == "control_channels" else j
    if bug.found_in == "control":
        return first(lambda i, m: types[i] == "control_channels")
    return None
