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
# # 05 · Change the noise ratio and watch: a live race of task schedulers
#
# Move the **noise ratio** (the fraction of meta-training tasks whose support labels are
# corrupted) and the **flip probability** (how likely each label of a noisy task is replaced), pick
# a budget of steps and press **Race**: `uniform`, `spl` (self-paced learning: prefers low-loss
# tasks), `rank-sim-loss` (top-2 of z(similarity) − z(loss), no network) and `ats` train side by
# side from the same committed clean-pretrained model (`results/pretrain/1shot/uniform-s0`, the run
# of `02_training`) on the same task stream. **Stop** ends the race at any time (no final test).
#
# **What you will learn**
# - how four schedulers spend their training steps when most tasks are noisy: the probability
#   mass each puts on noisy tasks, live;
# - what ATS's pool looks like while it trains: query loss against gradient similarity, coloured by
#   its probabilities;
# - why, in our short runs from a clean-pretrained start, test accuracy barely moves with the noise
#   ratio although the share of clean tasks each method trains on moves a lot.
#
# **How long.** Run All takes about 35 s on two CPU cores: nothing trains until you press Race. A
# race of 100 steps takes about 1.5 minutes (88 s measured; 3.5 minutes while a training sweep
# shared the cores). To fit that budget the race is smaller than the reproduction sweeps, the same
# for every method: 5 query examples per class (sweeps: 10), validation on 50 tasks every tenth of
# the budget (sweeps: 100), one seed. It is a demonstration; `07_results` holds the study.
#
# **Where this sits in the course.** Previous: `04_scheduler` (one ATS step taken apart by hand).
# Next: `06_ablations` (which parts of ATS matter).
#
# Before you press Race, and under papermill, the view shows the committed race
# `results/race/r0.6` (noise ratio 0.6, 100 steps; `python -m atslib.display.race --out results/race/r0.6`
# made it).

# %% tags=["parameters"]
SMOKE = False  # no effect: nothing trains unless Race is pressed
COMMITTED = "../results/race/r0.6"
RESULTS_DIR = "../results"
FIG_DIR = None

# %% [markdown]
# ## The committed race
# Top: each method's validation accuracy on 50 fixed meta-validation tasks, and the probability mass
# it puts on noisy tasks (a rolling mean over 5 steps; uniform's sits at the noise ratio). Bottom:
# ATS's last pool - each task's query loss after adaptation against its gradient similarity,
# coloured by ATS's probability, crosses for noisy tasks - and the test accuracy on the 600 fixed
# meta-test tasks with 95% intervals.

# %%
from scipy import stats

from atslib.display import plots, race
from atslib.display.prose import num, pct, pts, pval, say
from atslib.study import reproduction as R

snap = race.load_race(COMMITTED)
fig = race.race_figure(snap)
plots.savefig(fig, "05_race", FIG_DIR)

fin = race.finals(snap).set_index("method")
best, worst = fin["test_mean"].idxmax(), fin["test_mean"].idxmin()
scores = {m: R.task_scores(f"{COMMITTED}/{m}") for m in fin.index}
d = (scores["ats"] - scores["uniform"]) * 100                     # the same 600 tasks: a paired difference
p = stats.ttest_rel(scores["ats"], scores["uniform"]).pvalue
hist = {m: dd["history"] for m, dd in snap["methods"].items()}
early = {m: float(h[h["step"] < 0.2 * snap["steps"]]["noisy_mass"].mean()) for m, h in hist.items()}
ats_avoids = fin.loc["ats", "noisy_mass_late"] < fin.loc["uniform", "noisy_mass_late"] - 0.1
rsl_early = early["rank-sim-loss"] < early["uniform"] - 0.1
say(f"**What this shows.** At noise ratio {num(snap['noise_ratio'], 1)} after {snap['steps']} steps, "
    f"{best} tests highest ({num(fin.loc[best, 'test_mean'] * 100, 1)}%) and {worst} lowest "
    f"({num(fin.loc[worst, 'test_mean'] * 100, 1)}%); on the same 600 tasks ATS is {abs(d.mean()):.2f} points {'above' if d.mean() > 0 else 'below'} uniform "
    f"(paired t-test, {pval(p)}). Over the last fifth of the race ATS put {pct(fin.loc['ats', 'noisy_mass_late'])} "
    f"of its probability on noisy tasks against uniform's {pct(fin.loc['uniform', 'noisy_mass_late'])}, and "
    f"rank-sim-loss {pct(fin.loc['rank-sim-loss', 'noisy_mass_late'])}: "
    + ("ATS has learnt to avoid noisy tasks within the race" if ats_avoids else
       "ATS has not yet moved its probability away from noisy tasks")
    + (f", while the fixed rank-sim-loss rule avoided them from the start (first fifth: "
       f"{pct(early['rank-sim-loss'])} against uniform's {pct(early['uniform'])})" if rsl_early else "")
    + f". This is one seed of one short run: the "
    f"sweep below, and `07_results`, say how much of it holds over seeds.")

