"""A remote Detector (`Detector(URL, model=NAME)`, `predict --url URL --model NAME`) against a real `serve` process
(HTTP and gRPC): letterbox and NMS here, the model call there, results equal to the local Detector's on the
bundled images; a wrong URL or model name is one line naming it."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")
pytest.importorskip("tritonclient.http")

from helpers.serve_server import Server, trained_onnx  # noqa: E402
from yolor_deploy.assets import sample_image, val_images  # noqa: E402
from yolor_deploy.cli.main import main  # noqa: E402
from yolor_deploy.errors import InputError  # noqa: E402
from yolor_deploy.runtime import Detector  # noqa: E402

IMAGES = [str(sample_image()), *map(str, sorted(val_images().glob("*.jpg")))]


@pytest.fixture(scope="module")
def server():
    s = Server(trained_onnx(), "--grpc-port", "0", "--max-batch", "8")
    yield s
    assert s.stop() == 0, s.stderr


@pytest.fixture(scope="module")
def urls(server) -> dict[str, str]:
    line = next(line for line in server.lines if " at grpc://" in line)
    return {"http": server.url, "grpc": "grpc://" + line.split(" at grpc://", 1)[1].split()[0]}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_remote_detector_equals_the_local_one(urls, protocol):
    local = Detector(trained_onnx(), conf_thres=0.2, batch_size=4)(IMAGES)
    det = Detector(urls[protocol], model=trained_onnx().stem, conf_thres=0.2, batch_size=4)
    assert det.names == ("circle", "square", "triangle") and det.imgsz == (256, 256) and det.auto
    remote = det(IMAGES)
    assert sum(len(d.scores) for d in local) > 20
    for a, b in zip(remote, local):
        assert a.classes.tolist() == b.classes.tolist() and a.image_shape == b.image_shape
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_predict_url_writes_what_local_predict_writes(urls, tmp_path):
    common = [*IMAGES[:6], "--save-json", "--no-save-img", "-q", "--conf-thres", "0.3"]
    assert main(["predict", str(trained_onnx()), *common, "--save-dir", str(tmp_path / "local")]) == 0
    assert main(["predict", "--url", urls["grpc"], "--model", trained_onnx().stem, *common,
                 "--save-dir", str(tmp_path / "remote")]) == 0
    local = json.loads((tmp_path / "local" / "predictions.json").read_text())
    remote = json.loads((tmp_path / "remote" / "predictions.json").read_text())
    assert len(local) == len(remote) > 0
    for a, b in zip(remote, local):
        assert (a["image_id"], a["category_id"]) == (b["image_id"], b["category_id"])
        np.testing.assert_allclose(a["bbox"], b["bbox"], atol=2e-3)


def test_wrong_model_or_server_is_one_line(urls, capsys):
    with pytest.raises(InputError, match="nope: cannot read the model's configuration"):
        Detector(urls["http"], model="nope")
    with pytest.raises(InputError, match="name the model"):
        Detector(urls["grpc"])
    with pytest.raises(InputError, match="expected http://HOST:PORT"):
        Detector("http://127.0.0.1:1/path", model="x")
    with pytest.raises(InputError, match="cannot read the model's configuration"):
        Detector("http://127.0.0.1:1", model="x")
    assert main(["predict", "--url", urls["http"], IMAGES[0]]) == 2
    assert "--url and --model go together" in capsys.readouterr().err


def test_a_model_with_nms_inside_runs_remotely_as_locally(tmp_path):
    import warnings

    import httpx

    from yolor_deploy.assets import trained_checkpoint
    from yolor_deploy.export import export_onnx

    model = tmp_path / "shapes-nms.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(trained_checkpoint(), model, imgsz=(256, 256), nms="onnx", verify=False)
    s = Server(model)
    try:
        meta = httpx.get(f"{s.url}/v2/models/shapes-nms").json()
        types = {o["name"]: o["datatype"] for o in meta["outputs"]}
        local_types = {o.name: o.type for o in Detector(model).backend.session.get_outputs()}
        assert types == {n: {"tensor(int64)": "INT64", "tensor(float)": "FP32"}[t] for n, t in local_types.items()}
        remote = Detector(s.url, model="shapes-nms")(IMAGES[:5])
        local = Detector(model)(IMAGES[:5])
        assert sum(len(d.scores) for d in local) > 5
        for a, b in zip(remote, local):
            assert a.classes.tolist() == b.classes.tolist()
            np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
    finally:
        assert s.stop() == 0, s.stderr
