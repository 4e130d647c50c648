"""The Open Inference Protocol over gRPC (`serve --grpc-port 0`), driven by the real `tritonclient.grpc` against a
real `serve` process on the trained model: raw tensors give the model's own outputs, image bytes the local
Detector's detections, and bad requests the matching gRPC status while the server keeps serving."""
from __future__ import annotations

import json

import numpy as np
import pytest

tritonclient_grpc = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

from helpers.serve_server import IMGSZ, Server, metric, metrics, trained_onnx  # noqa: E402
from yolor_deploy.assets import val_images  # noqa: E402
from yolor_deploy.runtime import Detector, read_image  # noqa: E402

IMAGES = sorted(val_images().glob("*.jpg"))[4:8]


@pytest.fixture(scope="module")
def server():
    s = Server(trained_onnx(), "--grpc-port", "0", "--max-batch", "8", "--max-images", "4")
    yield s
    assert s.stop() == 0, s.stderr


@pytest.fixture(scope="module")
def client(server):
    line = next(line for line in server.lines if " at grpc://" in line)
    return tritonclient_grpc.InferenceServerClient(line.split(" at grpc://", 1)[1].split()[0])


def _name() -> str:
    return trained_onnx().stem


def test_probes_metadata_and_config(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(_name()) and not client.is_model_ready("nope")
    assert client.get_server_metadata().name == "yolor-deploy"
    meta = client.get_model_metadata(_name(), as_json=True)
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [("images", "FP32"), ("image_bytes", "BYTES")]
    assert [o["name"] for o in meta["outputs"]] == ["output", "num_dets", "boxes", "scores", "classes"]
    config = client.get_model_config(_name()).config
    assert config.max_batch_size == 8 and [d for d in config.input[0].dims] == [3, -1, -1]
    assert json.loads(config.parameters["yolor_metadata"].string_value)["names"] == ["circle", "square", "triangle"]


def test_raw_tensor_gives_the_models_own_outputs(client):
    local = Detector(trained_onnx(), batch_size=8)
    image = read_image(IMAGES[0])
    batch = local.preprocess([image, np.ascontiguousarray(image[::-1])])[0]
    inp = tritonclient_grpc.InferInput("images", list(batch.tensor.shape), "FP32")
    inp.set_data_from_numpy(batch.tensor)
    got = client.infer(_name(), [inp]).as_numpy("output")
    np.testing.assert_allclose(got, local.backend(batch.tensor)[0], rtol=1e-5, atol=1e-4)


def test_image_bytes_give_the_local_detectors_detections(client):
    blobs = np.array([p.read_bytes() for p in IMAGES], dtype=np.object_)
    inp = tritonclient_grpc.InferInput("image_bytes", [len(blobs)], "BYTES")
    inp.set_data_from_numpy(blobs)
    result = client.infer(_name(), [inp], parameters={"conf": 0.4, "iou": 0.5})
    want = Detector(trained_onnx(), conf_thres=0.4, iou_thres=0.5)([str(p) for p in IMAGES])
    num = result.as_numpy("num_dets").reshape(-1)
    assert num.tolist() == [len(d.scores) for d in want] and num.sum() > 0
    for i, d in enumerate(want):
        n = len(d.scores)
        np.testing.assert_allclose(result.as_numpy("boxes")[i, :n], d.xyxy, atol=1e-3)
        np.testing.assert_allclose(result.as_numpy("scores")[i, :n], d.scores, atol=1e-6)
        assert result.as_numpy("classes")[i, :n].tolist() == d.classes.tolist()


def test_bad_requests_get_grpc_statuses_and_the_server_keeps_serving(server, client):
    before = metrics(server.url)
    x = np.zeros((1, 3, IMGSZ, IMGSZ), np.float32)

    def refused(name="images", array=x, dtype="FP32", model="") -> InferenceServerException:
        inp = tritonclient_grpc.InferInput(name, list(array.shape), dtype)
        inp.set_data_from_numpy(array)
        with pytest.raises(InferenceServerException) as info:
            client.infer(model or _name(), [inp])
        return info.value

    e = refused(model="nope")
    assert e.status() == "StatusCode.NOT_FOUND" and "unknown" in e.message()
    e = refused(array=x.astype(np.float64), dtype="FP64")
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "expected FP32" in e.message()
    e = refused(array=np.zeros((1, 3, IMGSZ, 100), np.float32))
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "stride" in e.message()
    e = refused(name="pixels")
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "'images'" in e.message()
    e = refused(name="image_bytes", array=np.array([b"junk"], dtype=np.object_), dtype="BYTES")
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "image_bytes" in e.message()
    after = metrics(server.url)
    assert metric(after, "yolor_serve_errors_total", kind="unknown_model") \
        - metric(before, "yolor_serve_errors_total", kind="unknown_model") == 1
    assert metric(after, "yolor_serve_errors_total", kind="bad_request") \
        - metric(before, "yolor_serve_errors_total", kind="bad_request") >= 3
    inp = tritonclient_grpc.InferInput("images", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    assert client.infer(_name(), [inp]).as_numpy("output").shape[0] == 1


def test_a_grpc_port_in_use_is_one_line_and_exit_2():
    import os
    import socket
    import subprocess
    import sys

    from helpers.serve_server import SRC

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = dict(os.environ, PYTHONPATH=str(SRC))
        r = subprocess.run([sys.executable, "-m", "yolor_deploy.cli.main", "serve", str(trained_onnx()), "--port", "0",
                            "--grpc-port", str(port)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: --grpc-port {port}: cannot listen on 127.0.0.1 (Address already in use)"], r.stderr
