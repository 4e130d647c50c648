"""images/s of `predict`'s loop on a folder, reading in line vs decoding ahead in a thread (`prefetch`), one run.

    python scripts/bench_predict_folder.py [--images 60] [--size 1920x1080] [--imgsz 256] [--rounds 3]
    python scripts/bench_predict_folder.py --modes --images 200 --size 640x480 --imgsz 640  (latency vs throughput)
    python scripts/bench_predict_folder.py --modes --backend openvino ...  (the same in OpenVINO)

The bundled trained model is exported to ONNX at --imgsz; the bundled images are upscaled to --size and written
as JPEG (decoding a large JPEG costs about what a small model's inference does: the case prefetch is for).
Both loops run the same Detector, alternating, --rounds times each; the best round of each is printed with
the ratio, beside the CPU and its flags.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from yolor_deploy.assets import trained_checkpoint, val_images
from yolor_deploy.export import export_onnx
from yolor_deploy.runtime import Detector, resolve_sources
from yolor_deploy.runtime.inputs.opencv import cv2
from yolor_deploy.runtime.inputs.prefetch import prefetch
from yolor_deploy.runtime.inputs.sources import iter_frames
from yolor_deploy.sysinfo import cpu_line


def _loop(det: Detector, folder: Path, ahead: bool) -> float:
    sources = resolve_sources([folder])
    frames = iter_frames(sources, lambda m: None)
    t0 = time.perf_counter()
    n = 0
    for f in (prefetch(frames, depth=2) if ahead else frames):
        det(f.image)
        n += 1
    return n / (time.perf_counter() - t0)


def _mode_loop(det: Detector, folder: Path, out: list) -> float:
    """images/s of predict's loop in `det`'s mode (prefetch on); detections appended to `out`."""
    frames = prefetch(iter_frames(resolve_sources([folder]), lambda m: None), depth=2 * det.streams)
    t0 = time.perf_counter()
    out[:] = list(det.predict_many(f.image for f in frames))
    return len(out) / (time.perf_counter() - t0)


def _alternate(first, second, rounds: int) -> tuple[list[float], list[float]]:
    """images/s of `first()` and `second()`, alternating, `rounds` each (the machine's load hits both alike)."""
    one: list[float] = []
    two: list[float] = []
    for _ in range(rounds):
        one.append(first())
        two.append(second())
    return one, two


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(len(x.xyxy) == len(y.xyxy) and (x.classes == y.classes).all()
                                    and np.allclose(x.xyxy, y.xyxy, rtol=1e-4, atol=1e-3) for x, y in zip(a, b))


def compare_modes(model: Path, folder: Path, rounds: int, n: int, size: str, imgsz: int, backend: str,
                  streams: int | None = None) -> None:
    lat = Detector(str(model), mode="latency", backend=backend)
    thr = Detector(str(model), mode="throughput", backend=backend, streams=streams)
    a: list = []
    b: list = []
    _mode_loop(lat, folder, a), _mode_loop(thr, folder, b)  # warm-up
    ls, ts = _alternate(lambda: _mode_loop(lat, folder, a), lambda: _mode_loop(thr, folder, b), rounds)
    print(cpu_line())
    print(f"{n} JPEGs of {size}, model at {imgsz}, best of {rounds} alternating rounds, prefetch on")
    print(f"{thr.backend.name}")
    print(f"latency mode:    {max(ls):6.1f} images/s")
    print(f"throughput mode: {max(ts):6.1f} images/s   ({max(ts) / max(ls):.2f}x, {thr.streams} streams)  "
          f"same detections: {_same(a, b)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", action="store_true", help="latency vs throughput mode instead of prefetch")
    ap.add_argument("--backend", default="onnxruntime", help="with --modes: onnxruntime (default) or openvino")
    ap.add_argument("--streams", type=int, default=None, help="with --modes: throughput mode's calls in flight")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = Path(tmp)
        model = d / "shapes.onnx"
        export_onnx(str(trained_checkpoint()), model, imgsz=(a.imgsz, a.imgsz), verify=False)
        folder = d / "images"
        folder.mkdir()
        src = sorted(p for p in val_images().iterdir() if p.suffix.lower() in (".jpg", ".png"))
        for i in range(a.images):
            im = cv2.resize(cv2.imread(str(src[i % len(src)])), (w, h))
            cv2.imwrite(str(folder / f"{i:04d}.jpg"), im, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if a.modes:
            compare_modes(model, folder, a.rounds, a.images, a.size, a.imgsz, a.backend, a.streams)
            return
        det = Detector(str(model))
        _loop(det, folder, False)  # warm-up: sessions, page cache
        inline, ahead = _alternate(lambda: _loop(det, folder, False), lambda: _loop(det, folder, True), a.rounds)
    print(cpu_line())
    print(f"{a.images} JPEGs of {w}x{h}, model at {a.imgsz}, batch 1, best of {a.rounds} alternating rounds")
    print(f"in line:   {max(inline):6.1f} images/s")
    print(f"prefetch:  {max(ahead):6.1f} images/s   ({max(ahead) / max(inline):.2f}x)")


if __name__ == "__main__":
    main()
