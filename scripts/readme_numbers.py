"""Measure the README's accuracy and speed table on this machine and write it into README.md.

Everything is measured in this run, on the bundled trained model (3 shape classes, 20 labelled images at
its training size 256) and, with --speed, on yolor-p6 @640 with seeded random weights (speed only). The
table goes between `<!-- numbers:begin -->` and `<!-- numbers:end -->` in README.md, headed by the CPU
model and its ISA flags, so anyone can regenerate it on their machine (--print: print only). Its last line is
a stamp, `<!-- numbers:stamp sha256=H date=D -->`: H the SHA-256 of the lines above it (date and CPU included),
so a hand-edited number or a stale block no longer matches (`check_block`, tests/project/test_readme.py).

usage:
  python scripts/readme_numbers.py                 # accuracy rows (~1-2 min on 2 cores)
  python scripts/readme_numbers.py --speed         # + every optimize candidate on yolor-p6 @640 (~10 min)
  python scripts/readme_numbers.py --print         # do not touch README.md
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- numbers:begin -->", "<!-- numbers:end -->"
STAMP = re.compile(r"<!-- numbers:stamp sha256=([0-9a-f]{64}) date=(\d{4}-\d{2}-\d{2}) -->\n\Z")
HEADER = re.compile(r"\AMeasured by `python scripts/readme_numbers\.py` on (\d{4}-\d{2}-\d{2}): (.+)\n")


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


def table(rows: list[tuple[str, str]], extra: str = "", date: str | None = None) -> str:
    """The block: header (date, CPU and ISA flags), the rows, `extra` (the speed table), and its stamp."""
    from yolor_deploy.sysinfo import cpu_line

    date = date or dt.date.today().isoformat()
    head = (f"Measured by `python scripts/readme_numbers.py` on {date}: {cpu_line()}\n\n"
            "| what | number |\n|---|---|\n")
    body = head + "".join(f"| {a} | {b} |\n" for a, b in rows) + (f"\n{extra}" if extra else "")
    return body + stamp(body, date)


def stamp(body: str, date: str) -> str:
    return f"<!-- numbers:stamp sha256={hashlib.sha256(body.encode()).hexdigest()} date={date} -->\n"


def check_block(block: str) -> str | None:
    """None when `block` (the text between the markers) is exactly what `table` wrote: a header with a date and
    a CPU line, the stamp's date equal to the header's, the stamp's hash that of everything above it; else
    what is wrong."""
    m = STAMP.search(block)
    if m is None:
        return "no stamp line (<!-- numbers:stamp ... -->) at the end: not written by scripts/readme_numbers.py"
    body = block[:m.start()]
    head = HEADER.match(body)
    if head is None:
        return "no 'Measured by `python scripts/readme_numbers.py` on DATE: CPU' header"
    if head[1] != m[2]:
        return f"the header's date {head[1]} is not the stamp's {m[2]}"
    if " ISA " not in head[2]:
        return f"the header names no CPU ISA flags: {head[2]!r}"
    if hashlib.sha256(body.encode()).hexdigest() != m[1]:
        return "the numbers differ from what the script wrote (edited by hand?): rerun scripts/readme_numbers.py"
    return None


def readme_block(readme: Path = REPO / "README.md") -> str:
    """The text between the markers."""
    return readme.read_text().split(BEGIN, 1)[1].split(END, 1)[0].removeprefix("\n")


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
