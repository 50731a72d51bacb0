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
# # 04 · Query loss vs gradient similarity: what the scheduler sees
#
# ATS scores each candidate task by two meta-model factors: the **query loss after inner-loop
# adaptation** and the **similarity of the support- and query-set gradients** at θ. The paper's
# analysis: under noise, noisy tasks sit at *high loss and low similarity* (their support set
# points the model somewhere their query set does not); with a limited budget, the valuable
# tasks sit at *high loss and high similarity* (hard but consistent). Each point below is one
# pool task at an early, middle and late step, coloured by the probability the scheduler gave
# it; crosses are noisy tasks.
#
# By default (`SOURCE = "study"`) it reads the reproduction study's ATS runs: the `noisy` grid's
# 1-shot cell (noise 0.6, 150 steps from the clean-pretrained start) and the `budget` grid's
# 16-class 1-shot cell (clean tasks, 300 steps from scratch); the scatter shows seed `SEED`, the
# AUCs and correlations pool all seeds. `SOURCE = "demo"` reads the single-seed demo runs
# `results/demo/ats` and `results/demo/ats-budget16` (400 steps from scratch). `SIM` picks the
# similarity: `sim_cos` (cosine) or `sim_dot` (the paper's inner product). Run All takes about
# 15 s; nothing trains.

# %% tags=["parameters"]
SMOKE = False
SOURCE = "study"  # "study": the noisy and budget grids' ATS runs; "demo": the single-seed runs in RUNS_DIR
RESULTS_DIR = "../results"
SEED = 0  # study: the seed whose pools are drawn
RUNS_DIR = "../results/demo"
NOISY_RUN = "ats"
BUDGET_RUN = "ats-budget16"
SIM = "sim_cos"
FIG_DIR = None

# %%
from pathlib import Path

import numpy as np

from atslib.display import plots
from atslib.metrics import auc
from atslib.runs import load_run

from atslib.study import reproduction as R

if SOURCE not in ("study", "demo"):
    raise ValueError(f"SOURCE {SOURCE!r}; allowed: 'study', 'demo'")
runs_dir = Path(RUNS_DIR)
if SOURCE == "demo":
    pools = {name: load_run(runs_dir / name, with_model=False)["pools"] for name in (NOISY_RUN, BUDGET_RUN)
             if (runs_dir / name / "pool.csv.gz").is_file()}
    all_seeds = pools
    where = {NOISY_RUN: "demo run, seed 0, 400 steps from scratch", BUDGET_RUN: "demo run, seed 0, 400 steps from scratch"}
else:
    df_runs = R.load_results(RESULTS_DIR)
    cells = {NOISY_RUN: ("noisy", "1shot"), BUDGET_RUN: ("budget", "b16-1shot")}
    all_seeds = {k: R.pool_records(df_runs, g, c, "ats") for k, (g, c) in cells.items()}
    pools = {k: v[v["seed"] == SEED] for k, v in all_seeds.items() if len(v)}
    where = {k: f"grid {g}/{c}, ATS seed {SEED} of {all_seeds[k]['seed'].nunique()}, "
                f"{int(R.cell_stats(df_runs, g, c, ('ats',))['steps'].iloc[0])} steps" for k, (g, c) in cells.items()}


def three_steps(df):
    s = np.sort(df["step"].unique())
    return [s[0], s[len(s) // 2], s[-1]]


# %% [markdown]
# ## Noisy tasks: high loss, low similarity

# %%
df = pools[NOISY_RUN]
fig, _ = plots.loss_sim_scatter(df, three_steps(df), sim=SIM, title="noise 0.6,")
fig.suptitle(where[NOISY_RUN], fontsize=8, y=1.02)
plots.savefig(fig, "03_scatter_noisy", FIG_DIR)
late = all_seeds[NOISY_RUN]
late = late[late["step"] >= late["step"].max() / 2]
clean = ~late["noisy"].astype(bool)
print("second half of training, every seed, clean vs noisy pool tasks:")
print(f"  mean loss {late.loc[clean, 'loss'].mean():.3f} vs {late.loc[~clean, 'loss'].mean():.3f}; "
      f"mean {SIM} {late.loc[clean, SIM].mean():.3f} vs {late.loc[~clean, SIM].mean():.3f}")
print(f"  AUC of -loss {auc(-late['loss'], clean):.3f}, of {SIM} {auc(late[SIM], clean):.3f}, "
      f"of the scheduler's probability {auc(late['prob'], clean):.3f}")

# %% [markdown]
# ## Limited budget: which tasks does the scheduler favour?
# All tasks are clean here; the colour shows where the scheduler puts its probability.

# %%
if BUDGET_RUN in pools:
    df = pools[BUDGET_RUN]
    fig, _ = plots.loss_sim_scatter(df, three_steps(df), sim=SIM, title="budget 16,")
    fig.suptitle(where[BUDGET_RUN], fontsize=8, y=1.02)
    plots.savefig(fig, "03_scatter_budget", FIG_DIR)
    late = all_seeds[BUDGET_RUN]
    late = late[late["step"] >= late["step"].max() / 2]
    r = late[["prob", "loss", SIM]].corr(method="spearman")["prob"]
    print(f"every seed, 2nd half: Spearman correlation of the scheduler's probability with loss {r['loss']:.3f}, "
          f"with {SIM} {r[SIM]:.3f} (pooled over steps; REPRODUCTION.md averages within pools)")

# %% [markdown]
# ## Explore (JupyterLab)
# A slider over the logged steps and a menu over runs redraw the scatter.

# %%
from atslib.display import widgets

widgets.scatter_explorer(pools, sim=SIM)
