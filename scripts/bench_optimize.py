"""The README's optimize table: every candidate's speed on yolor-p6 @640 (seeded random weights) and its
accuracy on the bundled trained shapes model (20 labelled images at 256), from `yolor-deploy optimize`'s
own machinery, in one run, with the CPU line.

Speed: `optimize_model` on the p6 export (batch 1, --threads threads, --runs rounds interleaved over the
candidates on the same input; calibrated on the bundled sample and --calib-size val images). Accuracy:
`optimize_model` on the shapes export with labels. The pick is the fastest candidate (by p6 speed)
whose mAP@0.5:0.95 on the shapes model is at most --max-map-drop points below fp32.
The p6 export is cached in --cache (a few minutes on 2 cores the first time). Also, in the same run: each
candidate's images/s in latency mode (one call at a time) and throughput mode (--streams calls in flight), and
its achieved GOPS as a share of this CPU's measured convolution peak in the candidate's precision
(`optimize.peak`, measured before and after the models), beside the CPU flags.

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
    p.add_argument("--streams", type=int, default=None, help="throughput mode's calls in flight (default: one per "
                   "core, at least 2)")
    p.add_argument("--no-modes", action="store_true", help="skip the images/s columns (latency/throughput mode)")
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
    from yolor_deploy.optimize.peak import measure_peaks
    from yolor_deploy.sysinfo import cpu_line

    args = parse_args(argv)
    big, small = cached_export(args)
    vals = sorted(str(p) for p in val_images().iterdir())
    common = dict(threads=args.threads, candidates=args.candidates, max_map_drop=args.max_map_drop)
    peaks = measure_peaks(args.threads)  # the CPU's own best case, before and after the models
    with tempfile.TemporaryDirectory(prefix="bench-opt.") as tmp:
        speed = optimize_model(big, Path(tmp) / "speed", OptimizeOptions(
            calib=[str(sample_image()), *vals[:args.calib_size]], runs=args.runs, warmup=2, accuracy=False,
            throughput=not args.no_modes, streams=args.streams, **common))
        acc = optimize_model(small, Path(tmp) / "acc", OptimizeOptions(
            calib=[val_images()], val_images=val_images(), val_labels=val_labels(), runs=3, warmup=1, **common))
    after = measure_peaks(args.threads)
    peaks = {k: max((peaks[k], after[k]), key=lambda p: p.gops or 0.0) for k in peaks}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {cpu_line()}; load average {load:.1f}")
    print(f"CPU flags: {cpu_flags()}")
    print("measured peak (OpenVINO 3x3 conv, 128 ch, 80x80, batch 1, "
          f"{args.threads} threads, best of ~1 s before and after): " + "; ".join(
              f"{k} {p.gops:.0f} GOPS ({p.kernel} kernel)" if p.gops else f"{k} n/a ({p.why})"
              for k, p in peaks.items()))
    print(f"speed: {args.variant} @{args.imgsz}, batch 1, {args.threads} threads, {args.runs} rounds interleaved "
          f"(backend call only); accuracy: trained shapes model @256, {acc['accuracy']['images']} labelled images")
    print_table(speed, acc, args.max_map_drop, args.variant, model_gops(args), peaks)
    return 0


def model_gops(args) -> float:
    """GOPs of one forward of the timed variant at --imgsz (2 per conv multiply-accumulate)."""
    from yolor_deploy.nn.profile import count_gflops
    from yolor_deploy.nn.registry import create_model

    return count_gflops(create_model(args.variant, seed=0), (args.imgsz, args.imgsz))


def cpu_flags() -> str:
    """The flags that decide the kernels: AVX2/FMA, AVX-512 (and VNNI/BF16/FP16), AMX."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split(":")[1].split()
    except (OSError, StopIteration):
        return "unknown"
    keep = [f for f in flags if f in ("avx2", "fma", "avx_vnni", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                                      "avx512f", "amx_bf16", "amx_int8", "amx_tile")]
    return " ".join(keep) or "none of avx2/avx512/amx"


def compute_precision(row: dict) -> str:
    """The precision a candidate's convolutions run in: int8 rows in int8, else its inference precision."""
    return "int8" if row["precision"].startswith("int8") else row["precision"]


def print_table(speed: dict, acc: dict, budget: float, variant: str, gops: float, peaks: dict) -> None:
    s_rows = {r["name"]: r for r in speed["rows"]}
    a_rows = {r["name"]: r for r in acc["rows"]}
    streams = next((r["streams"] for r in speed["rows"] if r.get("streams")), None)
    head = (f"| candidate | precision | {variant} p50 ms | p90 ms | speed vs ORT fp32 | img/s latency | "
            f"img/s throughput ({streams} streams) | GOPS (% of peak) | shapes mAP@0.5 | mAP@0.5:0.95 | "
            f"drop (points) | status |")
    print(f"{variant}: {gops:.1f} GOPs per image")
    print(head)
    print("|---" * 12 + "|")
    pick = None
    for name, s in s_rows.items():
        a = a_rows.get(name, {})
        ok = s["status"] == "ok" and a.get("status") == "ok"
        fits = ok and a["drop"] <= budget + 1e-9 and (budget > 0 or a["precision"] == "fp32")
        if fits and (pick is None or s["p50"] < s_rows[pick]["p50"]):
            pick = name
        status = "ok" if ok else f"{s['status'] if s['status'] != 'ok' else a.get('status')}: " \
                                 f"{s['reason'] or a.get('reason', '')}"
        peak = peaks.get(compute_precision(s))
        achieved = gops / (s["p50"] / 1000) if s["p50"] else None
        share = f" ({100 * achieved / peak.gops:.0f}%)" if achieved and peak and peak.gops else ""
        print(f"| {name} | {s['precision']} | {_f(s['p50'], '.1f')} | {_f(s['p90'], '.1f')} | "
              f"{_f(s['speedup'], '.2f')}x | {_f(s.get('latency_ips'), '.2f')} | "
              f"{_f(s.get('throughput_ips'), '.2f')} | "
              f"{_f(achieved, '.0f')}{share} | {_f(a.get('map50'), '.4f')} | {_f(a.get('map'), '.4f')} | "
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
