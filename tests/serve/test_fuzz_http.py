"""`scripts/fuzz_http.py` on a real server, small: schemathesis against our own /openapi.json finds no 5xx, no
undocumented status or content type, no response off its schema, and no schema-invalid request accepted.

(`positive_data_acceptance` is left to the script's full run: schemathesis 4.32 sends the items of an array of
files without a filename when their content type comes from the schema's encoding, and a part without a
filename is a text field, not a file: a 400 it counts as a schema-valid request refused. README: Serving.)"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from helpers.serve_server import trained_onnx

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,negative_data_rejection")


def load_script():
    path = Path(__file__).resolve().parents[2] / "scripts" / "fuzz_http.py"
    spec = importlib.util.spec_from_file_location("fuzz_http", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schemathesis_finds_no_server_error_and_no_conformance_failure(capsys):
    pytest.importorskip("schemathesis")
    rc = load_script().main(["--model", str(trained_onnx()), "--max-time", "6", "--max-examples", "8",
                             "--checks", CHECKS])
    out = capsys.readouterr().out
    line = out.strip().splitlines()[-1]
    assert rc == 0, out[-3000:]
    assert line.startswith(f"fuzz_http: schemathesis checks {CHECKS}, ") and "failures none, 5xx none; server " \
        "exit 0" in line, line
    assert int(line.split(", ")[1].split()[0]) > 200  # test cases actually ran
