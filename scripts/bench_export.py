"""Benchmark our ONNX export against PyTorch eager and a naive export of the same weights, in one run.

Backends, all on the same input, interleaved (eager, ours, naive, eager, ...) after a warmup:
- eager: the PyTorch model, fp32, `torch.inference_mode()`;
- ours:  `export_onnx(..., verify=False)` with default options (BN/CSP/implicit folds, onnxslim,
         export-time decode without ScatterND), in ONNX Runtime;
- naive: the eager model exported directly, as upstream's notes do it: TorchScript exporter,
         opset 12, static shape, no folding, no simplification (the in-place decode -> ScatterND).
Both ONNX sessions and torch get the same thread count. Prints median/p90 latency per backend,
the ratios ours/eager and ours/naive (of medians; < 1 means ours is faster), ORT session creation
times and op counts of both graphs. Not a test: timings depend on the machine and its load.

usage:
  python scripts/bench_export.py                                  # yolor-p6, 640, seeded random weights
  python scripts/bench_export.py yolor_csp --imgsz 512 --runs 20
  python scripts/bench_export.py --checkpoint yolor_p6.pt --cfg yolor_p6
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from yolor_deploy.sysinfo import cpu_line

OPS = ("Conv", "BatchNormalization", "Mul", "Add", "ScatterND")
BACKENDS = ("eager", "ours", "naive")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variant", nargs="?", default="yolor-p6", help="registered variant (default yolor-p6)")
    p.add_argument("--checkpoint", type=Path, default=None, help="time this checkpoint instead of a variant")
    p.add_argument("--cfg", default=None, help="config for main-branch checkpoints (variant name or .cfg)")
    p.add_argument("--imgsz", type=int, nargs="+", default=[640], metavar="N", help="N or H W (default 640)")
    p.add_argument("--runs", type=int, default=20, help="timed runs per backend (default 20)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per backend first (default 2)")
    p.add_argument("--threads", type=int, default=2, help="torch and ORT intra-op threads (default 2)")
    p.add_argument("--seed", type=int, default=0, help="weight seed for a variant (default 0)")
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.threads < 1 or len(args.imgsz) > 2:
        p.error("--runs and --threads must be >= 1, --warmup >= 0, --imgsz N or H W")
    return args


def load_model(args):
    from yolor_deploy.checkpoint import load_checkpoint
    from yolor_deploy.nn.registry import create_model

    if args.checkpoint is not None:
        return load_checkpoint(args.checkpoint, cfg=args.cfg).float().eval()
    return create_model(args.variant, seed=args.seed).float().eval()


def naive_export(model, imgsz: tuple[int, int], path: Path) -> None:
    """The eager model as is (in-place decode), TorchScript exporter, opset 12, static, no folds/simplify."""
    import onnx
    import torch

    from yolor_deploy.export.passes import export_module

    with torch.no_grad():
        proto = export_module(model, (torch.zeros(1, 3, *imgsz),), ["images"], ["output"], None, 12)
    onnx.save(proto, str(path))


def op_counts(path: Path) -> dict[str, int]:
    import onnx

    nodes = onnx.load(str(path), load_external_data=False).graph.node
    counts = {op: sum(n.op_type == op for n in nodes) for op in OPS}
    counts["nodes"] = len(nodes)
    return counts


def ort_session(path: Path, threads: int):
    """(session, creation seconds)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.log_severity_level = 3
    # no busy-waiting after a run: spinning ORT threads would steal the cores from the next backend
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    t0 = time.perf_counter()
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess, time.perf_counter() - t0


def make_runners(model, sessions: dict, x: np.ndarray) -> dict:
    import torch

    xt = torch.from_numpy(x)

    def eager():
        with torch.inference_mode():
            return model(xt).numpy()

    def onnx_runner(sess):
        name = sess.get_inputs()[0].name
        return lambda: sess.run(None, {name: x})[0]

    return {"eager": eager, **{k: onnx_runner(s) for k, s in sessions.items()}}


