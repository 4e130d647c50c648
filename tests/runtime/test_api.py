"""The top-level Python API: imports, compact results, refusing impossible class filters."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from helpers.runtime_data import horses
from helpers.runtime_models import model_path
from yolor_deploy.errors import InputError


def test_top_level_imports():
    import yolor_deploy
    from yolor_deploy import Detections, Detector, export_onnx, load_checkpoint, verify_file  # noqa: F401

    assert set(yolor_deploy.__all__) >= {"Detector", "export_onnx", "load_checkpoint"}


def test_result_repr_plot_and_save(tmp_path):
    from yolor_deploy import Detector

    det = Detector(model_path("static"))
    (res,) = det(horses())
    text = repr(res)
    assert text.startswith("<Detections 773x512: ") and len(text) < 200 and str(len(res)) in text
    assert len(res) > 0  # a plot of nothing would prove nothing
    drawn = res.plot(horses())
    assert drawn.shape == horses().shape
    changed = (drawn != horses()).any(-1)
    for x1, y1, x2, y2 in np.round(res.xyxy).astype(int):  # every box is drawn where it is
        assert changed[max(y1, 0):y2 + 1, max(x1, 0):x2 + 1].any()
    out = res.save(tmp_path / "a.png", horses())
    assert out.stat().st_size > 1000
    assert res.save(tmp_path / "b.png").read_bytes() == out.read_bytes()  # the result keeps its image
    bare = pickle.loads(pickle.dumps(res))  # pixels are not pickled; the path is
    bare.path = None
    with pytest.raises(InputError, match="pass the image"):
        bare.plot()


def test_classes_out_of_range_are_refused():
    from yolor_deploy import Detector

    with pytest.raises(InputError, match=r"classes \[7\]: the model has 3 classes \(0..2: circle, square, triangle\)"):
        Detector(model_path("static"), classes=[0, 7])
