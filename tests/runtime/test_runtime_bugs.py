"""The runtime's pre- and post-processing against an independent reference of upstream detect.py
(tests/helpers/reference_pipeline.py, which shares no code with the runtime), on real images cut so
that every step matters; and every catalogued runtime bug, injected through the public API, is caught."""
from __future__ import annotations

import pytest

from helpers.reference_pipeline import ReferenceDetector, cut_images
from helpers.runtime_bugs import RUNTIME_BUGS, compare
from helpers.upstream_detect import CKPT, images
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.export import export_onnx
from yolor_deploy.runtime import Detector

BOX_TOL, SCORE_TOL = 1e-3, 1e-6  # px, probability: both sides run the same ONNX model on the same tensor


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runtime-bugs")
    model = load_checkpoint(CKPT)
    paths = {}
    for kind, kw in {"static": {}, "dynamic": {"dynamic": True}}.items():
        paths[kind] = folder / f"shapes-{kind}.onnx"
        export_onnx(model, paths[kind], imgsz=(320, 320), verify=False, simplify=False, **kw)
    imgs = cut_images(images())
    refs = {kind: [ReferenceDetector(p, (320, 320), auto=kind == "dynamic")(im) for im in imgs]
            for kind, p in paths.items()}
    return paths, imgs, refs


def _run(paths, imgs, kind):
    return Detector(paths[kind], imgsz=320)(imgs)


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_runtime_matches_the_independent_reference(setup, kind):
    paths, imgs, refs = setup
    shapes = {im.shape[:2] for im in imgs}
    assert any(h > w for h, w in shapes) and any(w > h for h, w in shapes)  # both orientations
    bad, box, score = compare(_run(paths, imgs, kind), refs[kind])
    n = sum(len(r) for r in refs[kind])
    clipped = sum(int(((r[:, [0, 1]] == 0) | (r[:, [2]] == im.shape[1]) | (r[:, [3]] == im.shape[0])).any(1).sum())
                  for r, im in zip(refs[kind], imgs))
    print(f"{kind}: {n} detections, {clipped} touching the border; box diff {box:.2g} px, score diff {score:.2g}")
    assert n >= 40 and clipped >= 3  # the images exercise clipping
    assert bad == 0 and box <= BOX_TOL and score <= SCORE_TOL


@pytest.mark.parametrize("bug", list(RUNTIME_BUGS))
def test_injected_runtime_bug_is_caught(setup, bug, monkeypatch):
    paths, imgs, refs = setup
    RUNTIME_BUGS[bug](monkeypatch)
    caught = []
    for kind in ("static", "dynamic"):
        bad, box, score = compare(_run(paths, imgs, kind), refs[kind])
        print(f"{bug} ({kind}): {bad} detections differ, box diff {box:.3g} px, score diff {score:.3g}")
        caught.append(bad > 0 or box > 100 * BOX_TOL or score > 100 * SCORE_TOL)
    assert all(caught), f"{bug} not caught: {caught}"
