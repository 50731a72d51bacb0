#!/usr/bin/env bash
# The decisive long study (experiments/decisive.yaml) in priority order, resumably: the two extra
# clean-pretrained starts (seeds 3, 4), the 1-shot cell, the 5-shot cell, then the 3000-step cell.
# Usage: experiments/run_decisive.sh [extra sweep options, e.g. --executor process --workers 2]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TQDM_DISABLE=${TQDM_DISABLE:-1}
failed=0
sweep() { $PY -m atslib sweep "experiments/$1.yaml" --out "results/$1" "${@:2}" || failed=1; }
sweep pretrain "$@"
sweep decisive --only 1shot uniform ats rank-sim-loss spl "$@"
sweep decisive --only 1shot "$@"
sweep decisive --only 5shot "$@"
sweep decisive --only 1shot-3000 "$@"
exit $failed
