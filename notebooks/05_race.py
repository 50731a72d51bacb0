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
# # 07 · Change the noise ratio and watch: a live race of task schedulers
#
# Move the **noise ratio** (the fraction of meta-training tasks whose support labels are
# corrupted) and the **flip probability** (how many labels of a noisy task are replaced), pick a
# budget of steps and press **Race**: `uniform`, `spl` (self-paced learning), `rank-sim-loss`
# (top-2 of z(similarity) − z(loss), no network) and `ats` train side by side from the same
# committed clean-pretrained model (`results/pretrain/1shot/uniform-s0`) on the same task stream.
# Live: each method's validation accuracy, the probability mass it puts on noisy tasks, and the
# current pool's query loss against gradient similarity coloured by ATS's probabilities (crosses
# are noisy tasks). At the end: test accuracy on the 600 fixed meta-test tasks with 95% CIs.
# **Stop** ends the race at any time (no final test).
#
# **How long.** Run All takes about 10 s: nothing trains until you press Race. A race of 100 steps
# takes about 1.5 minutes on two CPU cores (88 s measured; 3.5 minutes while a training grid shared
# the cores). To fit that budget the race is smaller than the
# reproduction grids, the same for every method: 5 query examples per class (grids: 10),
# validation on 50 tasks every tenth of the budget (grids: 100), one seed. It is a demonstration;
# `07_results` holds the study.
#
# Before you press Race, and under papermill, the view shows the committed race
# `results/race/r0.6` (noise ratio 0.6, 100 steps; `python -m atslib.display.race --out results/race/r0.6`
# made it).

# %% tags=["parameters"]
SMOKE = False  # no effect: nothing trains unless Race is pressed
COMMITTED = "../results/race/r0.6"
RESULTS_DIR = "../results"
FIG_DIR = None

# %%
from atslib.display import plots, race

snap = race.load_race(COMMITTED)
fig = race.race_figure(snap)
plots.savefig(fig, "05_race", FIG_DIR)

# %% [markdown]
# ## The race (JupyterLab)

# %%
view = race.RaceView(COMMITTED)
view.box

# %% [markdown]
# ## Instantly: the committed noise-ratio grid
# No training: the slider moves over the noise-ratio grid of the reproduction study (150 steps
# from the same clean-pretrained start, 3 seeds, 10 query examples per class). Left, test accuracy
# against the noise ratio for uniform, ATS, rank-sim-loss and BNS (the best non-adaptive scheduler
# at that ratio, chosen on validation); right, ATS's pool at the end of training at the chosen
# ratio.

# %%
race.noise_ratio_view(RESULTS_DIR)
