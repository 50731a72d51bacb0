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
# # 08 · Beyond the paper's noise: where could learning the schedule matter?
#
# Under the paper's noise model a noisy task's support labels are replaced; at 5 ways and flip
# probability 0.8 they become nearly random, so the query loss after adaptation alone flags noisy
# tasks, and a fixed ranking (`rank-sim-loss`, `spl`) gets from step 0 what ATS must learn by
# REINFORCE. A learned scheduler can only earn its cost where a fixed rule is wrong. This notebook
# looks at four task distributions (the cells of `experiments/regimes.yaml`):
#
# | regime | meta-train tasks | bad tasks |
# |---|---|---|
# | `support` | 60% noisy: support labels corrupted (the paper) | noisy |
# | `query` | 60% noisy: *query* labels corrupted (the authors' released ATS loader) | noisy |
# | `hard-mix` | 40% noisy, 30% **hard-but-clean** (mutually confusable classes), 30% ordinary | noisy |
# | `ood` | 50% from a **shifted domain** (drawings rotated 90°, clean labels) | shifted |
#
# Hard tasks are clean and have high loss: a loss ranking wrongly avoids them. Shifted tasks are
# clean and need not have high loss: a loss ranking cannot flag them. `hard-mix` is tested on two
# meta-test distributions, random tasks and hard tasks built the same way from meta-test classes.
# Confusability is the pairwise error of a nearest-class-mean classifier in pixel space, per split
# (`atslib.tasks.confusion`).
#
# **Runs**: the `regimes` grid, 1-shot 5-way, every method from the clean-pretrained start
# `results/pretrain/1shot/uniform-s<seed>`, **300 steps** (the CPU scale; the 1000 steps
# did not fit beside the decisive study on 2 cores), 10 queries per class, pool 10, meta-batch 2,
# seeds as the tables say. Every method with seed *s* sees the same pool stream, so tests are
# paired over seeds (level 0.01). Run All takes about 20 s; nothing trains.

# %% tags=["parameters"]
SMOKE = False  # no effect: the notebook reads committed runs
RESULTS_DIR = "../results"
SEED = 0  # the seed whose pools the scatter draws
FIG_DIR = None

# %%
import numpy as np
import pandas as pd

from atslib.display import plots, widgets
from atslib.study import regimes as RG
from atslib.data import load_images

data = load_images(None)
df = RG.load(RESULTS_DIR)
seeds = sorted(df["seed"].unique().tolist()) if len(df) else []
steps = int(df["steps"].max()) if len(df) else 0
SOURCE = (f"grid regimes, {steps} steps from the clean-pretrained start, seeds {seeds}" if len(df)
          else "grid regimes: no finished runs")
print(SOURCE, f"- {len(df)} finished runs")

# %% [markdown]
# ## What each regime's tasks look like
# One task of each kind from a pool of the regime (S: the support image of each class, Q: its
# first query; a corrupted label in red with the true one in brackets).

# %%
pools_shown = {r: RG.example_pool(r, data, n=40, seed=SEED) for r in RG.REGIMES}
fig = RG.kinds_figure(pools_shown["hard-mix"], data.names, "hard-mix: one ordinary, one noisy and one hard-clean task")
plots.savefig(fig, "09_regimes_tasks", FIG_DIR)
fig

# %% [markdown]
# ## What the scheduler sees: loss vs gradient similarity per regime
# Pool tasks of ATS's runs in the second half of training (seed `SEED`), coloured by ATS's
# sampling probability; one marker per kind.

# %%
pool_recs = {r: RG.pool_records(df, RG.GRID, r, "ats") for r in RG.REGIMES}
fig, axes = plots._plt().subplots(1, len(RG.REGIMES), figsize=(4.0 * len(RG.REGIMES), 3.4), squeeze=False)
sc = None
for i, (ax, r) in enumerate(zip(axes[0], RG.REGIMES)):
    p = pool_recs[r]
    p = p[p["seed"] == SEED] if len(p) else p
    _, s = RG.kind_scatter(p, ax=ax, title=f"{r} (ATS, seed {SEED})", ylabel=i == 0)
    sc = s or sc
