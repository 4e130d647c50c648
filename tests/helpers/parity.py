"""Parity with upstream's reference arrays on any CPU: the upstream fp32 output (made on an AVX2 machine)
must lie within the verification rule's band around *our* float64 forward, the band measured from our
own fp32 variants on this machine (verify/noise.py). Exactness is checked where it is exact by
construction: float64 against upstream's float64 references."""
from __future__ import annotations

import numpy as np

from yolor_deploy.verify.noise import ReferenceModels
from yolor_deploy.verify.rule import check_groups, noise_stats


def reference_models(model) -> ReferenceModels:
    return ReferenceModels(model)


def assert_within_fp32_noise(models: ReferenceModels, x: np.ndarray, upstream: np.ndarray, what: str) -> float:
    """Assert `upstream` (fp32, [B, N, 5+nc]) is an fp32 sample of our model on x; returns the worst ratio."""
    ref = models.reference(x)
    assert upstream.shape == ref.fp64.shape, what
    checks = check_groups(upstream, ref.fp64, noise_stats(ref.fp64, list(ref.fp32.values())))
    bad = [f"{g.group} {g.stat} {g.onnx_err:.3g} > {g.tolerance:.3g}" for g in checks if not g.passed]
    assert not bad, f"{what}: upstream fp32 outside our fp32 noise band: {bad}"
    return max(g.ratio for g in checks)
