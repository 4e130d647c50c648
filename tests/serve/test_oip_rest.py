"""The Open Inference Protocol over REST, driven by the real `tritonclient.http` against a real `serve` process on
the trained model: raw tensors give the model's own outputs, image bytes give the local Detector's detections
(JSON and binary tensors both), and bad requests get the protocol's errors while the server keeps serving."""
from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

tritonclient_http = pytest.importorskip("tritonclient.http")
from google.protobuf import json_format  # noqa: E402
from tritonclient.grpc import model_config_pb2  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from helpers.serve_server import IMGSZ, Server, metric, metrics, trained_onnx  # noqa: E402
from yolor_deploy.assets import val_images  # noqa: E402
from yolor_deploy.runtime import Detector, read_image  # noqa: E402

IMAGES = sorted(val_images().glob("*.jpg"))[:4]


@pytest.fixture(scope="module")
def server():
    s = Server(trained_onnx(), "--max-batch", "8", "--max-wait-ms", "5", "--max-images", "4")
    yield s
    assert s.stop() == 0, s.stderr


@pytest.fixture(scope="module")
def client(server):
    return tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"))


@pytest.fixture(scope="module")
def local():
    return Detector(trained_onnx(), batch_size=8)


def _name() -> str:
    return trained_onnx().stem


def test_probes_metadata_and_config(client, local):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(_name()) and client.is_model_ready(_name(), "1")
    assert not client.is_model_ready("nope")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata(_name())
    assert meta["name"] == _name() and meta["versions"] == ["1"]
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        ("images", "FP32", [-1, 3, -1, -1]), ("image_bytes", "BYTES", [-1])]
    assert [o["name"] for o in meta["outputs"]] == ["output", "num_dets", "boxes", "scores", "classes"]
    assert "image_bytes" in meta["parameters"]["usage"] and meta["parameters"]["letterbox"]["pad_value"] == 114
    config = client.get_model_config(_name())
    proto = json_format.ParseDict(config, model_config_pb2.ModelConfig())
    assert proto.max_batch_size == 8 and list(proto.input[0].dims) == [3, -1, -1]
    assert json.loads(proto.parameters["yolor_metadata"].string_value)["names"] == list(local.names)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_raw_tensor_gives_the_models_own_outputs(client, local, binary):
    image = read_image(IMAGES[0])
    batch = local.preprocess([image, np.ascontiguousarray(image[:, ::-1])])[0]
    assert batch.tensor.shape[0] == 2
    inp = tritonclient_http.InferInput("images", list(batch.tensor.shape), "FP32")
    inp.set_data_from_numpy(batch.tensor, binary_data=binary)
    out = tritonclient_http.InferRequestedOutput("output", binary_data=binary)
    result = client.infer(_name(), [inp], outputs=[out])
    got = result.as_numpy("output")
    want = local.backend(batch.tensor)[0]
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    dets = local.postprocess([got], batch)
    for d, w in zip(dets, local.postprocess([want], batch)):
        np.testing.assert_allclose(d.xyxy, w.xyxy, atol=1e-3)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_image_bytes_give_the_local_detectors_detections(client, local, binary):
    blobs = np.array([p.read_bytes() for p in IMAGES], dtype=np.object_)
    inp = tritonclient_http.InferInput("image_bytes", [len(blobs)], "BYTES")
    inp.set_data_from_numpy(blobs, binary_data=True)
    outs = [tritonclient_http.InferRequestedOutput(n, binary_data=binary)
            for n in ("num_dets", "boxes", "scores", "classes")]
    result = client.infer(_name(), [inp], outputs=outs, parameters={"conf": 0.3, "max_det": 50})
    num, boxes = result.as_numpy("num_dets"), result.as_numpy("boxes")
    scores, classes = result.as_numpy("scores"), result.as_numpy("classes")
    assert num.dtype == np.int32 and classes.dtype == np.int32 and boxes.dtype == np.float32
    want = Detector(trained_onnx(), conf_thres=0.3, max_det=50)([str(p) for p in IMAGES])
    assert num.reshape(-1).tolist() == [len(d.scores) for d in want] and sum(num.reshape(-1)) > 0
    for i, d in enumerate(want):
        n = len(d.scores)
        np.testing.assert_allclose(boxes[i, :n], d.xyxy, atol=1e-3)
        np.testing.assert_allclose(scores[i, :n], d.scores, atol=1e-6)
        assert classes[i, :n].tolist() == d.classes.tolist()
        assert not boxes[i, n:].any()


