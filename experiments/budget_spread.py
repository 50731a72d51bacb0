"""The pre-registered interim look of the budget test (REPRODUCTION.md, plan of 2026-12-02): after 10
seeds, the spread (sd) of ATS minus each fixed rule, paired over seeds 0-9, *without the means*; if the
largest exceeds 1.3 points the grid extends to seeds 20-29. Prints the spreads and the decision only.
    python experiments/budget_spread.py [--seeds 10]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from atslib.study.reproduction import BUDGET_FIXED, load_results, seed_differences  # noqa: E402

LIMIT = 1.3   # points: above it, 30 seeds instead of 20

a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
a.add_argument("--seeds", type=int, default=10)
args = a.parse_args()
df = load_results(Path(__file__).resolve().parents[1] / "results")
df = df[~((df.grid == "budget-binding") & (df.cell == "b16")) | (df.seed < args.seeds)]
sds = {}
for m in BUDGET_FIXED:
    d = seed_differences(df, "budget-binding", "b16", "ats", m) * 100
    if len(d) < args.seeds:
        sys.exit(f"budget_spread: ats vs {m} has {len(d)} paired seeds of the {args.seeds} the look needs; wait")
    sds[m] = float(np.std(d, ddof=1))
for m, s in sds.items():
    print(f"sd(ATS - {m}) over seeds 0-{args.seeds - 1}: {s:.2f} pts")
worst = max(sds.values())
print(f"largest {worst:.2f} pts {'>' if worst > LIMIT else '<='} {LIMIT}: "
      + ("extend the grid to seeds 20-29 (30 seeds)" if worst > LIMIT else "20 seeds, as planned"))
