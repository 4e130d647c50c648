#!/usr/bin/env bash
# Mutation testing of the code the correctness proof guards, from scratch (a benchmark-style job, not in .ci/run).
#
#   scripts/mutation.sh            # fresh run: wipe mutants/, mutate, test, score -> mutation-report.md
#   scripts/mutation.sh --resume   # keep mutants/ and mutmut's verdicts; re-test what changed or was not checked
#
# What is mutated and which killer tests run: [tool.mutmut] in pyproject.toml (only_mutate,
# pytest_add_cli_args_test_selection; one line each to add a file). Equivalent mutants, each with its reason:
# scripts/mutation_equivalent.toml. Environment: PYTHON (default: python on PATH), JOBS (default: nproc).
# mutmut imports the package from mutants/src (it puts that first on sys.path), so the editable install may
# point anywhere; do not set PYTHONPATH=src here.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
JOBS=${JOBS:-$(nproc)}
MUTMUT_VERSION=3.8.1

if ! "$PYTHON" -c "import mutmut, importlib.metadata as m; assert m.version('mutmut') == '$MUTMUT_VERSION'" 2>/dev/null; then
    "$PYTHON" -m pip install -q "mutmut==$MUTMUT_VERSION"
fi
MUTMUT="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/mutmut"

if [[ "${1:-}" != "--resume" ]]; then
    rm -rf mutants
fi
unset PYTHONPATH
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread per worker: JOBS workers share the cores

start=$(date +%s)
nice -n 15 "$MUTMUT" run --max-children "$JOBS" > mutants.log 2>&1 || { tail -n 30 mutants.log; exit 1; }
wall=$(( $(date +%s) - start ))
echo "mutmut run: ${wall} s (log: mutants.log)"

"$PYTHON" scripts/mutation_report.py --wall "$wall" --out mutation-report.md
