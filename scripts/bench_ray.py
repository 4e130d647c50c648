"""Throughput of `predict --engine ray` with 1 and 2 workers, and of the local engine, on this machine.

Exports the bundled trained shapes model (dynamic ONNX), copies the 20 bundled val images REPEAT times into a
folder (200 images by default), starts one local Ray instance with this machine's CPUs, then runs, interleaved
ROUNDS times: the local engine (one process, all cores), Ray with 1 worker (CPUs threads) and Ray with 2 workers
(CPUs // 2 threads each), each into a fresh folder with the default outputs (annotated images). Wall time per run
includes starting the actors and loading the model in each (what a user waits for), not starting Ray itself.
Prints images/s per engine (median over rounds) and the ratios to Ray with 1 worker, with the CPU line.

usage:
  python scripts/bench_ray.py                      # 200 images @256, 3 rounds
  python scripts/bench_ray.py --repeat 50 --imgsz 320 --rounds 5
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=10, help="copies of the 20 val images (default 10: 200 images)")
    p.add_argument("--imgsz", type=int, default=256, help="inference size (default 256, the images' own)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--shard-size", type=int, default=25, help="images per shard (default 25)")
    args = p.parse_args(argv)
    if min(args.repeat, args.imgsz, args.rounds, args.shard_size) < 1:
        p.error("--repeat, --imgsz, --rounds and --shard-size must be >= 1")
    return args


def make_folder(root: Path, repeat: int) -> Path:
    from yolor_deploy.assets import val_images

    folder = root / "images"
    folder.mkdir()
    for k in range(repeat):
        for p in sorted(val_images().glob("*.jpg")):
            shutil.copy(p, folder / f"{k:03d}_{p.name}")
    return folder


def run_local(model: Path, folder: Path, out: Path, imgsz: int) -> float:
    """Images per second of the local engine (as `predict` runs it: one Detector, default threads)."""
    from yolor_deploy.cli.main import main

    t0 = time.perf_counter()
    assert main(["predict", str(model), str(folder), "--imgsz", str(imgsz), "--save-dir", str(out), "-q"]) == 0
    return len(list(folder.iterdir())) / (time.perf_counter() - t0)


def run_ray(model: Path, folder: Path, out: Path, imgsz: int, workers: int, shard_size: int) -> float:
    from yolor_deploy.distributed import predict_with_ray

    t0 = time.perf_counter()
    r = predict_with_ray(model, [folder], out, {"imgsz": imgsz}, num_workers=workers, shard_size=shard_size,
                         progress=False)
    assert r.shards_reused == 0 and r.frames == len(list(folder.iterdir()))
    return r.frames / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import contextlib
    import io

    from yolor_deploy.assets import trained_checkpoint
    from yolor_deploy.distributed.cluster import ray_session
    from yolor_deploy.export import export_onnx
    from yolor_deploy.sysinfo import cpu_line

    root = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        model = root / "shapes.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(trained_checkpoint(), model, imgsz=(args.imgsz, args.imgsz), dynamic=True, verify=False)
        folder = make_folder(root, args.repeat)
        n = len(list(folder.iterdir()))
        rates: dict[str, list[float]] = {"local (1 process)": [], "ray, 1 worker": [], "ray, 2 workers": []}
        with ray_session(None):
            for r in range(args.rounds):
                with contextlib.redirect_stdout(io.StringIO()):  # the local engine's summary table
                    rates["local (1 process)"].append(run_local(model, folder, root / f"local{r}", args.imgsz))
                for workers in (1, 2):
                    rates[f"ray, {workers} worker{'s' * (workers > 1)}"].append(
                        run_ray(model, folder, root / f"ray{workers}-{r}", args.imgsz, workers, args.shard_size))
                print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()))
        base = statistics.median(rates["ray, 1 worker"])
        print(f"\n{n} images @{args.imgsz}, shards of {args.shard_size}, {args.rounds} interleaved rounds; "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"cpu: {cpu_line()}")
        print(f"{'engine':<20} {'images/s (median)':>18} {'/ ray 1 worker':>15}")
        for name, v in rates.items():
            print(f"{name:<20} {statistics.median(v):>18.1f} {statistics.median(v) / base:>15.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