if sc is not None:
    fig.colorbar(sc, ax=list(axes[0]), fraction=0.02, label="ATS sampling probability")
fig.suptitle(f"pool tasks, second half of training - {SOURCE}", fontsize=9)
plots.savefig(fig, "09_regimes_scatter", FIG_DIR)
fig

# %% [markdown]
# ## Can a factor tell bad tasks from good ones?
# AUC against the bad-task flag (noisy or shifted; hard-clean counts as good), second half of
# training, all seeds of ATS's runs: the loss alone (low = good), the similarity alone (high =
# good) and ATS's probability. In `hard-mix`, the last three columns ask only among noisy and
# hard-clean tasks: does the factor tell the hard-clean ones from the noisy ones? 0.5 is chance.

# %%
aucs = RG.auc_table(df).round(3)
plots.save_table(aucs, "09_regimes_auc", plots.figure_dir(FIG_DIR) / "tables")
aucs

# %% [markdown]
# ## Test accuracy per regime

# %%
table = RG.results_table(df)
tab_dir = plots.figure_dir(FIG_DIR) / "tables"
pd.set_option("display.max_columns", None, "display.width", 200)
wide = RG.wide_table(table)
plots.save_table(wide, "09_regimes_table", tab_dir)
wide

# %% [markdown]
# Seeds start from different clean-pretrained models, so the per-method intervals above carry
# the spread between starts. Paired by seed (same start, same pool stream), each method minus
# uniform:

# %%
diffs = RG.differences(df)
plots.save_table(diffs.round({"diff": 2, "ci95": 2, "p": 4}), "09_regimes_differences", tab_dir)
fig = RG.results_figure(diffs, SOURCE)
plots.savefig(fig, "09_regimes_results", FIG_DIR)
fig

# %% [markdown]
# ## Verdicts: does ATS beat every fixed heuristic at the seed level?
# `diff` is ATS (or ats-reweight, real update on its top-2 tasks) minus the best fixed heuristic
# of the regime (uniform, spl or rank-sim-loss, chosen by validation accuracy, never by test), in
# points, with a 95% t-interval over seeds and the paired t-test p over seeds;
# `min_diff_vs_fixed` is the difference to the strongest fixed heuristic on test; `beats_all` is
# true only where ATS is above every fixed heuristic at p < 0.01.

# %%
ver = RG.verdicts(df)
ver_shown = ver.round({"diff": 2, "ci95": 2, "p": 4, "min_diff_vs_fixed": 2}) if len(ver) else ver
plots.save_table(ver_shown, "09_regimes_verdicts", tab_dir)
ver_shown

# %%
if len(ver):
    wins = ver[ver["beats_all"]]
    print("regimes where a learned scheduler beats every fixed heuristic at the seed level:",
          ", ".join(f"{r.regime}/{r.test} ({r.method})" for r in wins.itertuples()) or "none")

# %% [markdown]
# ## One regime at a time (JupyterLab)
# The dropdown switches the regime instantly: its tasks, ATS's pool scatter and its rows of the
# tables, all from committed runs (nothing trains).

# %%
def page(r):
    f1 = RG.kinds_figure(pools_shown[r], data.names, f"{r}: {RG.DESCRIPTION[r]}")
    ax, s = RG.kind_scatter(pool_recs[r][pool_recs[r]["seed"] == SEED] if len(pool_recs[r]) else pool_recs[r],
                            title=f"{r}: pool tasks of ATS (seed {SEED}), second half of training")
    if s is not None:
        ax.figure.colorbar(s, ax=ax, label="ATS sampling probability")
    rows = table[table.regime == r].round(2)
    return [RG.DESCRIPTION[r], widgets.png(f1), widgets.png(ax.figure), rows,
            aucs[aucs.regime == r], ver[ver.regime == r].round(4) if len(ver) else ver]


widgets.page_switcher({r: page(r) for r in RG.REGIMES}, description="regime")