# %% [markdown]
# ## The race (JupyterLab)
# Move the sliders and press **Race**: the figure is redrawn every two seconds while the four
# methods train, and the status line says what each is doing. Under papermill it only shows the
# committed race.

# %%
view = race.RaceView(COMMITTED)
view.box

# %% [markdown]
# ## Instantly: the committed noise-ratio sweep
# No training: the numbers come from the noise-ratio sweep of the reproduction study (150 steps from
# the same clean-pretrained start, 2 or 3 seeds per method, 10 query examples per class). BNS is the
# best non-adaptive scheduler at each ratio, chosen on validation. Each run keeps the checkpoint
# with the best validation accuracy, and the clean-pretrained start is one of the candidates: when
# training on noisy tasks never beats it, the run's test accuracy *is* the start's ("kept the start"
# in the table). Differences from uniform are taken seed by seed (each seed has its own start, so
# the start's own level cancels).

# %%
grid = race.NoiseRatioGrid(RESULTS_DIR)
t = grid.table.assign(test=lambda x: [f"{m:.1f} ± {c:.1f}" for m, c in zip(x["mean"], x["ci95"])],
                      clean=lambda x: (x["clean_share"] * 100).round(0).astype(int),
                      vs_uniform=lambda x: x["vs_uniform"].round(2),
                      kept=lambda x: [f"{k}/{n}" for k, n in zip(x["kept_start"], x["n"])])
t = t[["ratio", "method", "picked", "test", "vs_uniform", "clean", "kept"]].rename(columns={
    "picked": "runs of", "test": "test acc. (%)", "vs_uniform": "− uniform (pts)", "clean": "clean tasks (%)",
    "kept": "kept the start"})
display(t.style.hide(axis="index").format({"ratio": "{:.1f}", "− uniform (pts)": "{:+.2f}"}))

at = grid.table.set_index(["ratio", "method"])
lo, hi = min(grid.ratios), max(grid.ratios)
u_range = grid.table[grid.table.method == "uniform"]["mean"]
ats_diff = grid.table[grid.table.method == "ats"]["vs_uniform"]
rsl_diff = grid.table[grid.table.method == "rank-sim-loss"]["vs_uniform"]
kept_u = int(grid.table[grid.table.method == "uniform"]["kept_start"].sum())
n_u = int(grid.table[grid.table.method == "uniform"]["n"].sum())
gain = at.loc[(hi, "ats"), "vs_uniform"] - at.loc[(lo, "ats"), "vs_uniform"]   # does ATS gain more when noisier?
more_clean = bool((grid.table[grid.table.method == "ats"]["clean_share"].to_numpy()
                   > grid.table[grid.table.method == "uniform"]["clean_share"].to_numpy()).all())
