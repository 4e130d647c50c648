"""Export-time transforms judged on their own, in float64, against the untouched model.

An export is traced from a transformed copy of the checkpoint's network: BN and implicit layers folded
into convolutions (`nn.fold`), then the export forms of the decode (`export.rewrites`: no in-place slice
writes, grids from the runtime shape). Both are exact algebra: in float64 the transformed copy computes
the function of the network as loaded to ~1e-12 (measured: 4e-14 .. 3e-12 relative on the fixtures of
both branches). So each transform is a checked step of its own, before anything is traced: its float64
output on the verification inputs is compared with the untouched model's float64 output, in the units
of the verification rule (box errors relative to box size, probabilities absolute). A transform that
changes the function by more than the tolerance (TOLERANCE, or 10x float64's own measured noise on a
chaotic network) stops the export, naming the first top-level layer whose
output departs (or the decode, when every layer agrees).

Neither side shares code with the other beyond the layers themselves: the reference is the model as
loaded (its own eager decode), never a folded or rewritten copy.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..nn.model import YOLORModel
from .layer_diff import layer_container, layer_type, torch_layer_outputs
from .noise import Reference
from .rule import errors

# float64 agreement of exact algebra is ~1e-14 in rule units on real models; the smallest catalogued fold
# bug moves outputs by >= 1e-2 (err/tol >= 3e6 on the fixtures). Per layer: max |a - b| / max |b|.
TOLERANCE = 1e-8
LAYER_TOLERANCE = 1e-8
# A chaotic network (random weights at a size they were not calibrated for: yolor-p6 @640, logits in
# the thousands) amplifies float64's own rounding to ~1e-7 in rule units: its float64 noise is measured
# like fp32's, by the input moved by 2 float64 ulps (`Reference.fp64_ulp`), and the tolerance is
# max(TOLERANCE, NOISE_FACTOR x that noise).
NOISE_FACTOR = 10.0


@dataclass
class TransformCheck:
    """One transform's float64 agreement with the untouched model, over all verification inputs."""

    name: str  # "folds" | "rewrites"
    what: str  # what the transform did, e.g. "conv_bn 53, csp_bn 8, implicit 6"
    err: float  # the largest error (rule units) over inputs and column groups
    tolerance: float
    inputs: int
    departs: str = ""  # failures: the first layer whose output departs, e.g. "layer 12 (Conv)", or "the decode"
    reason: str = ""

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.err) and self.err <= self.tolerance)

    @property
    def ratio(self) -> float:
        return self.err / self.tolerance if self.tolerance > 0 else float("inf")

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "ratio": self.ratio}


def _largest_error(y: np.ndarray, ref64: np.ndarray) -> float:
    if y.shape != ref64.shape:
        return float("inf")
    return max((float(e.max()) for e in errors(y, ref64).values() if e.size), default=0.0)


def _parts(out) -> list[torch.Tensor]:
    if torch.is_tensor(out):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for t in out if torch.is_tensor(t)]
    return []


def first_departing_layer(reference: YOLORModel, transformed: YOLORModel, x: np.ndarray,
                          moved: frozenset[int] = frozenset()) -> tuple[str, float]:
    """(where, relative departure): the first top-level layer of `transformed` whose float64 output departs
    from `reference`'s (as loaded, in float64) by more than LAYER_TOLERANCE, skipping the layers in `moved`
    (a fold changes their own output on purpose); ("the decode", 0) when every layer agrees."""
    xt = torch.from_numpy(np.ascontiguousarray(x)).double()
    ref64 = reference.clone().double().eval()
    o_ref, _ = torch_layer_outputs(ref64, xt)
    o_new, _ = torch_layer_outputs(transformed, xt)
    for i, (a, b) in enumerate(zip(o_new, o_ref)):
        if i in moved or a is None or b is None:
            continue
        pa, pb = _parts(a), _parts(b)
        if len(pa) != len(pb) or any(u.shape != v.shape for u, v in zip(pa, pb)):
            return f"layer {i} ({layer_type(reference, i)}): output shape changed", float("inf")
        for u, v in zip(pa, pb):
            scale = float(v.abs().max()) if v.numel() else 0.0
            rel = float((u.double() - v).abs().max()) / max(scale, 1e-300) if v.numel() else 0.0
            if not rel <= LAYER_TOLERANCE:
                return f"layer {i} ({layer_type(reference, i)})", rel
    return f"the decode (all {len(layer_container(reference)[1])} layers agree)", 0.0


def check_transform(name: str, what: str, reference: YOLORModel, transformed: YOLORModel,
                    forward: Callable[[torch.Tensor], torch.Tensor],
                    refs: list[tuple[str, Reference]]) -> TransformCheck:
    """`forward` (the transformed float64 model's output [B, N, 5+nc] for a float64 input) against each
    reference's float64 output of the untouched model (`refs`, from `exported.references`)."""
    worst, worst_x, worst_label, tol = 0.0, None, "", TOLERANCE
    with torch.no_grad():
        for label, ref in refs:
            y = forward(torch.from_numpy(np.ascontiguousarray(ref.x)).double()).numpy()
            e = _largest_error(y, ref.fp64)
            if not e <= worst:
                worst, worst_x, worst_label = e, ref.x, label
            if ref.fp64_ulp is not None:
                tol = max(tol, NOISE_FACTOR * _largest_error(ref.fp64_ulp, ref.fp64))
    check = TransformCheck(name, what, worst, tol, len(refs))
    if not check.passed and worst_x is not None:
        with torch.no_grad():
            where, rel = first_departing_layer(reference, transformed, worst_x,
                                               frozenset(getattr(transformed, "fold_moved", ())))
        check.departs = where
        check.reason = (f"{where} departs from the checkpoint's network"
                        + (f" by {rel:.3g} relative" if rel else "")
                        + f" (float64, input {worst_label}; output error {worst:.3g} > {tol:.3g})")
    return check
