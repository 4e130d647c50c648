"""Margins of the verification rule on this CPU: the largest err/tol of correct exports (should be far
below 1) and the smallest err/tol of each injected export bug (should be far above 1), one run.

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
    worst_ok = max(r for _, r in results["correct"].values())
    print(f"\nlargest err/tol of a correct export: {worst_ok:.2f}")
    print("smallest err/tol per bug (over models):")
    for bug, per in results["bugs"].items():
        lo = min(per.values(), key=lambda v: v[1])
        verdict = "caught everywhere" if not any(p for p, _ in per.values()) else "MISSED"
        print(f"  {bug:32s} {lo[1]:10.3g}  ({verdict})")
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0 if all(p for p, _ in results["correct"].values()) and not any(
        p for per in results["bugs"].values() for p, _ in per.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
