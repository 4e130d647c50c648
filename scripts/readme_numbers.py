"""Measure the README's accuracy and speed table on this machine and write it into README.md.

Everything is measured in this run, on the bundled trained model (3 shape classes, 20 labelled images at
its training size 256) and, with --speed, on yolor-p6 @640 with seeded random weights (speed only). The
table goes between `<!-- numbers:begin -->` and `<!-- numbers:end -->` in README.md, headed by the CPU
model and its ISA flags, so anyone can regenerate it on their machine (--print: print only).

usage:
  python scripts/readme_numbers.py                 # accuracy rows (~1-2 min on 2 cores)
  python scripts/readme_numbers.py --speed         # + every optimize candidate on yolor-p6 @640 (~10 min)
  python scripts/readme_numbers.py --print         # do not touch README.md
"""
from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- numbers:begin -->", "<!-- numbers:end -->"


def accuracy_rows(d: Path) -> list[tuple[str, str]]:
    """mAP of the trained model through every path a user can take, at its training size."""
    from yolor_deploy import assets
    from yolor_deploy.checkpoint import load_checkpoint
    from yolor_deploy.eval import evaluate
    from yolor_deploy.export import export_onnx
    from yolor_deploy.quantize.ort_qdq import quantize_onnx
    from yolor_deploy.runtime import Detector

    images, labels = assets.val_images(), assets.val_labels()
    ckpt = assets.trained_checkpoint()
    model = load_checkpoint(ckpt)
    onnx = d / "shapes-256x256-dynamic.onnx"
    export_onnx(model, onnx, imgsz=(256, 256), dynamic=True, opset=17, verify=False)
    calib = sorted(str(p) for p in images.glob("*.jpg"))
    int8 = d / "shapes-256x256-dynamic-int8.onnx"
    quantize_onnx(onnx, int8, calib)
    ov_int8 = d / "shapes-256x256-dynamic-int8.xml"
    quantize_onnx(onnx, ov_int8, calib, backend="openvino")

    def mAP(path, backend="auto") -> tuple[float, float]:
        m = evaluate(Detector(path, conf_thres=0.001, iou_thres=0.65, imgsz=256, backend=backend), images, labels)
        return m.map50, m.map

    rows = []
    for what, path, backend in (("PyTorch (.pt, our loader)", ckpt, "auto"),
                                ("ONNX Runtime fp32 (our export)", onnx, "auto"),
                                ("OpenVINO fp32 (the same .onnx)", onnx, "openvino"),
                                ("ONNX Runtime int8 QDQ (`quantize`)", int8, "auto"),
                                ("OpenVINO int8 NNCF (`quantize --backend openvino`)", ov_int8, "auto")):
        m50, m = mAP(path, backend)
        rows.append((f"trained shapes model, 20 val images @256: mAP@0.5 / @0.5:0.95, {what}", f"{m50:.3f} / {m:.3f}"))
    return rows


def speed_table(runs: int) -> str:
    """`scripts/bench_optimize.py`'s table: every optimize candidate's latency on yolor-p6 @640 (one
    interleaved run) and accuracy on the trained shapes model, as the markdown it prints."""
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_optimize.py"), "--runs", str(runs)],
                       capture_output=True, text=True, check=True)
    keep = [ln for ln in r.stdout.splitlines() if ln.startswith(("|", "speed:", "pick ", "CPU:"))]
    return "\n".join(ln if ln.startswith("|") else f"{ln}  " for ln in keep) + "\n"


def table(rows: list[tuple[str, str]], extra: str = "") -> str:
    from yolor_deploy.sysinfo import cpu_line

    head = (f"Measured by `python scripts/readme_numbers.py` on {dt.date.today().isoformat()}: {cpu_line()}\n\n"
            "| what | number |\n|---|---|\n")
    return head + "".join(f"| {a} | {b} |\n" for a, b in rows) + (f"\n{extra}" if extra else "")


def write_readme(block: str, readme: Path = REPO / "README.md") -> None:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} block to replace")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    from yolor_deploy.fs import write_text

    write_text(readme, f"{head}{BEGIN}\n{block}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speed", action="store_true", help="also time every optimize candidate on yolor-p6 @640 "
                                                         "(scripts/bench_optimize.py; minutes)")
    p.add_argument("--runs", type=int, default=10, help="interleaved timing rounds with --speed (default 10)")
    p.add_argument("--print", dest="print_only", action="store_true", help="print the table, leave README.md")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="readme-numbers.") as tmp:
        rows = accuracy_rows(Path(tmp))
    block = table(rows, speed_table(args.runs) if args.speed else "")
    print(block)
    if not args.print_only:
        write_readme(block)
        print(f"written to {REPO / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
