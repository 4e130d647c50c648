"""Margins of the proof on this CPU, one run:
- the verification rule: the largest err/tol of correct exports (should be far below 1) and the smallest
  err/tol of each injected export bug (tests/helpers/bug_catalogue.py; should be far above 1);
- the export's own transforms (folds, rewrites), judged in float64 before tracing: each catalogued
  transform bug (tests/helpers/transform_bugs.py) injected through the public API, its output error
  over the tolerance (verify/transforms.py) and the layer named;
- the runtime's pre/post-processing: each catalogued runtime bug (tests/helpers/runtime_bugs.py) against
  the independent reference pipeline (tests/helpers/reference_pipeline.py) on the trained model.

    python scripts/verify_margins.py [--models paper-p6-tiny main-csp-tiny ...] [--json out.json]

Needs the upstream-made fixtures (../shared/fixtures or $YOLOR_SHARED). Prints the CPU and its flags.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

DEFAULT_MODELS = ["trained/shapes-ssss-w025", "paper-p6-tiny", "paper-e6-tiny", "paper-ssss-s2d",
                  "paper-p6-tiny-nc3", "main-csp-tiny", "main-p6-tiny", "main-csp-tiny-nc3"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import onnx
    import torch

    from helpers.bug_catalogue import BUGS, export_with_bug, margin
    from helpers.fixtures import fixture_path
    from yolor_deploy.checkpoint import load_checkpoint
    from yolor_deploy.export import export_onnx
    from yolor_deploy.sysinfo import cpu_line
    from yolor_deploy.verify.exported import references, verify_onnx
    from yolor_deploy.verify.verify import verification_inputs

    torch.set_num_threads(2)
    print(f"CPU: {cpu_line()}; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    hw = (args.imgsz, args.imgsz)
    image = str(fixture_path("horses.jpg"))
    results: dict = {"cpu": cpu_line(), "correct": {}, "bugs": {b: {} for b in BUGS}}
    t0 = time.perf_counter()
    for name in args.models:
        cfg = fixture_path(f"{name}.cfg") if name.startswith("main-") else None
        model = load_checkpoint(fixture_path(f"{name}.pt"), cfg=cfg)
        stride = max(model.strides)
        for dynamic in (False, True):
            path = Path(f"/tmp/verify-margins-{name.replace('/', '_')}-{dynamic}.onnx")
            export_onnx(model, path, imgsz=hw, dynamic=dynamic, verify=False)
            refs = references(model, verification_inputs(hw, 1, stride, dynamic, image))
            rep, _ = verify_onnx(model, onnx.load(str(path)), image, hw, refs)
            results["correct"][f"{name} {'dynamic' if dynamic else 'static'}"] = (rep.passed, rep.max_ratio)
            print(f"correct  {name:26s} {'dynamic' if dynamic else 'static ':7s} "
                  f"{'pass' if rep.passed else 'FAIL'} max err/tol {rep.max_ratio:.2f}", flush=True)
            path.unlink()
        refs = references(model, verification_inputs(hw, 1, stride, False, image))
        for bug in BUGS:
            rep, _ = verify_onnx(model, export_with_bug(model, bug, hw), image, hw, refs)
            m = margin(rep)
            results["bugs"][bug][name] = (rep.passed, m)
            print(f"bug      {name:26s} {bug:30s} {'pass (MISSED)' if rep.passed else 'fail'} "
                  f"err/tol {m:.3g}", flush=True)
    results["transforms"] = transform_margins(args.models, hw)
    results["runtime"] = runtime_margins()
    worst_ok = max(r for _, r in results["correct"].values())
    print(f"\nlargest err/tol of a correct export: {worst_ok:.2f}")
    print("smallest err/tol per bug (over models):")
    for bug, per in results["bugs"].items():
        lo = min(per.values(), key=lambda v: v[1])
        verdict = "caught everywhere" if not any(p for p, _ in per.values()) else "MISSED"
        print(f"  {bug:32s} {lo[1]:10.3g}  ({verdict})")
    print("transform bugs (float64 output error / tolerance, smallest over models; layer named):")
    for bug, per in results["transforms"].items():
        lo = min(per.values(), key=lambda v: v[1])
        verdict = "refused everywhere" if all(r for r, _, _ in per.values()) else "MISSED"
        print(f"  {bug:42s} {lo[1]:10.3g}  ({verdict})")
    print("runtime bugs (static and dynamic models: detections differing, largest box difference px):")
    for bug, (bad, box, caught) in results["runtime"].items():
        print(f"  {bug:46s} {bad:4d} {box:8.3g}  ({'caught' if caught else 'MISSED'})")
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    ok = all(p for p, _ in results["correct"].values()) and not any(
        p for per in results["bugs"].values() for p, _ in per.values())
    ok &= all(r for per in results["transforms"].values() for r, _, _ in per.values())
    ok &= all(c for _, _, c in results["runtime"].values())
    return 0 if ok else 1


def transform_margins(models: list[str], hw: tuple[int, int]) -> dict:
    """bug -> model -> (refused, output error / tolerance, where)."""
    import pytest

    from helpers.fixtures import fixture_path
    from helpers.transform_bugs import TRANSFORM_BUGS
    from yolor_deploy.checkpoint import load_checkpoint
    from yolor_deploy.errors import VerificationError
    from yolor_deploy.export import export_onnx

    out: dict = {b: {} for b in TRANSFORM_BUGS}
    for name in models:
        cfg = fixture_path(f"{name}.cfg") if name.startswith("main-") else None
        model = load_checkpoint(fixture_path(f"{name}.pt"), cfg=cfg)
        for bug, spec in TRANSFORM_BUGS.items():
            if model.branch not in spec.branches:
                continue
            with pytest.MonkeyPatch.context() as mp:
                spec.install(mp)
                try:
                    export_onnx(model, "/tmp/verify-margins-transform.onnx", imgsz=hw, simplify=False)
                    out[bug][name] = (False, 0.0, "")
                except VerificationError as e:
                    t = next(t for t in e.report.transforms if not t.passed)
                    out[bug][name] = (True, t.ratio, t.departs)
            r, ratio, where = out[bug][name]
            print(f"transform {name:26s} {bug:42s} {'refused' if r else 'MISSED'} err/tol {ratio:.3g} at {where}",
                  flush=True)
    return out


def runtime_margins() -> dict:
    """bug -> (detections differing, largest box difference px, caught on both models)."""
    import tempfile

    import pytest

    from helpers.reference_pipeline import ReferenceDetector, cut_images
    from helpers.runtime_bugs import RUNTIME_BUGS, compare
    from helpers.upstream_detect import CKPT, images
    from yolor_deploy.checkpoint import load_checkpoint
    from yolor_deploy.export import export_onnx
    from yolor_deploy.runtime import Detector

    model = load_checkpoint(CKPT)
    imgs = cut_images(images())
    out: dict = {}
    with tempfile.TemporaryDirectory() as d:
        paths = {k: Path(d) / f"{k}.onnx" for k in ("static", "dynamic")}
        for k, p in paths.items():
            export_onnx(model, p, imgsz=(320, 320), verify=False, simplify=False, dynamic=k == "dynamic")
        refs = {k: [ReferenceDetector(p, (320, 320), auto=k == "dynamic")(im) for im in imgs] for k, p in paths.items()}
        for bug, install in {"(none: the correct runtime)": None, **RUNTIME_BUGS}.items():
            with pytest.MonkeyPatch.context() as mp:
                if install is not None:
                    install(mp)
                rows = [compare(Detector(p, imgsz=320)(imgs), refs[k]) for k, p in paths.items()]
            bad, box = sum(r[0] for r in rows), max(r[1] for r in rows)
            caught = all(r[0] > 0 or r[1] > 0.1 or r[2] > 1e-4 for r in rows)
            out[bug] = (bad, box, caught if install is not None else not caught)
    return out


if __name__ == "__main__":
    sys.exit(main())
