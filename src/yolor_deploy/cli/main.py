"""`yolor-deploy` console script: one subcommand per module in this package.

Each module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`, and imports
heavy dependencies (torch, onnxruntime) only inside `run`, so `--help` is instant.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import io
import os
import re
import sys

COMMANDS = {
    "demo": "yolor_deploy.cli.demo",
    "info": "yolor_deploy.cli.info",
    "export": "yolor_deploy.cli.export",
    "verify": "yolor_deploy.cli.verify",
    "diff": "yolor_deploy.cli.diff",
    "predict": "yolor_deploy.cli.predict",
    "stream": "yolor_deploy.cli.stream",
    "bench": "yolor_deploy.cli.bench",
    "val": "yolor_deploy.cli.val",
    "quantize": "yolor_deploy.cli.quantize",
    "serve": "yolor_deploy.cli.serve",
    "triton": "yolor_deploy.cli.triton",
    "optimize": "yolor_deploy.cli.optimize",
}


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" on a mistyped subcommand or option (Python 3.11 has no suggest_on_error)."""

    def error(self, message: str):  # type: ignore[override]
        words: list[str] = []
        for action in self._actions:
            words += action.option_strings
            if isinstance(action, argparse._SubParsersAction):
                words += list(action.choices)
        bad = re.findall(r"invalid choice: '([^']+)'|unrecognized arguments: (.+)", message)
        tried = [w for pair in bad for w in (pair[0], *pair[1].split()) if w]
        hints = sorted({m for t in tried for m in difflib.get_close_matches(t.split("=")[0], words, n=1, cutoff=0.6)})
        super().error(message + (f" (did you mean {', '.join(hints)}?)" if hints else ""))


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(
        prog="yolor-deploy",
        description="Load YOLOR checkpoints safely, export verified ONNX, detect and benchmark without PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"yolor-deploy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:  # a subcommand whose optional deps are missing
            if e.name and e.name.startswith("yolor_deploy"):
                continue
            raise
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..errors import YolorDeployError, first_line

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # report unknown options with the subcommand's own usage and a suggestion
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        target = sub.choices.get(args.command, parser) if sub is not None and args.command else parser
        target.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    try:
        return int(args._run(args) or 0)
    except YolorDeployError as e:
        if e.internal and os.environ.get("YOLOR_DEBUG"):  # a bug of ours: the traceback, with its cause
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `yolor-deploy info --json | head`: the reader left; nothing more to say
        try:  # point stdout at /dev/null so the interpreter's final flush does not fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass
        return 0
    except OSError as e:  # a disk or permission failure outside the paths that report their own
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - never a traceback for the user; YOLOR_DEBUG=1 shows it
        if os.environ.get("YOLOR_DEBUG"):
            raise
        print(f"error: unexpected {type(e).__name__}: {first_line(e)} (set YOLOR_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
