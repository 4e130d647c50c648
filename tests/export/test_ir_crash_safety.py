"""An IR path always works after a crash (issue 20): `install_ir` killed at each of its steps (before, between
and after the .bin and .xml renames, during the cleanup) leaves a path that loads the old model or the new one,
never a refused mixed pair (a mixed pair loads the intact `stem.prev.*` with one warning). A `.bin` that is a
symlink out of the model's folder is refused. Real small IRs: the tiny test models converted by OpenVINO."""
from __future__ import annotations

import os
import warnings

import numpy as np
import onnx
import pytest

from helpers.runtime_models import model_path
from yolor_deploy.errors import InputError
from yolor_deploy.formats.onnx_meta import get_metadata
from yolor_deploy.formats.openvino_ir import convert_to_ir, install_ir, ir_workdir, prev_paths
from yolor_deploy.runtime import Detector

IMAGE = np.random.default_rng(0).integers(0, 255, (200, 240, 3), dtype=np.uint8)


class Killed(BaseException):
    """The writer's process dying at this step."""


def install(onnx_path, out, kill_at: int | None = None, monkeypatch=None) -> None:
    """Convert `onnx_path` and install it at `out`; with `kill_at`, the k-th file operation of install_ir
    (link, replace, unlink) raises instead of running, as if the process died there."""
    proto = onnx.load(str(onnx_path))
    with ir_workdir(out) as work:
        xml = convert_to_ir(proto, get_metadata(proto), work)
        if kill_at is None:
            install_ir(xml, out)
            return
        count = [0]
        with monkeypatch.context() as m:
            for name in ("link", "replace", "unlink"):
                real = getattr(os, name)

                def step(*args, _real=real, **kwargs):
                    count[0] += 1
                    if count[0] > kill_at:
                        raise Killed
                    return _real(*args, **kwargs)

                m.setattr(os, name, step)
            try:
                install_ir(xml, out)
            except Killed:
                return
        raise AssertionError(f"install_ir finished in {count[0]} steps before step {kill_at}")


def run(xml):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        boxes = Detector(xml, conf_thres=0.001)(IMAGE)[0].xyxy
    return boxes, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def test_a_kill_at_any_step_leaves_a_working_path(tmp_path, monkeypatch):
    old_model, new_model = model_path("static", nc=3), model_path("static", nc=5)
    reference = tmp_path / "ref"
    reference.mkdir()
    install(old_model, reference / "old.onnx")
    install(new_model, reference / "new.onnx")
    old, _ = run(reference / "old.xml")
    new, _ = run(reference / "new.xml")
    assert not np.array_equal(old, new) or len(old) != len(new)
    steps, mixed_seen = 0, 0
    for kill_at in range(12):
        out = tmp_path / f"k{kill_at}" / "m.onnx"
        out.parent.mkdir()
        install(old_model, out)
        try:
            install(new_model, out, kill_at, monkeypatch)
        except AssertionError:  # install_ir has fewer steps: every kill point was tried
            steps = kill_at
            break
        got, warned = run(out.with_suffix(".xml"))
        if warned:
            mixed_seen += 1
            assert len(warned) == 1 and "loading the intact previous model m.prev.xml" in warned[0], warned
        assert (len(got) == len(old) and np.allclose(got, old)) or (len(got) == len(new) and np.allclose(got, new)), \
            f"killed at step {kill_at}: the path loads neither model"
        if warned:
            assert np.allclose(got, old)
    assert steps >= 4 and mixed_seen >= 1, (steps, mixed_seen)  # the mixed state was reached and survived


def test_the_next_install_after_a_crash_is_clean(tmp_path, monkeypatch):
    out = tmp_path / "m.onnx"
    install(model_path("static", nc=3), out)
    install(model_path("static", nc=5), out, kill_at=5, monkeypatch=monkeypatch)  # after the .bin rename
    assert run(out.with_suffix(".xml"))[1]
    install(model_path("static", nc=5), out)
    assert run(out.with_suffix(".xml"))[1] == [] and not prev_paths(out)[0].exists()


def test_a_mixed_pair_without_an_intact_previous_pair_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "m.onnx"
    install(model_path("static", nc=3), out)
    install(model_path("static", nc=5), out, kill_at=5, monkeypatch=monkeypatch)
    prev_paths(out)[1].write_bytes(b"damaged")
    with pytest.raises(InputError, match=r"m.xml: its weights file m.bin belongs to another model"):
        Detector(out.with_suffix(".xml"))


def test_a_bin_symlinked_out_of_the_model_folder_is_refused(tmp_path):
    outside, inside = tmp_path / "elsewhere", tmp_path / "models"
    outside.mkdir()
    inside.mkdir()
    install(model_path("static", nc=3), outside / "m.onnx")
    (inside / "m.xml").write_bytes((outside / "m.xml").read_bytes())
    (inside / "m.bin").symlink_to(outside / "m.bin")
    with pytest.raises(InputError, match=rf"{inside / 'm.bin'}: a symlink to {outside / 'm.bin'}, outside the model's "
                                         r"folder .*: refused"):
        Detector(inside / "m.xml")
    (inside / "m.bin").unlink()
    (inside / "w.bin").write_bytes((outside / "m.bin").read_bytes())
    (inside / "m.bin").symlink_to("w.bin")  # a link inside the folder is fine
    assert len(run(inside / "m.xml")[0]) >= 0
