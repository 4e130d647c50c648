"""A real `yolor-deploy serve` process on the trained model (dynamic batch): results equal `predict`'s, bad input
is refused with the right status and one line, the server keeps answering, and /metrics counts it all."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest

from helpers.serve_checks import assert_same, check_refusals, images, post
from helpers.serve_server import IMGSZ, Server, metric, metrics, trained_onnx
from yolor_deploy.assets import sample_image, trained_checkpoint
from yolor_deploy.cli.main import main
from yolor_deploy.runtime import Detector

MAX_BODY_MB = 0.25  # 262,144 bytes: the test images are 5-70 kB
MAX_PIXELS = 1_000_000


@pytest.fixture(scope="module")
def server():
    s = Server(trained_onnx(), "--max-batch", "8", "--max-wait-ms", "30", "--max-body-mb", str(MAX_BODY_MB),
               "--max-pixels", str(MAX_PIXELS), "--max-images", "4")
    yield s
    assert s.stop() == 0, s.stderr


def test_probes_and_model_info(server):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/ready").json() == {"ready": True}
    info = httpx.get(f"{server.url}/v1/model").json()
    assert info["names"] == ["circle", "square", "triangle"] and info["input_size"] == [IMGSZ, IMGSZ]
    assert info["precision"] == "fp32" and info["nms"] == {"mode": "none", "conf_thres": 0.25, "iou_thres": 0.45,
                                                          "max_det": 300}
    assert len(info["source_sha256"]) == 64 and info["model_version"] and info["server_version"]
    assert info["batching"]["max_batch"] == 8 and info["limits"]["max_pixels"] == MAX_PIXELS
    assert "/v1/detect" in httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert httpx.get(f"{server.url}/docs").status_code == 200
    started = [line for line in server.lines if line.startswith("serving ")]
    assert len(started) == 1 and "batching up to 8 images per model call" in started[0], server.stderr


def test_concurrent_requests_are_batched_and_equal_predict(server):
    det = Detector(trained_onnx())  # what `predict MODEL` runs: batch 1, the same defaults
    paths = images()
    before = metrics(server.url)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda p: post(server.url, p), paths))
    after = metrics(server.url)
    assert [r.status_code for r in responses] == [200] * len(paths)
    bodies = [r.json() for r in responses]
    for p, body in zip(paths, bodies):
        im = cv2.imread(str(p))
        assert_same(body, det(im)[0], im.shape)
    assert sum(len(b["detections"]) for b in bodies) > 30
    assert max(b["batch"] for b in bodies) > 1  # requests shared model calls
    calls = metric(after, "yolor_serve_batch_size_count") - metric(before, "yolor_serve_batch_size_count")
    images_run = metric(after, "yolor_serve_batch_size_sum") - metric(before, "yolor_serve_batch_size_sum")
    assert images_run == len(paths) and calls < len(paths)
    assert set(bodies[0]["time_ms"]) == {"decode", "queue", "pre", "infer", "post", "total"}


def test_several_images_in_one_request_and_predicts_json(server, tmp_path):
    paths = [sample_image(), *images()[:2]]
    r = post(server.url, paths)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    det = Detector(trained_onnx())
    for p, body in zip(paths, results):
        im = cv2.imread(str(p))
        assert_same(body, det(im)[0], im.shape)
    # and against `yolor-deploy predict --save-json` itself (COCO xywh, rounded to 3 decimals)
    assert main(["predict", str(trained_onnx()), str(sample_image()), "--save-json", "--no-save-img", "-q",
                 "--save-dir", str(tmp_path)]) == 0
    coco = json.loads((tmp_path / "predictions.json").read_text())
    served = [(d["class_id"], [d["box"][0], d["box"][1], d["box"][2] - d["box"][0], d["box"][3] - d["box"][1]])
              for d in results[0]["detections"]]
    assert len(coco) == len(served) > 5
    for c, (cls, box) in zip(coco, served):
        assert c["category_id"] == cls and np.allclose(c["bbox"], box, atol=2e-3)


def test_per_request_settings_in_one_batch_each_equal_their_own_predict(server):
    settings = [{"conf": "0.6"}, {"classes": "0,2"}, {"max_det": "3", "iou": "0.3"}, {}, {"conf": "0.05"}]
    with ThreadPoolExecutor(len(settings)) as pool:
        responses = list(pool.map(lambda q: post(server.url, sample_image(), q), settings))
    im = cv2.imread(str(sample_image()))
    counts = set()
    for q, r in zip(settings, responses):
        assert r.status_code == 200, r.text
        det = Detector(trained_onnx(), conf_thres=float(q.get("conf", 0.25)), iou_thres=float(q.get("iou", 0.45)),
                       max_det=int(q.get("max_det", 300)),
                       classes=[int(c) for c in q["classes"].split(",")] if "classes" in q else None)
        assert_same(r.json(), det(im)[0], im.shape)
        counts.add(len(r.json()["detections"]))
    assert len(counts) >= 4  # the settings really changed the answers


def test_parameters_sent_as_form_fields_are_used_like_query_parameters(server):
    """`conf=0.9` or `classes=0` as multipart form fields were answered with the server's defaults (ignored)."""
    jpg = sample_image().read_bytes()
    im = cv2.imread(str(sample_image()))
    default = post(server.url, sample_image()).json()
    for fields in ({"conf": "0.9"}, {"classes": "0"}, {"classes": "0,2", "max_det": "2"}):
        as_form = httpx.post(f"{server.url}/v1/detect", files=[("image", ("s.jpg", jpg, "image/jpeg"))],
                             data=fields, timeout=60)
        as_query = post(server.url, sample_image(), fields)
        assert as_form.status_code == as_query.status_code == 200, as_form.text
        assert as_form.json()["detections"] == as_query.json()["detections"]
        assert len(as_form.json()["detections"]) < len(default["detections"]), fields
        det = Detector(trained_onnx(), conf_thres=float(fields.get("conf", 0.25)),
                       max_det=int(fields.get("max_det", 300)),
                       classes=[int(c) for c in fields["classes"].split(",")] if "classes" in fields else None)
        assert_same(as_form.json(), det(im)[0], im.shape)


def test_bad_input_is_refused_and_counted_and_the_server_keeps_answering(server):
    check_refusals(server.url, max_body_bytes=int(MAX_BODY_MB * (1 << 20)), max_pixels=MAX_PIXELS, max_images=4)


def test_a_checkpoint_is_served_through_the_runtimes_torch_backend_as_predict_runs_it():
    s = Server(trained_checkpoint(), "--imgsz", str(IMGSZ))
    try:
        r = post(s.url, sample_image())
        info = httpx.get(f"{s.url}/v1/model").json()
        assert s.stop() == 0
    finally:
        s.kill()
    assert r.status_code == 200, r.text
    assert info["backend"].startswith("pytorch") and info["input_size"] == [IMGSZ, IMGSZ]
    im = cv2.imread(str(sample_image()))
    expected = Detector(trained_checkpoint(), imgsz=IMGSZ)(im)[0]
    assert len(expected) > 5
    assert_same(r.json(), expected, im.shape)
