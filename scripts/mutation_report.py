"""Score a finished mutmut run (scripts/mutation.sh): per file and overall, survivors, equivalents.

Reads mutmut's verdicts from mutants/**/*.py.meta and the equivalent mutants listed, with their reason and
the mutated line, in scripts/mutation_equivalent.toml. A listed mutant counts as equivalent only while it
survives and its mutated line is still the one recorded (`mutmut show`); otherwise it is reported as stale.
Score = (killed + timeout + crashed) / (mutants - equivalent): a timeout is a mutant that hangs the tests (a
mutated loop), crashed one that kills the test process (a segfault in the exporter): both are detected.

    python scripts/mutation_report.py [--wall SECONDS] [--out mutation-report.md]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "scripts" / "mutation_equivalent.toml"
TARGET = 0.95


def mutant_show(name: str) -> str:
    mutmut = Path(sys.executable).with_name("mutmut")
    return subprocess.run([str(mutmut), "show", name], cwd=ROOT, capture_output=True, text=True).stdout


def mutated_lines(diff: str) -> list[str]:
    return [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    import platform
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def load_verdicts(only: list[str]) -> dict[str, dict[str, str]]:
    from mutmut.stats import status_by_exit_code

    by_file: dict[str, dict[str, str]] = {}
    for src in only:
        meta = ROOT / "mutants" / (src + ".meta")
        if not meta.exists():
            raise SystemExit(f"no mutmut results for {src} ({meta} missing): run scripts/mutation.sh first")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        by_file[src] = {name: status_by_exit_code[code] for name, code in codes.items()}
    return by_file


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wall", type=float, default=None, help="wall time of the run in seconds (for the report)")
    ap.add_argument("--out", default="mutation-report.md")
    args = ap.parse_args()

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    only = cfg["only_mutate"]
    equivalent = tomllib.loads(EQUIVALENT.read_text()) if EQUIVALENT.exists() else {}
    verdicts = load_verdicts(only)

    rows, survivors, equiv_rows, stale = [], [], [], []
    total = Counter()
    for src, by_name in verdicts.items():
        c = Counter()
        by_number = sorted(by_name.items(), key=lambda kv: (kv[0].rsplit("_", 1)[0], int(kv[0].rsplit("_", 1)[1])))
        for name, status in by_number:
            if status == "survived" and name in equivalent:
                diff = mutant_show(name)
                line = equivalent[name]["line"].strip()
                if line in mutated_lines(diff):
                    c["equivalent"] += 1
                    equiv_rows.append((name, line, equivalent[name]["reason"]))
                    continue
                stale.append(f"{name}: recorded line {line!r} is not its mutation any more")
            elif name in equivalent:
                stale.append(f"{name}: listed as equivalent but {status}")
            c[status] += 1
            if status not in ("killed", "timeout", "segfault"):
                survivors.append((name, status, mutated_lines(mutant_show(name))))
        c["total"] = sum(v for k, v in c.items() if k != "total")
        rows.append((src, c))
        total.update(c)
    rows.append(("**all**", total))

    def score(c: Counter) -> float:
        denom = c["total"] - c["equivalent"]
        return (c["killed"] + c["timeout"] + c["segfault"]) / denom if denom else 1.0

    from importlib.metadata import version

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# Mutation testing report ({now})", "",
           f"mutmut {version('mutmut')}, Python {sys.version.split()[0]}, CPU: {cpu_model()}"
           + (f", wall time of the run: {args.wall:.0f} s" if args.wall is not None else ""), "",
           "Score = (killed + timeout + crashed) / (mutants - equivalent); target >= 95 %.", "",
           "| file | mutants | killed | timeout | crashed | survived | other | equivalent | score |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    known = ("total", "killed", "timeout", "segfault", "survived", "equivalent")
    for src, c in rows:
        other = sum(v for k, v in c.items() if k not in known)
        out.append(f"| {src} | {c['total']} | {c['killed']} | {c['timeout']} | {c['segfault']} | {c['survived']} | "
                   f"{other} | {c['equivalent']} | {100 * score(c):.1f} % |")
    out += ["", f"## Survivors not listed as equivalent ({len(survivors)})", ""]
    out += [f"- `{n}` ({s}): `{' / '.join(lines)}`" for n, s, lines in survivors] or ["none"]
    out += ["", f"## Equivalent mutants ({len(equiv_rows)})", ""]
    out += [f"- `{n}`: `{line}`: {reason}" for n, line, reason in equiv_rows] or ["none"]
    if stale:
        out += ["", "## Stale entries in scripts/mutation_equivalent.toml", ""] + [f"- {s}" for s in stale]
    text = "\n".join(out) + "\n"
    (ROOT / args.out).write_text(text)
    print(text)
    return 0 if score(total) >= TARGET and not stale else 1


if __name__ == "__main__":
    sys.exit(main())
