#!/usr/bin/env bash
# Run every reproduction grid in priority order, resumably: stop it any time (Ctrl-C, a killed
# session) and start it again - finished runs are skipped, a half-done run resumes from its
# checkpoint. Uniform and ATS of every cell come first, then what each claim needs, then the rest.
# Usage: experiments/run_all.sh [extra sweep options, e.g. --executor process --workers 2, --scale gpu]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TQDM_DISABLE=${TQDM_DISABLE:-1}
failed=0   # a grid with a failed run (e.g. a diverged training) does not stop the later grids
sweep() { $PY -m atslib sweep "experiments/$1.yaml" --out "results/$1" "${@:2}" || failed=1; }
sweep pretrain "$@"
sweep noisy --only uniform ats "$@"
sweep budget --only b16-1shot b16-5shot uniform ats "$@"
sweep noisy --only rank-sim-loss ats-cheap "$@"
sweep ablations --only 1shot 5shot ats rank-sim-loss ats-loss-only ats-sim-only "$@"
sweep noisy "$@"
sweep noise-ratio --only uniform ats rank-sim-loss "$@"
sweep budget --only uniform ats rank-sim-loss gcp "$@"
sweep molecules --only eta4 uniform ats "$@"
sweep ablations "$@"
sweep molecules --only uniform ats "$@"
sweep beyond "$@"
sweep noise-ratio "$@"
sweep budget "$@"
sweep molecules "$@"
sweep long "$@"                 # sized for a GPU: about 20 minutes per ATS run on the 2-core CPU
experiments/run_decisive.sh "$@" || failed=1   # the seed-level study (2026-11-30)
exit $failed