say(f"**What this shows.** What changes with the noise ratio is *which tasks* each method trains on: from ratio "
    f"{lo:g} to {hi:g} uniform's share of clean tasks falls from {pct(at.loc[(lo, 'uniform'), 'clean_share'])} to "
    f"{pct(at.loc[(hi, 'uniform'), 'clean_share'])} (one minus the ratio), ATS's from "
    f"{pct(at.loc[(lo, 'ats'), 'clean_share'])} to {pct(at.loc[(hi, 'ats'), 'clean_share'])}, rank-sim-loss's from "
    f"{pct(at.loc[(lo, 'rank-sim-loss'), 'clean_share'])} to {pct(at.loc[(hi, 'rank-sim-loss'), 'clean_share'])}. "
    f"Test accuracy hardly follows: uniform stays between {num(u_range.min(), 1)}% and {num(u_range.max(), 1)}%, "
    f"ATS is {pts(ats_diff.min())} to {pts(ats_diff.max())} from uniform on the same seeds, rank-sim-loss "
    f"{pts(rsl_diff.min())} to {pts(rsl_diff.max())}. The reason is in the last column: in {kept_u} of uniform's "
    f"{n_u} runs validation never beat the clean-pretrained start, so the test scores the start itself, whatever "
    f"the ratio; 150 steps on noisy tasks mostly fail to improve on it. "
    + (f"The paper's claim, that ATS gains more over uniform the noisier the tasks, is not visible here (its gap "
       f"changes by {pts(gain)} from ratio {lo:g} to {hi:g}): the sweep starts from a model trained on clean tasks "
       f"and trains too briefly for noise to hurt uniform much." if gain < 1 else
       f"ATS's gap over uniform grows by {pts(gain)} from ratio {lo:g} to {hi:g}, as the paper claims."))

# %% [markdown]
# Move the slider: left, each method's test accuracy minus uniform's on the same seed (one dot per
# seed, hollow where validation kept the start, the line their mean); middle, the share of clean
# tasks among those each method trained on; right, ATS's last pool at that ratio (seed 0), with
# noisy tasks as crosses. The readout above the figure gives the numbers at the chosen ratio.

# %%
race.noise_ratio_view(RESULTS_DIR)

# %%
r = 0.6 if 0.6 in grid.ratios else grid.ratios[0]
pool = grid.pool(r)
noisy = pool["noisy"].astype(bool)
say(f"**What this shows.** At ratio {r:g} ATS's last pool of seed {int(pool['seed'].iloc[0])} (step "
    f"{int(pool['step'].iloc[0])}) holds {int(noisy.sum())} noisy tasks of {len(pool)}; they have a mean query loss "
    f"of {num(pool.loc[noisy, 'loss'].mean())} against {num(pool.loc[~noisy, 'loss'].mean())} for the clean ones, "
    f"and ATS gives them {pct(pool.loc[noisy, 'prob'].sum())} of its probability (uniform would give "
    f"them {pct(noisy.mean())}). Move the slider to see how the pool and the probabilities change with the ratio.")

# %% [markdown]
# ## Summary

# %%
say(f"1. In the committed race at noise ratio {num(snap['noise_ratio'], 1)}, ATS ends {abs(d.mean()):.2f} points {'above' if d.mean() > 0 else 'below'} uniform "
    f"on the same 600 test tasks (one seed, {snap['steps']} steps), with {pct(fin.loc['ats', 'noisy_mass_late'])} "
    f"of its late probability on noisy tasks against uniform's {pct(fin.loc['uniform', 'noisy_mass_late'])}.")
say(f"2. Over the committed sweep ATS trains on {'more' if more_clean else 'not always more'} clean tasks than "
    f"uniform {'at every ratio ' if more_clean else ''}(at {hi:g}: {pct(at.loc[(hi, 'ats'), 'clean_share'])} "
    f"against {pct(at.loc[(hi, 'uniform'), 'clean_share'])}), and its test accuracy stays within "
    f"{num(ats_diff.abs().max())} points of uniform's.")
say(f"3. Test accuracy is nearly flat in the noise ratio: {kept_u} of {n_u} uniform runs kept the clean-pretrained "
    f"start, because short training on noisy tasks rarely beats it on validation.")

# %% [markdown]
# ## Try this
# Set the race's **steps** slider to 300 and press Race at noise ratio 0.8: with three times the
# budget uniform trains longer on mostly noisy tasks, so expect its validation curve to sag while ATS's
# and rank-sim-loss's noisy mass falls further; whether the test gap widens is what the race tells
# you (about 4.5 minutes on two cores, one seed).