def time_interleaved(runners: dict, runs: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call for each runner, calls interleaved A B C A B C ... after `warmup` rounds."""
    samples = {k: [] for k in runners}
    for r in range(warmup + runs):
        for k, fn in runners.items():
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            if r >= warmup:
                samples[k].append(dt)
    return samples


def load_average() -> float:
    """1-minute load average (nan where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def report(console, info: dict, samples: dict, create_s: dict, ops: dict, diffs: dict) -> dict[str, float]:
    from rich.table import Table

    ms = {k: np.asarray(v) * 1000 for k, v in samples.items()}
    med = {k: float(np.median(v)) for k, v in ms.items()}
    p90 = {k: float(np.percentile(v, 90)) for k, v in ms.items()}
    console.print(info["title"], highlight=False)
    t = Table(title="latency (ms, batch 1)", title_justify="left")
    for col in ("backend", "median", "p90", "min", "session create (s)", "max |out - eager|"):
        t.add_column(col, justify="left" if col == "backend" else "right")
    for k in BACKENDS:
        t.add_row(k, f"{med[k]:.1f}", f"{p90[k]:.1f}", f"{ms[k].min():.1f}",
                  f"{create_s[k]:.3f}" if k in create_s else "-", f"{diffs[k]:.3g}" if k in diffs else "-")
    console.print(t)
    g = Table(title="ONNX graph op counts", title_justify="left")
    for col in ("model", *OPS, "nodes"):
        g.add_column(col, justify="left" if col == "model" else "right")
    for k in ("ours", "naive"):
        g.add_row(k, *(str(ops[k][c]) for c in (*OPS, "nodes")))
    console.print(g)
    ratios = {"ours/eager": med["ours"] / med["eager"], "ours/naive": med["ours"] / med["naive"]}
    for name, r in ratios.items():
        console.print(f"ratio {name} (median latency): {r:.3f}  ({1 / r:.2f}x {'faster' if r < 1 else 'slower'})",
                      highlight=False)
    return ratios


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort
    import torch
    from rich.console import Console

    from yolor_deploy.export.onnx_export import export_onnx, round_imgsz

    args = parse_args(argv)
    console = Console()
    load_before = load_average()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        model = load_model(args)
        imgsz, _ = round_imgsz(args.imgsz, max(model.strides))
        x = np.random.default_rng(0).random((1, 3, *imgsz), dtype=np.float32)
        with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
            paths = {"ours": Path(tmp) / "ours.onnx", "naive": Path(tmp) / "naive.onnx"}
            t0 = time.perf_counter()
            export_onnx(model, paths["ours"], imgsz=imgsz, verify=False)
            t_ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            naive_export(model, imgsz, paths["naive"])
            t_naive = time.perf_counter() - t0
            ops = {k: op_counts(p) for k, p in paths.items()}
            made = {k: ort_session(p, args.threads) for k, p in paths.items()}
            sessions, create_s = {k: s for k, (s, _) in made.items()}, {k: c for k, (_, c) in made.items()}
            runners = make_runners(model, sessions, x)
            ref = runners["eager"]()
            diffs = {k: float(np.abs(runners[k]() - ref).max()) for k in ("ours", "naive")}
            samples = time_interleaved(runners, args.runs, args.warmup)
    finally:
        torch.set_num_threads(old_threads)
    name = str(args.checkpoint) if args.checkpoint else f"{args.variant} (random weights, seed {args.seed})"
    title = (f"{name} at {imgsz[0]}x{imgsz[1]}, {args.runs} runs after {args.warmup} warmup, interleaved; "
             f"threads {args.threads}; torch {torch.__version__}, onnxruntime {ort.__version__}; {cpu_line()}\n"
             f"export time: ours {t_ours:.1f} s, naive {t_naive:.1f} s; 1-min load average {load_before:.2f} before, "
             f"{load_average():.2f} after (> cores: other work "
             f"shared the CPU; eager PyTorch suffers most from that)")
    report(console, {"title": title}, samples, create_s, ops, diffs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
