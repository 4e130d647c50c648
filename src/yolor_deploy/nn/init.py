"""Well-conditioned seeded random weights: a randomly built YOLOR network whose output depends on its input.

A freshly built network (default conv init, BatchNorm running stats mean 0 / var 1) collapses or saturates
through its depth: its detections are the same for any image, so an export of it proves nothing. This
module re-draws what training would have set and calibrates the rest on a small batch, in this order:

1. every BatchNorm weight ~U(0.5, 1), bias ~N(0, 0.1);
2. implicit layers around the head: additive ones ~N(0, 0.2), multiplicative ones ~N(1, 0.2);
3. every head-conv bias += N(0, 0.5) (on top of upstream's objectness and class priors);
4. one eval forward pass over a small batch (two bundled images, six uniform-noise images, 128x128): each
   BatchNorm's running statistics become those of its own input, set just before it runs (the layers before
   it already calibrated), the variance floored at a tenth of the layer's median;
5. each head conv's weights scaled so that its output spread (bias excluded) on that batch is `HEAD_SPREAD`.

Everything random comes from one `torch.Generator` seeded with `seed`: the same seed gives the same weights.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..assets import sample_image, val_images
from .darknet_layers import Implicit
from .model import YOLORModel
from .paper_layers import ImplicitA, ImplicitM

CALIBRATION_SIZE = 128  # px, square; a multiple of every variant's largest stride (64)
CALIBRATION_VAL_IMAGES = 1  # bundled validation images in the batch, besides the sample image
CALIBRATION_NOISE_IMAGES = 6  # uniform-noise images in the batch
HEAD_SPREAD = 1.5  # std of each head conv's output (logits) before its bias
IMPLICIT_STD = 0.2
HEAD_BIAS_STD = 0.5
VAR_FLOOR = 0.1  # running_var >= VAR_FLOOR * median(running_var) of the same layer
PAD_VALUE = 114 / 255  # letterbox border, as upstream


def init_well_conditioned(model: YOLORModel, seed: int, images: torch.Tensor | None = None) -> YOLORModel:
    """Re-draw `model`'s BatchNorm affines, implicit vectors and head biases, calibrate its BatchNorm
    statistics and scale its head on `images` (Tensor[B, 3, H, W], RGB 0..1; default `calibration_batch(gen)`).
    In place; returns `model` in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    convs = model.head_convs()
    with torch.no_grad():
        _draw_bn_affine(model, gen)
        _draw_implicit(model, gen)
        for conv in convs:
            conv.bias.add_(torch.randn(conv.bias.shape, generator=gen) * HEAD_BIAS_STD)
        spreads = _calibrate_bn(model, calibration_batch(gen) if images is None else images, convs)
        for conv, spread in zip(convs, spreads):
            conv.weight.mul_(HEAD_SPREAD / max(spread, 1e-6))
    return model.eval()


def _draw_bn_affine(model: nn.Module, gen: torch.Generator) -> None:
    for bn in _batchnorms(model):
        bn.weight.copy_(0.5 + 0.5 * torch.rand(bn.weight.shape, generator=gen))
        bn.bias.copy_(0.1 * torch.randn(bn.bias.shape, generator=gen))


def _draw_implicit(model: nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        mean = _implicit_mean(m)
        if mean is not None:
            m.implicit.copy_(mean + IMPLICIT_STD * torch.randn(m.implicit.shape, generator=gen))


def _implicit_mean(m: nn.Module) -> float | None:
    """The neutral value of an implicit layer (0 added, 1 multiplied); None for other modules."""
    if isinstance(m, ImplicitA):
        return 0.0
    if isinstance(m, ImplicitM):
        return 1.0
    if isinstance(m, Implicit):
        return m.mean
    return None


def _batchnorms(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def _calibrate_bn(model: YOLORModel, images: torch.Tensor, convs: list[nn.Conv2d]) -> list[float]:
    """Set every BatchNorm's running stats to those of its own input on `images`, layer by layer in one eval
    forward (a pre-hook fills each BN just before it runs, so later layers see calibrated earlier ones);
    returns each head conv's output std (bias excluded) seen in that pass."""
    spreads: list[float] = [0.0] * len(convs)

    def spread(i: int):
        def record(conv: nn.Conv2d, inputs, out: torch.Tensor) -> None:
            spreads[i] = float((out - conv.bias.view(1, -1, 1, 1)).std())
        return record

    handles = [bn.register_forward_pre_hook(_set_running_stats) for bn in _batchnorms(model)]
    handles += [conv.register_forward_hook(spread(i)) for i, conv in enumerate(convs)]
    model.eval()
    try:
        model.head_maps(images)
    finally:
        for h in handles:
            h.remove()
    return spreads


def _set_running_stats(bn: nn.BatchNorm2d, inputs: tuple[torch.Tensor]) -> None:
    """Pre-hook: running stats := the per-channel mean and (biased) variance of the input, the variance
    floored at `VAR_FLOOR` times its median so that a nearly constant channel is not blown up."""
    x = inputs[0]
    var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
    bn.running_mean.copy_(mean)
    bn.running_var.copy_(var.clamp(min=VAR_FLOOR * float(var.median())))
    bn.num_batches_tracked.zero_()


def calibration_batch(gen: torch.Generator, size: int = CALIBRATION_SIZE, n_val: int = CALIBRATION_VAL_IMAGES,
                      n_noise: int = CALIBRATION_NOISE_IMAGES) -> torch.Tensor:
    """Tensor[1 + n_val + n_noise, 3, size, size] (RGB, 0..1, NCHW): the bundled sample image and the first
    `n_val` bundled validation images letterboxed to `size`, then `n_noise` uniform-noise images from `gen`.
    Noise has far more high-frequency energy than real images: calibrated on images alone, a network's
    activations on noise grow ~2x per stage (and the verifier feeds noise too). Six noise images, not two:
    at 128 px an SPP's max pools see the whole 4x4 map, one sample per image and channel, and statistics
    from too few of them blow fresh noise up through the neck."""
    paths = [sample_image(), *sorted(val_images().glob("*.jpg"))[:n_val]]
    real = torch.from_numpy(np.stack([letterbox_rgb(p, size) for p in paths]))
    return torch.cat([real, torch.rand((n_noise, 3, size, size), generator=gen)])


def letterbox_rgb(path, size: int) -> np.ndarray:
    """ndarray[3, size, size] float32: the image at `path` scaled to fit, centred on a grey border."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"{path}: cannot read image")
    h, w = img.shape[:2]
    r = size / max(h, w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = np.full((size, size, 3), PAD_VALUE, np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = img[:, :, ::-1] / np.float32(255)
    return np.ascontiguousarray(out.transpose(2, 0, 1))
