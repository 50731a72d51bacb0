#!/usr/bin/env bash
# The runs of the "verdicts that hold" study, in priority order, resumably (stop it any time and start
# it again: finished runs are skipped, a half-done run resumes from its checkpoint):
#  1. the two extra clean-pretrained starts (seeds 3, 4);
#  2. the molecules grid (eta 4 first: notebook 08 reads it) and the drug ablation cells, rerun
#     with the numeric safeguards (fast: about 45 minutes on 2 cores);
#  3. the decisive long study's 1-shot cell, headline methods first (experiments/decisive.yaml);
#  4. (before 3) ats-reweight at equal batch on images;
#  5. the rest of the decisive study: 1-shot controls, 5-shot (headline methods first), the
#     ATS with the authors' warm-up, the 3000-step 1-shot cell,
#     seeds 5-9 of the headline methods (1-shot, 5-shot), and seeds 3-4 of the regimes grid.
# Usage: experiments/run_decisive.sh [extra sweep options, e.g. --executor process --workers 2]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TQDM_DISABLE=${TQDM_DISABLE:-1}
failed=0
sweep() { $PY -m atslib sweep "experiments/$1.yaml" --out "results/$1" "${@:2}" || failed=1; }
sweep pretrain "$@"
sweep molecules --only eta4 "$@"
sweep molecules "$@"
sweep ablations --only drug-eta4 drug-eta4-reweight-all "$@"
sweep ablations --only 1shot-reweight-top 5shot-reweight-top "$@"
sweep decisive --only 1shot uniform ats rank-sim-loss spl --seeds 0 1 2 3 4 "$@"
sweep decisive --only 1shot --seeds 0 1 2 3 4 "$@"
sweep decisive --only 5shot uniform ats rank-sim-loss spl --seeds 0 1 2 3 4 "$@"
sweep decisive --only 5shot --seeds 0 1 2 3 4 "$@"
sweep decisive --only 1shot-warmup "$@"
sweep decisive --only 1shot-3000 "$@"
sweep decisive --only 1shot "$@"                # seeds 5-9 of the headline methods
sweep decisive --only 5shot "$@"
sweep regimes "$@"                               # seeds 3-4 of the regimes grid (0-2 are done)
exit $failed
