"""The README's optimize table: every candidate's speed on yolor-p6 @640 (seeded random weights) and its
accuracy on the bundled trained shapes model (20 labelled images at 256), from `yolor-deploy optimize`'s
own machinery, in one run, with the CPU line.

Speed: `optimize_model` on the p6 export (batch 1, --threads threads, --runs rounds interleaved over the
candidates on the same input; calibrated on the bundled sample and --calib-size val images). Accuracy:
`optimize_model` on the shapes export with labels. The pick is the fastest candidate (by p6 speed)
whose mAP@0.5:0.95 on the shapes model is at most --max-map-drop points below fp32.
The p6 export is cached in --cache (a few minutes on 2 cores the first time).

usage:
  python scripts/bench_optimize.py                       # yolor-p6 @640, 10 runs, 2 threads
  ONEDNN_MAX_CPU_ISA=AVX2 python scripts/bench_optimize.py   # OpenVINO as on an AVX2-only CPU
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="yolor-p6", help="registered variant timed (default yolor-p6)")
    p.add_argument("--imgsz", type=int, default=640, help="its square export size (default 640)")
    p.add_argument("--runs", type=int, default=10, help="interleaved timing rounds (default 10)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--calib-size", type=int, default=3, help="val images added to the sample for p6 calibration")
    p.add_argument("--max-map-drop", type=float, default=0.5, help="budget in points of mAP@0.5:0.95 (0.5)")
    p.add_argument("--cache", type=Path, default=Path("/tmp/opt-cache"), help="where the exports are cached")
    p.add_argument("--candidates", nargs="+", default=None, help="only these candidates")
    return p.parse_args(argv)


def cached_export(args) -> tuple[Path, Path]:
    """(p6 export, shapes export at 256), made once into --cache."""
    from yolor_deploy.assets import trained_checkpoint
    from yolor_deploy.export import export_onnx
    from yolor_deploy.nn.registry import create_model

    args.cache.mkdir(parents=True, exist_ok=True)
    big = args.cache / f"{args.variant}-{args.imgsz}.onnx"
    if not big.is_file():
        model = create_model(args.variant, seed=0).float().eval()
        export_onnx(model, big, imgsz=(args.imgsz, args.imgsz), opset=17, verify=False)
    small = args.cache / "shapes-256-opset17.onnx"
    if not small.is_file():
        export_onnx(str(trained_checkpoint()), small, imgsz=(256, 256), opset=17)
    return big, small


def main(argv=None) -> int:
    from yolor_deploy.assets import sample_image, val_images, val_labels
    from yolor_deploy.optimize import OptimizeOptions, optimize_model
    from yolor_deploy.sysinfo import cpu_line

    args = parse_args(argv)
    big, small = cached_export(args)
    vals = sorted(str(p) for p in val_images().iterdir())
    common = dict(threads=args.threads, candidates=args.candidates, max_map_drop=args.max_map_drop)
    with tempfile.TemporaryDirectory(prefix="bench-opt.") as tmp:
        speed = optimize_model(big, Path(tmp) / "speed", OptimizeOptions(
            calib=[str(sample_image()), *vals[:args.calib_size]], runs=args.runs, warmup=2, accuracy=False,
            **common))
        acc = optimize_model(small, Path(tmp) / "acc", OptimizeOptions(
            calib=[val_images()], val_images=val_images(), val_labels=val_labels(), runs=3, warmup=1, **common))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {cpu_line()}; load average {load:.1f}")
    print(f"speed: {args.variant} @{args.imgsz}, batch 1, {args.threads} threads, {args.runs} rounds interleaved "
          f"(backend call only); accuracy: trained shapes model @256, {acc['accuracy']['images']} labelled images")
    print_table(speed, acc, args.max_map_drop, args.variant)
    return 0


def print_table(speed: dict, acc: dict, budget: float, variant: str) -> None:
    s_rows = {r["name"]: r for r in speed["rows"]}
    a_rows = {r["name"]: r for r in acc["rows"]}
    head = (f"| candidate | precision | {variant} p50 ms | p90 ms | speed vs ORT fp32 | shapes mAP@0.5 | "
            f"mAP@0.5:0.95 | drop (points) | status |")
    print(head)
    print("|---" * 9 + "|")
    pick = None
    for name, s in s_rows.items():
        a = a_rows.get(name, {})
        ok = s["status"] == "ok" and a.get("status") == "ok"
        fits = ok and a["drop"] <= budget + 1e-9 and (budget > 0 or a["precision"] == "fp32")
        if fits and (pick is None or s["p50"] < s_rows[pick]["p50"]):
            pick = name
        status = "ok" if ok else f"{s['status'] if s['status'] != 'ok' else a.get('status')}: " \
                                 f"{s['reason'] or a.get('reason', '')}"
        print(f"| {name} | {s['precision']} | {_f(s['p50'], '.1f')} | {_f(s['p90'], '.1f')} | "
              f"{_f(s['speedup'], '.2f')}x | {_f(a.get('map50'), '.4f')} | {_f(a.get('map'), '.4f')} | "
              f"{_f(a.get('drop'), '+.2f')} | {status if ok and fits else ('over budget' if ok else status)} |")
    if pick:
        print(f"pick (fastest on {variant} within {budget:g} point(s) on the shapes model): {pick}, "
              f"{s_rows[pick]['speedup']:.2f}x ORT fp32")
    print(f"optimize's own choice, speed run: {speed['why']}")
    print(f"optimize's own choice, accuracy run: {acc['why']}")


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


if __name__ == "__main__":
    sys.exit(main())
