"""Load test of `yolor-deploy serve`: N requests at concurrency C, throughput, latency percentiles, errors and the
batch sizes the server ran (from /metrics and each answer's `batch`). Loopback only; bounded in count and time.

Without --url it starts the servers itself (`--port 0`) on --model (default: the bundled trained model, exported
dynamic at --imgsz into a temporary folder): one with batching (--max-batch, --max-wait-ms) and one without
(--max-batch 1), and runs them interleaved (--rounds rounds of N/rounds requests each, alternating which goes
first) so both see the same machine; prints both rows, the throughput ratio, and the CPU line. With --engine ray
three servers run: `serve --engine ray` with --replicas 2 and with --replicas 1, and the plain server (all
batching): the gain of a second replica, and what Ray Serve's extra hops cost against one process. With
--protocol v2-http or v2-grpc one batching server (with --grpc-port 0) is driven interleaved over /v1/detect and
over the Open Inference Protocol (the encoded image as an `image_bytes` BYTES tensor: REST with the binary tensor
extension, or gRPC through tritonclient's asyncio client): what the protocol costs against /v1.

usage:
  python scripts/load_test.py                                   # trained model @320, 400 requests, C=8
  python scripts/load_test.py --requests 800 --concurrency 16 --max-batch 16
  python scripts/load_test.py --url http://127.0.0.1:8000 --requests 200   # a server that is already running
  python scripts/load_test.py --engine ray --requests 400                 # Ray Serve: 1 vs 2 replicas
  python scripts/load_test.py --protocol v2-grpc                          # /v1/detect vs OIP gRPC, one server
  python scripts/load_test.py --modes                                     # latency vs throughput mode
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

MAX_REQUESTS = 100_000


@dataclass
class Tally:
    """What one setting saw over all its rounds."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    batches: Counter = field(default_factory=Counter)  # batch size -> images answered from such a batch
    seconds: float = 0.0
    calls: float = 0.0  # model calls (from /metrics)
    images: float = 0.0  # images run (from /metrics)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=None, help="a running server (loopback); default: start servers here")
    p.add_argument("--model", default=None, help="model to serve (default: the bundled trained model, exported)")
    p.add_argument("--imgsz", type=int, default=320, help="export size of the default model (default 320)")
    p.add_argument("--image", default=None, help="image to send (default: the bundled sample, 640x480)")
    p.add_argument("--requests", type=int, default=400, help="requests per setting (default 400)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    p.add_argument("--max-batch", type=int, default=8, help="the batching server's --max-batch (default 8)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="the batching server's --max-wait-ms (default 5)")
    p.add_argument("--threads", type=int, default=None,
                   help="the servers' --threads (model threads; default: the runtime's, all cores)")
    p.add_argument("--time-limit-s", type=float, default=600.0, help="stop sending after this long (default 600)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: batching vs no batching (default); ray: Ray Serve with 1 vs 2 replicas")
    p.add_argument("--modes", action="store_true",
                   help="latency mode without and with batching vs throughput mode (--mode throughput: one model "
                        "call per core at once, --max-batch 1), three servers interleaved")
    p.add_argument("--protocol", choices=("v1", "v2-http", "v2-grpc"), default="v1",
                   help="v1: batching vs no batching over /v1/detect (default); v2-http / v2-grpc: /v1/detect vs the "
                        "Open Inference Protocol on one batching server")
    args = p.parse_args(argv)
    if args.protocol != "v1" and (args.engine != "local" or args.url):
        p.error("--protocol v2-http / v2-grpc: with --engine local and without --url (servers started here)")
    if not 1 <= args.requests <= MAX_REQUESTS or not 1 <= args.concurrency <= 256 or args.rounds < 1:
        p.error(f"--requests 1..{MAX_REQUESTS}, --concurrency 1..256, --rounds >= 1")
    if args.url and not is_loopback_url(args.url):
        p.error(f"--url {args.url}: loopback addresses only (127.0.0.0/8, ::1, localhost)")
    return args


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class ServerProcess:
    """`yolor-deploy serve MODEL --port 0 ARGS` in a subprocess, ready when this returns."""

    def __init__(self, model: Path, args: list[str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "yolor_deploy.cli.main", "serve", str(model),
                                      "--port", "0", *args], stderr=subprocess.PIPE, text=True)
        self.url, self.grpc, self.lines = "", "", []
        found = threading.Event()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line.rstrip())
                if " at grpc://" in line:
                    self.grpc = line.split(" at grpc://", 1)[1].split()[0]
                if not self.url and " at http://" in line:
                    self.url = line.split(" at ", 1)[1].split()[0]
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 120
        while not found.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("server did not start:\n" + "\n".join(self.lines))
        while httpx.get(f"{self.url}/ready", timeout=10).status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit("server not ready:\n" + "\n".join(self.lines))
            time.sleep(0.1)

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(60)


