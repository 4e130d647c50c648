"""Well-conditioned seeded init (`nn.init`): reproducible, and the network it gives sees its input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.fixtures import fixture_path
from yolor_deploy.nn.init import HEAD_SPREAD, calibration_batch, init_well_conditioned, letterbox_rgb
from yolor_deploy.nn.registry import create_model
from yolor_deploy.verify.rule import errors

# Small configs of both branches (width 0.25 / filters /8): built and calibrated in about a second.
CONFIGS = {"paper": "yolor-ssss-s2d-tiny.yaml", "main": "main-csp-tiny.cfg"}


def tiny(branch: str, seed: int = 0, well_conditioned: bool = True):
    return create_model(str(fixture_path(CONFIGS[branch])), seed=seed, well_conditioned=well_conditioned)


def inputs(size: int = 128) -> dict[str, torch.Tensor]:
    """A real photo (not in the calibration batch) and fresh uniform noise, as the export verifier feeds."""
    photo = torch.from_numpy(letterbox_rgb(fixture_path("horses.jpg"), size))[None]
    noise = torch.rand((1, 3, size, size), generator=torch.Generator().manual_seed(123))
    return {"photo": photo, "noise": noise}


def predict(model, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).double().numpy()


@pytest.mark.parametrize("branch", ["paper", "main"])
def test_same_seed_same_weights_other_seed_other_weights(branch):
    a, b, c = tiny(branch, seed=3), tiny(branch, seed=3), tiny(branch, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    bn_means = [k for k in sa if k.endswith("running_mean")]
    assert bn_means and all(not torch.equal(sa[k], sc[k]) for k in bn_means)


@pytest.fixture(scope="module", params=["paper", "main"])
def seeded(request):
    return tiny(request.param)


def test_output_depends_on_input(seeded):
    """x against 1 - x, in the verify rule's units (the verifier calls a model input-independent when every
    column group moves less than 1e-3): the largest move is far above that, and every group moves (objectness
    the least: upstream's prior keeps it near 0.001-0.01)."""
    for name, x in inputs().items():
        change = {g: float(e.max()) for g, e in errors(predict(seeded, 1 - x), predict(seeded, x)).items()}
        assert max(change.values()) > 0.5 and min(change.values()) > 2e-3, (name, change)


def test_scores_are_not_saturated(seeded):
    """At least a third of the objectness and class scores lie in (0.01, 0.99), on a photo and on noise."""
    model = seeded
    for name, x in inputs().items():
        scores = predict(model, x)[..., 4:]
        unsaturated = float(((scores > 0.01) & (scores < 0.99)).mean())
        assert unsaturated > 0.33, (name, unsaturated)


@pytest.mark.parametrize("branch", ["paper", "main"])
def test_head_spread_on_the_calibration_batch(branch):
    """Each head conv's output (bias excluded) has std HEAD_SPREAD on the batch it was calibrated on; the
    BatchNorm statistics are exactly those of that batch, so an eval forward reproduces the calibration."""
    model = tiny(branch, well_conditioned=False)
    images = calibration_batch(torch.Generator().manual_seed(7))
    init_well_conditioned(model, seed=7, images=images)
    spreads = []
    hooks = [conv.register_forward_hook(lambda m, i, o: spreads.append(float((o - m.bias.view(1, -1, 1, 1)).std())))
             for conv in model.head_convs()]
    predict(model, images)
    for h in hooks:
        h.remove()
    assert len(spreads) == len(model.strides)
    assert np.allclose(spreads, HEAD_SPREAD, rtol=1e-4), spreads


def test_calibration_batch_is_two_images_and_six_noise_images():
    batch = calibration_batch(torch.Generator().manual_seed(0))
    assert batch.shape == (8, 3, 128, 128) and batch.dtype == torch.float32
    assert 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0
    assert torch.equal(batch[:2], calibration_batch(torch.Generator().manual_seed(1))[:2])  # images: fixed


def test_without_init_the_network_ignores_its_input():
    """The problem it solves: the same tiny network with the default init gives the same output for x and
    1 - x (what made every full-size variant's export 'not checked')."""
    model = tiny("paper", well_conditioned=False)
    x = inputs()["noise"]
    change = {g: float(e.max()) for g, e in errors(predict(model, 1 - x), predict(model, x)).items()}
    assert max(change["obj"], change["cls"]) < 1e-3, change
