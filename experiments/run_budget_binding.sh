#!/usr/bin/env bash
# The pre-registered limited-budget test, seed by seed (every method of a seed, then the next), so
# that whatever has finished when a session stops is a set of complete paired seeds. Resumable:
# finished runs are skipped. Then the oracle of the decisive setting and the 1000-step ablations.
#   nohup experiments/run_budget_binding.sh > build/budget-binding.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0
sweep() { $PY -m atslib sweep "$@" --quiet; }
sweep experiments/decisive.yaml --out results/decisive --only 1shot oracle-clean
for s in $(seq 0 29); do     # 20-29: the interim look's rule (2026-12-04)
  sweep experiments/budget-binding.yaml --out results/budget-binding --only b16 --seeds $s
  if [ "$s" -lt 5 ]; then sweep experiments/budget-binding.yaml --out results/budget-binding --only b64 --seeds $s; fi
done
for m in ats-loss-only ats-sim-only ats-reweight ats-random-phi; do
  sweep experiments/decisive.yaml --out results/decisive --only 1shot $m
done