def batch_metrics(url: str) -> tuple[float, float]:
    """(model calls, images) so far, from the server's batch-size histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    values = {s.name: s.value for fam in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
              for s in fam.samples if s.name.startswith("yolor_serve_batch_size_")}
    return values.get("yolor_serve_batch_size_count", 0.0), values.get("yolor_serve_batch_size_sum", 0.0)


def v2_body(data: bytes, model: str) -> tuple[bytes, dict[str, str]]:
    """An Open Inference Protocol REST infer body: `data` as a one-element `image_bytes` tensor, binary extension."""
    import json
    import struct

    head = json.dumps({"inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [1],
                                   "parameters": {"binary_data_size": len(data) + 4}}],
                       "outputs": [{"name": n, "parameters": {"binary_data": True}}
                                   for n in ("num_dets", "boxes", "scores", "classes")]}).encode()
    return head + struct.pack("<I", len(data)) + data, {"Inference-Header-Content-Length": str(len(head))}


async def run_grpc(server: ServerProcess, data: bytes, model: str, n: int, concurrency: int, deadline: float,
                   tally: Tally) -> None:
    """`n` ModelInfer calls with `image_bytes`, `concurrency` in flight, over one gRPC channel."""
    import tritonclient.grpc.aio as grpcclient

    todo = iter(range(n))
    blob = np.array([data], dtype=np.object_)
    client = grpcclient.InferenceServerClient(server.grpc)

    async def worker() -> None:
        for _ in todo:
            if time.monotonic() > deadline:
                tally.errors["time limit: not sent"] += 1
                continue
            inp = grpcclient.InferInput("image_bytes", [1], "BYTES")
            inp.set_data_from_numpy(blob)
            t0 = time.perf_counter()
            try:
                await client.infer(model, [inp])
            except Exception as e:  # noqa: BLE001 - counted by type
                tally.errors[type(e).__name__] += 1
                continue
            tally.latencies.append(time.perf_counter() - t0)

    calls0, images0 = batch_metrics(server.url)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    tally.seconds += time.perf_counter() - t0
    calls1, images1 = batch_metrics(server.url)
    await client.close()
    tally.calls += calls1 - calls0
    tally.images += images1 - images0


async def run_requests(url: str, data: bytes, n: int, concurrency: int, deadline: float, tally: Tally,
                       v2_model: str = "") -> None:
    """`n` detect requests (/v1/detect, or with `v2_model` an Open Inference Protocol REST infer), `concurrency`
    in flight, each on a kept-alive connection; into `tally`."""
    todo = iter(range(n))
    body, headers = v2_body(data, v2_model) if v2_model else (b"", {})

    async def worker(client: httpx.AsyncClient) -> None:
        for _ in todo:
            if time.monotonic() > deadline:
                tally.errors["time limit: not sent"] += 1
                continue
            t0 = time.perf_counter()
            try:
                r = (await client.post(f"{url}/v2/models/{v2_model}/infer", content=body, headers=headers)
                     if v2_model else await client.post(f"{url}/v1/detect", files=[("image", ("image.jpg", data))]))
            except httpx.HTTPError as e:
                tally.errors[type(e).__name__] += 1
                continue
            if r.status_code != 200:
                tally.errors[f"HTTP {r.status_code}"] += 1
                continue
            tally.latencies.append(time.perf_counter() - t0)
            if not v2_model:
                tally.batches[int(r.json()["batch"])] += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        calls0, images0 = batch_metrics(url)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        tally.seconds += time.perf_counter() - t0
        calls1, images1 = batch_metrics(url)
    tally.calls += calls1 - calls0
    tally.images += images1 - images0


def row(name: str, t: Tally) -> str:
    ms = np.array(t.latencies) * 1000 if t.latencies else np.array([np.nan])
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    rps = len(t.latencies) / t.seconds if t.seconds else 0.0
    calls = {k: round(v / k) for k, v in sorted(t.batches.items())}  # k answers per call of size k
    mean = t.images / t.calls if t.calls else float("nan")
    errors = sum(t.errors.values())
    return (f"{name:<44} {rps:7.1f} {p50:8.1f} {p90:8.1f} {p99:8.1f} {errors:6d} {mean:6.2f}  "
            + " ".join(f"{k}:{v}" for k, v in calls.items())
            + (f"  ({', '.join(f'{k} {v}' for k, v in t.errors.items())})" if errors else ""))


def default_model(imgsz: int, folder: Path) -> Path:
    from yolor_deploy.assets import trained_checkpoint
    from yolor_deploy.export import export_onnx

    out = folder / f"shapes-dynamic-{imgsz}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(trained_checkpoint(), out, imgsz=(imgsz, imgsz), dynamic=True)
    return out


def model_batch_ratio(model: Path, image: Path, batch: int, threads: int | None,
                      rounds: int = 5) -> tuple[float, float]:
    """The model alone (a Detector in this process, no HTTP): median ms per image at batch 1 and at `batch`, on
    `batch` copies of the image, interleaved; the ceiling on what batching can gain in the server."""
    from yolor_deploy.runtime import Detector, read_image

    im = read_image(image)
    dets = {b: Detector(model, batch_size=b, threads=threads) for b in (1, batch)}
    times: dict[int, list[float]] = {b: [] for b in dets}
    for r in range(rounds + 1):
        for b, det in dets.items():
            t0 = time.perf_counter()
            det([im] * batch)
            if r:  # the first round warms up
                times[b].append(1000 * (time.perf_counter() - t0) / batch)
    return float(np.median(times[1])), float(np.median(times[batch]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from yolor_deploy.assets import sample_image
    from yolor_deploy.sysinfo import cpu_line

    image = Path(args.image or sample_image())
    data = image.read_bytes()
    deadline = time.monotonic() + args.time_limit_s
    header = f"{'setting':<44} {'req/s':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>6} {'batch':>6}  " \
             f"calls by batch size"
    if args.url:
        t = Tally()
        asyncio.run(run_requests(args.url.rstrip("/"), data, args.requests, args.concurrency, deadline, t))
        print(f"load test: {args.requests} requests at concurrency {args.concurrency} to {args.url}, "
              f"image {image.name}\ncpu: {cpu_line()}\n{header}\n{row(args.url, t)}")
        return 0 if not t.errors else 1
    with tempfile.TemporaryDirectory(prefix="yolor-load-") as tmp:
        model = Path(args.model) if args.model else default_model(args.imgsz, Path(tmp))
        batching = ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
        if args.protocol != "v1":
            settings = {"v1 /v1/detect (multipart image)": [*batching, "--grpc-port", "0"],
                        f"{args.protocol} infer (image_bytes tensor)": []}  # the same server as v1
        elif args.modes:
            settings = {"latency, no batching (--max-batch 1)": ["--max-batch", "1"],
                        f"latency, batching (--max-batch {args.max_batch})": batching,
                        "throughput (--mode throughput --max-batch 1)": ["--max-batch", "1", "--mode", "throughput"]}
        elif args.engine == "ray":
            settings = {f"ray serve --replicas {n} (--max-batch {args.max_batch})":
                        [*batching, "--engine", "ray", "--replicas", str(n)] for n in (2, 1)}
            settings[f"plain serve (--max-batch {args.max_batch})"] = batching
        else:
            settings = {f"batching (--max-batch {args.max_batch} --max-wait-ms {args.max_wait_ms:g})": batching,
                        "no batching (--max-batch 1)": ["--max-batch", "1"]}
        common = ["--threads", str(args.threads)] if args.threads else []
        servers = {name: ServerProcess(model, extra + common) for name, extra in settings.items() if extra}
        if args.protocol != "v1":
            servers = dict.fromkeys(settings, next(iter(servers.values())))
        tallies = {name: Tally() for name in settings}
        try:
            per_round = [args.requests // args.rounds + (r < args.requests % args.rounds) for r in range(args.rounds)]
            for r, n in enumerate(per_round):
                order = list(settings) if r % 2 == 0 else list(reversed(settings))
                for name in order:
                    if name.startswith("v2-grpc"):
                        asyncio.run(run_grpc(servers[name], data, model.stem, n, args.concurrency, deadline,
                                             tallies[name]))
                    else:
                        v2 = model.stem if name.startswith("v2-http") else ""
                        asyncio.run(run_requests(servers[name].url, data, n, args.concurrency, deadline,
                                                 tallies[name], v2))
        finally:
            codes = [s.stop() for s in {id(s): s for s in servers.values()}.values()]
        one, many = model_batch_ratio(model, image, args.max_batch, args.threads) \
            if args.max_batch > 1 and args.engine == "local" and args.protocol == "v1" and not args.modes else (1, 1)
    print(f"load test: {args.requests} requests per setting at concurrency {args.concurrency}, {args.rounds} "
          f"interleaved rounds; image {image.name}; model {model.name}; servers exit {codes}")
    print(f"cpu: {cpu_line()} (client and servers on the same machine; model threads: "
          f"{args.threads or 'the runtime default'})")
    print(header)
    for name, t in tallies.items():
        print(row(name, t))
    rps = [len(t.latencies) / t.seconds if t.seconds else float("nan") for t in tallies.values()]
    if args.protocol != "v1":
        print(f"ratio {args.protocol} / v1 (throughput, one server): {rps[1] / rps[0]:.2f}x")
    elif args.modes:
        print(f"ratio throughput mode / latency mode (throughput): {rps[2] / rps[0]:.2f}x without batching, "
              f"{rps[2] / rps[1]:.2f}x against batching")
    elif args.engine == "ray":
        print(f"ratio 2 replicas / 1 replica (throughput): {rps[0] / rps[1]:.2f}x; "
              f"2 replicas / plain server: {rps[0] / rps[2]:.2f}x")
    else:
        print(f"ratio batching / no batching (throughput): {rps[0] / rps[1]:.2f}x")
    if args.protocol == "v1" and args.engine == "local" and not args.modes:
        print(f"the model alone (Detector, no HTTP), ms per image: batch 1 {one:.1f}, batch {args.max_batch} "
              f"{many:.1f} ({one / many:.2f}x)")
    return 0 if not any(t.errors for t in tallies.values()) and codes == [0] * len(codes) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