def _refusal(fn) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        fn()
    return info.value


def test_bad_requests_get_the_protocols_errors_and_the_server_keeps_serving(server, client, local):
    before = metrics(server.url)
    x = np.zeros((1, 3, IMGSZ, IMGSZ), np.float32)

    def raw(name="images", array=x, dtype="FP32", model=""):
        inp = tritonclient_http.InferInput(name, list(array.shape), dtype)
        inp.set_data_from_numpy(array)
        return client.infer(model or _name(), [inp])

    e = _refusal(lambda: raw(model="nope"))
    assert e.status() == "404" and "unknown" in e.message()
    e = _refusal(lambda: raw(array=x.astype(np.float64), dtype="FP64"))
    assert e.status() == "400" and "FP64" in e.message() and "expected FP32" in e.message()
    e = _refusal(lambda: raw(array=np.zeros((1, 4, IMGSZ, IMGSZ), np.float32)))
    assert e.status() == "400" and "shape [1, 4, 256, 256]" in e.message()
    e = _refusal(lambda: raw(array=np.zeros((1, 3, 100, IMGSZ), np.float32)))
    assert e.status() == "400" and "stride" in e.message()
    e = _refusal(lambda: raw(name="pixels"))
    assert e.status() == "400" and "'images'" in e.message()
    e = _refusal(lambda: raw(array=np.zeros((5, 3, 64, 64), np.float32)))
    assert e.status() == "413"
    bad = httpx.post(f"{server.url}/v2/models/{_name()}/infer", content=b'{"inputs": [{"name": "images"}]}')
    assert bad.status_code == 400 and set(bad.json()) == {"error"}
    short = httpx.post(f"{server.url}/v2/models/{_name()}/infer", headers={"Inference-Header-Content-Length": "9"},
                       content=b'{"inputs":[{"name":"images","datatype":"FP32","shape":[1],'
                               b'"parameters":{"binary_data_size":4}}]}')
    assert short.status_code == 400
    blob = np.array([b"not an image"], dtype=np.object_)
    inp = tritonclient_http.InferInput("image_bytes", [1], "BYTES")
    inp.set_data_from_numpy(blob)
    e = _refusal(lambda: client.infer(_name(), [inp]))
    assert e.status() == "400" and "image_bytes" in e.message()
    after = metrics(server.url)
    assert metric(after, "yolor_serve_errors_total", kind="unknown_model") \
        - metric(before, "yolor_serve_errors_total", kind="unknown_model") == 1
    assert metric(after, "yolor_serve_errors_total", kind="bad_request") \
        - metric(before, "yolor_serve_errors_total", kind="bad_request") >= 6
    assert client.infer(_name(), [_ok(x)]).as_numpy("output").shape[0] == 1


def _ok(x):
    inp = tritonclient_http.InferInput("images", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return inp


def test_raw_batches_on_a_fixed_batch_model_are_chunked_padded_and_cut():
    from yolor_deploy.serve.oip_raw import run_raw

    static = Detector(trained_onnx(dynamic=False))
    assert static.backend.input_shape[0] == 1
    x = static.preprocess([read_image(p) for p in IMAGES[:3]])
    tensor = np.concatenate([b.tensor for b in x])
    calls: list[int] = []
    got = run_raw(static, tensor, calls.append)
    assert calls == [1, 1, 1] and got[0].shape[0] == 3
    for i in range(3):
        np.testing.assert_array_equal(got[0][i:i + 1], static.backend(tensor[i:i + 1])[0])
