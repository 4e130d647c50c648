"""The model's own fp32 sensitivity, measured instead of assumed.

fp32 is not exact and its last bits depend on the kernels (oneDNN AVX2 / AVX-512 / AMX, ONNX Runtime's
MLAS, OpenVINO), the thread count and the order of additions. A well-conditioned network turns that
into ~1e-5 relative noise on its outputs; a chaotic one (random or saturated weights) amplifies it to
pixels. So, per input, the reference is a float64 PyTorch forward of the model *as loaded*, and the
noise is measured by running the *same* function (the same untouched network: never a folded or
rewritten copy, which is what an export is made from and so could carry the very bug being looked
for) in several equivalent fp32 ways and comparing each with it:

- ``fp32``: the model as loaded, at the current thread count;
- ``fp32 1 thread``: another accumulation order;
- ``fp32 channels_last``: NHWC memory layout (other convolution kernels);
- ``fp32 no oneDNN``: PyTorch's native convolution kernels instead of oneDNN's (another backend);
- ``fp32 input +-ulp``: the input moved by a few ulps (fp32 rounding at the first layer);
- ``fp32 weights +-ulp``: every weight moved by one ulp (fp32 rounding of the weights, which a fold
  or a file format re-rounds).

Every correct export is one more sample of that same noise; an export bug is not.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

VARIANTS = ("fp32", "fp32 1 thread", "fp32 channels_last", "fp32 no oneDNN", "fp32 input +-ulp",
            "fp32 weights +-ulp")


@dataclass
class Reference:
    """PyTorch outputs for one input x: ndarray[B, 3, H, W] float32."""

    x: np.ndarray
    fp64: np.ndarray  # [B, N, 5+nc] float64: the "exact" value
    fp32: dict[str, np.ndarray] = field(default_factory=dict)  # VARIANTS -> [B, N, 5+nc] float32
    inverted_fp32: np.ndarray | None = None  # the model on 1 - x: does the output depend on the input?
    fp64_ulp: np.ndarray | None = None  # float64 forward of x moved by 2 float64 ulps: float64's own noise

    @property
    def plain(self) -> np.ndarray:
        """The plain fp32 PyTorch output (what `max abs / rel vs fp32` and detection checks compare with)."""
        return self.fp32["fp32"]


def perturb_ulps(x: np.ndarray, ulps: int = 2, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """x with every element moved by -ulps..ulps units in the last place of `dtype`."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(-ulps, ulps + 1, size=x.shape)
    y = x.astype(dtype).copy()
    for _ in range(ulps):
        y = np.where(steps > 0, np.nextafter(y, dtype(np.inf)), y)
        y = np.where(steps < 0, np.nextafter(y, dtype(-np.inf)), y)
        steps = steps - np.sign(steps)
    return y.astype(dtype)


def _run(model: Callable, x: np.ndarray, dtype=torch.float32) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x)).to(dtype)).numpy()


def _run_channels_last(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    model.to(memory_format=torch.channels_last)
    try:
        with torch.no_grad():
            xt = torch.from_numpy(np.ascontiguousarray(x)).contiguous(memory_format=torch.channels_last)
            return model(xt).numpy()
    finally:
        model.to(memory_format=torch.contiguous_format)


def _run_native(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """The model with oneDNN (mkldnn) off: PyTorch's own convolution kernels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "TF32 acceleration on top of oneDNN ..." on flag changes
        with torch.backends.mkldnn.flags(enabled=False):
            return _run(model, x)


@torch.no_grad()
def perturb_weights(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A copy of `model` with every floating-point parameter and buffer moved by -1, 0 or +1 ulp."""
    m = _clone(model)
    g = torch.Generator().manual_seed(seed)
    for t in [*m.parameters(), *m.buffers()]:
        if t.is_floating_point() and t.numel():
            step = torch.randint(-1, 2, t.shape, generator=g)
            up = torch.nextafter(t, torch.full_like(t, float("inf")))
            down = torch.nextafter(t, torch.full_like(t, float("-inf")))
            t.copy_(torch.where(step > 0, up, torch.where(step < 0, down, t)))
    return m


class ReferenceModels:
    """The float64 and fp32 copies of one untouched model, built once for all inputs."""

    def __init__(self, model: torch.nn.Module):
        self.m32 = model.float().eval()
        self.m64 = _clone(self.m32).double()
        self.m32_ulp = perturb_weights(self.m32)

    def reference(self, x: np.ndarray) -> Reference:
        ref = Reference(x, _run(self.m64, x, torch.float64))
        ref.fp64_ulp = _run(self.m64, perturb_ulps(x, dtype=np.float64), torch.float64)
        ref.fp32["fp32"] = _run(self.m32, x)
        before = torch.get_num_threads()
        try:
            torch.set_num_threads(1 if before != 1 else 2)
            ref.fp32["fp32 1 thread"] = _run(self.m32, x)
        finally:
            torch.set_num_threads(before)
        ref.fp32["fp32 channels_last"] = _run_channels_last(self.m32, x)
        ref.fp32["fp32 no oneDNN"] = _run_native(self.m32, x)
        ref.fp32["fp32 input +-ulp"] = _run(self.m32, perturb_ulps(x))
        ref.fp32["fp32 weights +-ulp"] = _run(self.m32_ulp, x)
        ref.inverted_fp32 = _run(self.m32, (1.0 - x).astype(np.float32))
        return ref


def _clone(m: torch.nn.Module) -> torch.nn.Module:
    clone = getattr(m, "clone", None)
    if callable(clone):
        return clone()
    import copy

    return copy.deepcopy(m)
