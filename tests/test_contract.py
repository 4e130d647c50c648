"""The export/runtime contract: metadata round trip and validation, size rules."""
from __future__ import annotations

import json

import pytest

from yolor_deploy.contract import METADATA_KEY, MetadataError, ModelMetadata, NmsSettings, parse_imgsz, round_to_stride


def test_round_trip_keeps_every_field():
    m = ModelMetadata(names=("a", "b"), stride=(8, 16, 32), imgsz=(320, 256), dynamic=True, batch=None,
                      nms=NmsSettings("onnx", 0.3, 0.5, 100), half=True, branch="paper", variant="v",
                      source_sha256="ab" * 32, version="9", quantized="int8-qdq",
                      quantization={"per_channel": True})
    back = ModelMetadata.from_json(m.to_json())
    assert back == m and back.nc == 2 and back.max_stride == 32
    d = json.loads(m.to_json())
    assert d["format"] == 1 and d["imgsz"] == [320, 256] and d["input"]["color"] == "RGB"
    assert METADATA_KEY == "yolor_deploy"


@pytest.mark.parametrize("text,why", [
    ("{", "not JSON"),
    ("[1]", "not a JSON object"),
    ('{"format": 2, "names": []}', "unsupported metadata format 2"),
    ('{"stride": [8]}', "missing 'names'"),
    ('{"names": "abc"}', "'names' is not a list"),
    ('{"names": ["a"], "stride": [0]}', "stride [0]"),
    ('{"names": ["a"], "stride": [Infinity]}', "Infinity is not a number"),
    ('{"names": ["a"], "stride": [NaN]}', "NaN is not a number"),
    ('{"names": ["a"], "nms": {"max_det": 1e30}}', "max_det"),
    ('{"names": ["a"], "nms": {"mode": "onnx", "conf_thres": 2}}', "thresholds out of range"),
    ('{"names": ["a"], "nms": "onnx"}', "'nms' is not a object"),
    ('{"names": ["a"], "imgsz": [0, 320]}', "imgsz [0, 320]"),
    ('{"names": ["a"], "dynamic": "yes"}', "dynamic: 'yes' is not true/false"),
    ('{"names": ["a"], "batch": 1.5}', "batch: 1.5 is not an integer"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"names": [' + ",".join(['"x"'] * 100_001) + "]}", "class names"),
])
def test_malformed_metadata_is_refused_with_the_reason(text, why):
    with pytest.raises(MetadataError, match=why.replace("[", r"\[").replace("]", r"\]")):
        ModelMetadata.from_json(text)


def test_oversized_metadata_is_refused_unparsed():
    with pytest.raises(MetadataError, match="characters"):
        ModelMetadata.from_json('{"names": ["' + "x" * (1 << 21) + '"]}')


def test_size_rules():
    assert parse_imgsz(None) == (640, 640) and parse_imgsz([320]) == (320, 320) and parse_imgsz([256, 320]) == (256, 320)
    assert parse_imgsz(416) == (416, 416)
    with pytest.raises(ValueError, match="N or H W"):
        parse_imgsz([1, 2, 3])
    with pytest.raises(ValueError, match="out of range"):
        parse_imgsz([0])
    assert round_to_stride((320, 320), 64) == ((320, 320), None)
    hw, note = round_to_stride((300, 333), 32)
    assert hw == (320, 352) and note == "image size 300x333 is not a multiple of the largest stride 32: using 320x352"
    assert round_to_stride((10, 10), 64)[0] == (64, 64)
