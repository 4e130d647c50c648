#!/usr/bin/env bash
# A long fuzzing run of the hostile-input properties (configs, checkpoints): YOLOR_FUZZ_SCALE times the
# suite's budget, random seeds. Usage: scripts/fuzz.sh [SCALE] (default 50; ~10 min on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
YOLOR_FUZZ_SCALE="${1:-50}" python -m pytest -q -p no:cacheprovider tests/cfg/test_config_fuzz.py \
  tests/checkpoint/test_checkpoint_fuzz.py "${@:2}"
