# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · ATS and its ablations on noisy tasks
#
# The paper's ablation table asks which parts of ATS matter. All runs share one task stream
# (the pool at step t is the same for every method), the same validation tasks and the same
# 600 meta-test tasks; only the way B tasks are chosen from the pool of P candidates differs:
#
# | method | chooses tasks by |
# |---|---|
# | `uniform` | B of the pool uniformly |
# | `ats` | the neural scheduler on (query loss after adaptation, gradient similarity), trained by REINFORCE |
# | `ats-random-phi` | the same network, never trained |
# | `rank-sim-loss` | no network: top B of z(similarity) − z(loss) |
# | `ats-loss-only`, `ats-sim-only` | the scheduler sees one factor |
# | `ats-reweight` | no sampling: all P tasks weighted by the scheduler, φ trained through the look-ahead |
#
# `noise_auc` measures how well each method's scores rank clean above noisy pool tasks (0.5 =
# chance); `clean_share` is the share of trained-on tasks that were clean (uniform ≈ 0.4 at noise
# ratio 0.6). By default the notebook reads the committed runs in `results/demo/`
# (`python -m atslib.demo` made them); `TRAIN = True` retrains them at `STEPS`.
#
# **How long.** Run All takes about 15 s (reading the committed runs). `TRAIN = True` takes about
# an hour on two CPU cores (seven runs of 400 steps; ATS about 0.5 s a step). To *watch* methods
# train at a noise ratio of your choice in two minutes, use the race in `07_race`.

# %% tags=["parameters"]
SMOKE = False
TRAIN = False
STEPS = 400
RUNS_DIR = "../results/demo"
FIG_DIR = None

# %%
from pathlib import Path

import pandas as pd

from atslib import demo, plots, reports
from atslib.runs import load_run

runs_dir = Path(RUNS_DIR)
if SMOKE and TRAIN:
    STEPS = 4
if TRAIN:
    demo.train_demo(demo.ABLATIONS, STEPS, runs_dir)
names = [m for m in demo.ABLATIONS if (runs_dir / m / "summary.json").is_file()]
runs = {m: load_run(runs_dir / m, with_model=False) for m in names}
summ = reports.summaries([runs_dir / m for m in names])
summ["method"] = names
print(f"{len(names)} runs from {runs_dir.resolve()}; steps: {sorted(set(summ['steps']))}")

# %% [markdown]
# ## Test accuracy, noise detection and clean share

# %%
table = reports.method_table(summ, order=demo.ABLATIONS)
plots.save_table(reports.formatted(table), "03_ablations", FIG_DIR)
reports.formatted(table)

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 2]})
plots.method_bars(table, ax=axes[0])
axes[0].set_title("test accuracy, 5-way 1-shot, noise ratio 0.6 (95% CI over 600 tasks)", fontsize=9)
axes[1].bar(range(len(table)), table["noise_auc"], color=[plots.METHOD_COLORS.get(m) for m in table["method"]])
axes[1].axhline(0.5, ls=":", color="grey")
axes[1].set_xticks(range(len(table)), table["method"], rotation=30, ha="right")
axes[1].set_ylabel("noise AUC (2nd half of training)"), axes[1].set_ylim(0, 1.05)
fig.tight_layout()
plots.savefig(fig, "03_ablations", FIG_DIR)

# %% [markdown]
# ## Probability mass on noisy tasks over training
# Uniform puts ≈ 60% of its mass on noisy tasks (their share of the pool); a scheduler that
# detects them pushes this down.

# %%
fig, ax = plots.trajectory({m: r["history"] for m, r in runs.items()}, "noisy_mass",
                           ylabel="probability mass on noisy pool tasks")
plots.savefig(fig, "03_noisy_mass", FIG_DIR)

# %% [markdown]
# ## Paired comparison on the same meta-test tasks
# Every run is scored on the same 600 tasks, so each method can be compared with uniform task by
# task (paired t-test).

# %%
from atslib.metrics import paired_t

rows = []
base = runs["uniform"]["test_scores"]["acc"] if "uniform" in runs else None
for m, r in runs.items():
    if base is not None and m != "uniform":
        d, p = paired_t(r["test_scores"]["acc"], base)
        rows.append({"method": m, "minus uniform (points)": round(100 * d, 2), "paired p": f"{p:.2g}"})
pd.DataFrame(rows)
