"""A real `yolor-deploy serve` process for the tests: started on a free loopback port (`--port 0`, the port read
from its start line), waited for until /ready, stopped with a signal. Plus the bundled trained model exported
once per test session (dynamic and static batch, 256) and a Prometheus text parser."""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from functools import cache
from pathlib import Path

import httpx

import yolor_deploy

IMGSZ = 256
_DIR = Path(tempfile.mkdtemp(prefix="yolor-serve-models-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)
SRC = Path(yolor_deploy.__file__).resolve().parents[1]


@cache
def trained_onnx(dynamic: bool = True) -> Path:
    """The bundled trained shapes model exported at 256 (dynamic batch/size, or static batch 1), unverified:
    the export is verified by tests/export; here it only has to be a real model."""
    from yolor_deploy.assets import trained_checkpoint
    from yolor_deploy.export import export_onnx

    out = _DIR / f"shapes-{'dynamic' if dynamic else 'static'}-{IMGSZ}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(trained_checkpoint(), out, imgsz=(IMGSZ, IMGSZ), dynamic=dynamic, verify=False)
    return out


class Server:
    """`yolor-deploy serve MODEL --port 0 ARGS...` in a subprocess; `url` once its start line is printed."""

    def __init__(self, model: Path, *args: str, ready_timeout: float = 60.0):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([sys.executable, "-m", "yolor_deploy.cli.main", "serve", str(model),
                                      "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self._url = threading.Event()
        self.url = ""
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        try:
            self.wait_ready(ready_timeout)
        except BaseException:
            self.kill()
            raise

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if not self.url and " at http://" in line:
                self.url = line.split(" at ", 1)[1].split()[0]
                self._url.set()

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._url.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start (exit {self.proc.poll()}):\n{self.stderr}")
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready within {timeout} s:\n{self.stderr}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig`, wait for the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def metric(values: dict, name: str, **labels: str) -> float:
    """One sample (0 when absent: a counter never incremented has no labelled sample yet)."""
    return values.get((name, tuple(sorted(labels.items()))), 0.0)
