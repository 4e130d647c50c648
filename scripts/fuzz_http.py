"""Fuzz the HTTP surface of a real `yolor-deploy serve` against its own OpenAPI schema with schemathesis.

Starts the server on a free loopback port (the bundled trained model exported to ONNX unless --model is given),
runs `schemathesis run URL/openapi.json` with every check (or --checks), bounded in examples and time, with
`fuzz_http_hooks.py` making uploads real images, prints schemathesis's summary and one line of our own, stops
the server (SIGTERM, which must exit 0) and exits with schemathesis's status.

usage:
  python scripts/fuzz_http.py                          # all checks, 30 examples per operation, 120 s at most
  python scripts/fuzz_http.py --max-time 20 --checks not_a_server_error,status_code_conformance
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="model to serve (default: the bundled trained model)")
    p.add_argument("--max-examples", type=int, default=30, help="examples per operation (default 30)")
    p.add_argument("--max-time", type=int, default=120, help="seconds for the whole run at most (default 120)")
    p.add_argument("--checks", default="all", help="schemathesis checks (default all)")
    p.add_argument("--seed", type=int, default=1, help="schemathesis seed (default 1)")
    return p.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_model(folder: Path) -> Path:
    from yolor_deploy.assets import trained_checkpoint
    from yolor_deploy.export import export_onnx

    out = folder / "shapes-256-dynamic.onnx"
    export_onnx(trained_checkpoint(), out, imgsz=(256, 256), dynamic=True, verify=False)
    return out


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: the server exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("error: the server was not ready in time")


def main(argv=None) -> int:
    args = parse_args(argv)
    from yolor_deploy.sysinfo import cpu_line

    with tempfile.TemporaryDirectory() as d:
        model = args.model or default_model(Path(d))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "yolor_deploy.cli.main", "serve", str(model), "--port",
                                   str(port)], stderr=subprocess.PIPE, text=True)
        try:
            wait_ready(url, server)
            env = {**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_http_hooks",
                   "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
            st = Path(sys.executable).with_name("schemathesis")
            cmd = [str(st) if st.exists() else "schemathesis", "run", f"{url}/openapi.json", "--checks", args.checks,
                   "--max-examples", str(args.max_examples), "--max-time", str(args.max_time), "--seed",
                   str(args.seed), "--workers", "2", "--no-color"]
            t0 = time.monotonic()
            run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.max_time + 300)
            out = run.stdout + run.stderr
            print(out[out.find("=== SUMMARY"):] if "=== SUMMARY" in out else out[-4000:])
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server_rc = server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
                server_rc = -9
    failures = dict(re.findall(r"(ST\d+) [^:\n]+: (\d+)", out))
    cases = re.search(r"(\d+) generated", out)
    print(f"fuzz_http: schemathesis checks {args.checks}, {cases.group(1) if cases else '?'} test cases in "
          f"{time.monotonic() - t0:.0f} s, failures {failures or 'none'}, 5xx "
          f"{'found' if 'Server error' in out else 'none'}; server exit {server_rc}; {cpu_line()}")
    return run.returncode or (1 if server_rc != 0 else 0)


if __name__ == "__main__":
    sys.exit(main())
