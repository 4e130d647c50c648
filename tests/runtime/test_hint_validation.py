"""Runtime hints are data to validate (issue 20): the model's own metadata ("runtime") and a named optimize
`report.json` go through one validator (`contract.RuntimeHint.from_dict`); every bad field is one line naming
the file and the field, never an OverflowError or TypeError out of `open_backend`."""
from __future__ import annotations

import json
import shutil

import onnx
import pytest

from helpers.trained_onnx import trained_onnx
from yolor_deploy.assets import val_images
from yolor_deploy.cli.main import main
from yolor_deploy.contract import METADATA_KEY, MetadataError, RuntimeHint, max_hint_threads
from yolor_deploy.errors import InputError
from yolor_deploy.runtime import Detector, read_report_hint

BAD_THREADS = [(10**400, "a huge number out of range"), (2.0, "is not an integer"), (True, "is not an integer"),
               ("4", "is not an integer"), (0, "out of range"), (-3, "out of range")]
BAD = [({"threads": v}, "runtime.threads", why) for v, why in BAD_THREADS if why] + [
    ({"threads": max_hint_threads() + 1}, "runtime.threads", "out of range"),
    ({"backend": "tensorrt"}, "runtime.backend", "expected one of"),
    ({"backend": 10**400}, "runtime.backend", "is not a string"),
    ({"backend": "openvino", "precision": "int4"}, "runtime.precision", "expected one of"),
    ({"backend": "openvino", "precision": ["f32"]}, "runtime.precision", "is not a string"),
    ({"streams": 4}, "runtime", r"unknown key\(s\) streams"),
    ({"nireq": 10**400}, "runtime", r"unknown key\(s\) nireq"),
]


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize("fields,field,why", BAD)
def test_one_validator_refuses_each_bad_field(fields, field, why):
    with pytest.raises(MetadataError, match=rf"^{field}\b.*{why}"):
        RuntimeHint.from_dict({"backend": "openvino", **fields})


def test_threads_bound_follows_the_machine_but_travels():
    assert max_hint_threads() >= 64  # a model optimized on a large machine still opens on a laptop
    assert RuntimeHint.from_dict({"threads": max_hint_threads()}).threads == max_hint_threads()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The trained model, once per bad hint field, each with that hint in its own metadata."""
    folder = tmp_path_factory.mktemp("hints")
    base = onnx.load(str(trained_onnx()))
    meta = json.loads(next(p.value for p in base.metadata_props if p.key == METADATA_KEY))
    paths = []
    for k, (fields, _, _) in enumerate(BAD):
        for p in base.metadata_props:
            if p.key == METADATA_KEY:
                p.value = json.dumps({**meta, "runtime": {"backend": "openvino", **fields}})
        paths.append(folder / f"m{k}.onnx")
        onnx.save(base, str(paths[-1]))
    return paths


@pytest.mark.parametrize("k", range(len(BAD)))
def test_a_bad_hint_in_the_models_metadata_is_one_line_naming_the_file(models, k, tmp_path, capsys):
    fields, field, why = BAD[k]
    with pytest.raises(InputError, match=rf"{models[k].name}: .*{field}\b.*{why}"):
        Detector(models[k])
    assert main(["predict", str(models[k]), str(val_images()), "--save-dir", str(tmp_path / "p"), "-q"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert str(models[k]) in line and field in line and why.replace("\\", "") in line, line


@pytest.mark.parametrize("k", range(len(BAD)))
def test_a_bad_hint_in_a_named_report_is_one_line_naming_the_report(k, tmp_path, capsys):
    fields, field, why = BAD[k]
    model = tmp_path / "m.onnx"
    shutil.copy(trained_onnx(), model)
    rep = tmp_path / "report.json"
    rep.write_text(json.dumps({"tool": "yolor-deploy optimize", "rows": [],
                               "best": {"file": "m.onnx", "runtime": {"backend": "openvino", **fields}}}))
    with pytest.raises(InputError, match=rf"{rep.name}: malformed optimize report \({field}\b.*{why}"):
        read_report_hint(rep, model)
    assert main(["predict", str(model), str(val_images()), "--save-dir", str(tmp_path / "p"), "-q",
                 "--hint", str(rep)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert str(rep) in line and field in line and why.replace("\\", "") in line, line


@pytest.mark.parametrize("threads", [10**400, 2.5, True, "4", 0])
def test_explicit_threads_are_checked_before_the_runtime_sees_them(threads):
    with pytest.raises(InputError, match=rf"{trained_onnx().name}: threads .*: expected an integer in 1\.\.1024$"):
        Detector(trained_onnx(), threads=threads)
