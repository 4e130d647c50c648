"""Small helpers shared by subcommands (argument types, size parsing)."""
from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..contract import RuntimeHint


def imgsz_arg(values: list[int] | None, default: int = 640) -> tuple[int, int]:
    """`--imgsz N` or `--imgsz H W` -> (H, W) (the contract's rule, shared with the runtime)."""
    from ..contract import parse_imgsz
    from ..errors import InputError

    try:
        return parse_imgsz(values, default)
    except ValueError as e:
        raise InputError(f"--imgsz: {e}") from None


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint: upstream paper (.pt, pickled model), upstream main "
                                      "(.pt state_dict, needs --cfg), or our own saved format")
    p.add_argument("--cfg", default=None, help="architecture for main-branch checkpoints: a variant name "
                                               "(yolor_p6, yolor_w6, yolor_csp, yolor_csp_x) or a .cfg file")


def wide_console():
    """A rich Console; when writing to a log or pipe (no terminal, no COLUMNS), 150 columns wide so
    report tables are not squeezed to 80."""
    import os

    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=150)
    return console


def add_inference_size_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--imgsz", type=int, nargs="+", metavar="N", default=None,
                   help="inference size, N or H W, for dynamic models and checkpoints (default: the "
                        "export size, else 640); a static model uses its own size")


def add_backend_arguments(p: argparse.ArgumentParser) -> None:
    """Options that pick and tune the backend of `predict`, `bench`, `val` (ONNX Runtime, OpenVINO or torch)."""
    p.add_argument("--backend", default="auto", metavar="NAME",
                   help="auto (default: what the model's own metadata says, e.g. optimize's best.*; else ONNX "
                        "Runtime for .onnx, OpenVINO for .xml IR, PyTorch for .pt), onnxruntime, "
                        "openvino[:DEVICE] (runs .onnx too; e.g. openvino:GPU), torch")
    p.add_argument("--hint", default=None, metavar="REPORT",
                   help="with --backend auto: run the model as this optimize report.json measured it (backend, "
                        "precision, threads); the report must name the model's file. Never read unless given")
    p.add_argument("--providers", default=None,
                   help="ONNX Runtime execution providers, comma-separated (cpu, cuda, tensorrt, "
                        "openvino, or full names; default: cuda if available, then cpu)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads, ORT and torch (default: runtime's)")
    p.add_argument("--cfg", default=None, help="config for main-branch checkpoints (variant or .cfg)")


@contextlib.contextmanager
def warnings_to_stderr() -> Iterator[None]:
    """Show Python warnings as one line `warning: <message>` on stderr while inside."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def working(what: str) -> Iterator[None]:
    """A spinner with `what` on stderr while a step that can take seconds runs (a terminal only: pipes
    and logs stay clean)."""
    from rich.console import Console

    err = Console(stderr=True)
    if not err.is_terminal:
        yield
        return
    with err.status(what):
        yield


def progress_bar(label: str, unit: str = "images"):
    """A rich progress bar on stderr (a terminal only) with done/total, rate and time left; use as
    `with progress_bar("val") as bar: task = bar.add_task(label, total=N); bar.advance(task, n)`."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    err = Console(stderr=True)
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                    RateColumn(unit), TimeRemainingColumn(), console=err, transient=True,
                    disable=not err.is_terminal)


def RateColumn(unit: str):  # noqa: N802 - reads like the rich columns it sits beside
    """A rich column showing the task's speed as `12.3 images/s`."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class _Rate(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:.1f} {unit}/s" if task.speed else f"- {unit}/s", style="cyan")

    return _Rate()


def runtime_hint(args: argparse.Namespace, model: str | Path) -> RuntimeHint | None:
    """`--hint REPORT`: the runtime settings the optimize report recorded for `model` (None without --hint)."""
    if getattr(args, "hint", None) is None:
        return None
    from ..runtime.backends.report_hint import read_report_hint

    return read_report_hint(args.hint, model)
