"""The README's two commands are what CI runs (a green CI must mean the README works)."""
from __future__ import annotations

import re

from helpers.fixtures import REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)[:2]


def test_readme_first_screen_has_the_two_commands():
    demo, tests = _readme_commands()
    assert demo.endswith("yolor-deploy demo") and tests.endswith("python -m pytest -q -n auto --dist loadscope")


def test_ci_runs_the_readme_install_and_test_steps():
    ci = (REPO / ".ci" / "run").read_text()
    _, tests = _readme_commands()
    steps = [s.strip() for s in tests.split("&&")][2:]  # after venv creation and activation
    for step in steps:
        assert step in ci, f".ci/run does not run the README step: {step}"


def test_ci_also_runs_the_proof_on_avx2_kernels():
    ci = (REPO / ".ci" / "run").read_text()
    assert "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python -m pytest" in ci
    for name in ("nn/test_paper_model.py", "nn/test_darknet_model.py", "export/test_export.py", "verify"):
        assert f"tests/{name}" in ci and (REPO / "tests" / name).exists()


def test_readme_python_example_runs_as_written(tmp_path, monkeypatch):
    text = (REPO / "README.md").read_text()
    code = re.findall(r"```python\n(.+?)\n```", text, flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    printed = out.getvalue().strip()
    expected = re.search(r"print\(result\)\s+# (.+)", code)[1]
    assert printed == expected
    assert (tmp_path / "shapes.onnx").is_file() and (tmp_path / "shapes-annotated.jpg").stat().st_size > 10_000


def _numbers_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_numbers", REPO / "scripts" / "readme_numbers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_numbers_block_is_the_scripts_output(tmp_path):
    """The measured table sits between the markers, exactly as the script wrote it: its stamp (SHA-256 of the
    block, the header's date and CPU included) matches, so a number edited by hand fails here."""
    mod = _numbers_script()
    block = mod.readme_block()
    assert mod.check_block(block) is None, mod.check_block(block)
    rows = [ln for ln in block.splitlines() if ln.startswith("| trained shapes model")]
    assert len(rows) == 5 and all(float(r.split("|")[2].split("/")[0]) > 0.9 for r in rows), rows
    edited = block.replace(rows[1], rows[1][:-3] + ("0" if rows[1][-3] != "0" else "1") + rows[1][-2:])
    assert edited != block and "edited by hand" in mod.check_block(edited)
    assert "stamp" in mod.check_block(block.split("<!-- numbers:stamp")[0])
    redated = block.replace(" on 20", " on 19", 1)
    assert "date" in mod.check_block(redated)
    fake = tmp_path / "README.md"
    fake.write_text(f"head\n{mod.BEGIN}\nold\n{mod.END}\ntail\n")
    mod.write_readme(mod.table([("a", "1")]), fake)
    new = fake.read_text()
    assert new.startswith("head\n" + mod.BEGIN + "\nMeasured by") and mod.END + "\ntail\n" in new
    assert "| a | 1 |\n<!-- numbers:stamp sha256=" in new and mod.check_block(mod.readme_block(fake)) is None


def test_readme_fp32_numbers_are_what_the_code_measures_now():
    """Stale numbers fail: the ONNX Runtime fp32 row re-measured now (the same export, images and thresholds as
    the script; fp32 mAP at 3 decimals does not depend on the CPU's ISA) equals the README's."""
    from helpers.trained_onnx import trained_onnx
    from yolor_deploy.assets import val_images, val_labels
    from yolor_deploy.eval import evaluate
    from yolor_deploy.runtime import Detector

    mod = _numbers_script()
    (row,) = [ln for ln in mod.readme_block().splitlines() if "ONNX Runtime fp32 (our export)" in ln]
    m = evaluate(Detector(trained_onnx(), conf_thres=0.001, iou_thres=0.65, imgsz=256), val_images(), val_labels())
    assert row.split("|")[2].strip() == f"{m.map50:.3f} / {m.map:.3f}", row


