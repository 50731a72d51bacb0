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
# # 05 · The reproduction study: the seed's tables from our sweeps
#
# This notebook trains nothing. It reads the committed sweep results in `results/` (made by
# `experiments/run_all.sh`, i.e. `python -m atslib sweep experiments/<grid>.yaml --out results/<grid>`)
# and regenerates, in the paper's layout: the noisy table, the limited-budget table, the ablation
# table, the noise-ratio table with its "BNS" row, the budget table, the significance tests, the
# plots, and the verdict on each claim. Every table is written as CSV and Markdown to
# `<figures>/tables/`, every figure to `<figures>/`, where `<figures>` is `FIG_DIR` (default
# `build/figures/`; `make figures` passes the repository's `figures/` and `REPORT`). Run All takes
# about 30 s.
#
# Conventions (see `atslib/reproduction.py` and `atslib/claims.py`): a cell is the mean over seeds of each run's test
# score with a 95% t-interval over seeds; significance is primarily a **paired t-test over the
# same meta-test tasks** (every run is scored on the same 600 image tasks / the same assays), at
# level 0.01 as in the paper, secondarily Welch's test over seeds; **BNS** (best non-adaptive
# scheduler) is chosen by validation score, never by test. Cells whose runs have not finished
# show "–", and claims that lack runs say "pending".

# %% tags=["parameters"]
RESULTS_DIR = "../results"
EXPERIMENTS_DIR = "../experiments"
FIG_DIR = None  # None: $FIG_DIR, else build/figures/ (make figures passes the repository's figures/)
REPORT = None  # a path: rewrite its results block (make figures passes REPRODUCTION.md); None: nothing
SMOKE = False  # no effect, this notebook only reads results

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from atslib import plots
from atslib import claims as C
from atslib import reproduction as R

fig_dir = plots.figure_dir(FIG_DIR)
tab_dir = fig_dir / "tables"
df = R.load_results(RESULTS_DIR)
pd.set_option("display.max_colwidth", None)   # claims and notes in full, never cut with "…"
pd.set_option("display.precision", 3)
progress = C.progress_table(EXPERIMENTS_DIR, RESULTS_DIR)
plots.save_table(progress.reset_index(), "05_progress", tab_dir)
progress

# %% [markdown]
# ## The scale
#
# One CPU scale for every method (the grids' `scale: cpu` presets): 5-way conv-4 (32 channels,
# 28 px QuickDraw), 10 query examples per class, pool 10, meta-batch 2, 4 validation tasks per
# reward; noisy runs start from a clean-pretrained checkpoint (300 uniform steps, one per seed
# and shot) and train 150 steps; limited-budget runs train 300 steps from scratch; molecules
# 300 steps. Validation on 100 fixed meta-val tasks picks each run's checkpoint; 600 fixed
# meta-test tasks score it.

# %%
def show(t, name):
    plots.save_table(t, name, tab_dir)
    return t


def with_drug(t, drug, order=R.METHOD_ORDER):
    """Image columns and drug columns side by side, rows in the paper's order."""
    t = t.merge(drug, on="method", how="outer").fillna("–")
    return t.sort_values("method", key=lambda m: m.map({k: i for i, k in enumerate(order)})).reset_index(drop=True)


noisy = R.wide_table(df, {"1-shot": C.NOISY["1-shot"], "5-shot": C.NOISY["5-shot"]})
drug_noisy = pd.concat([R.drug_columns(df, *C.DRUG_NOISY["drug η=4"]),   # rank-sim-loss: the ablation grid
                        R.drug_columns(df, *C.RANK_CELL[C.DRUG_NOISY["drug η=4"]], ("rank-sim-loss",))])
noisy_table = with_drug(noisy, drug_noisy)
show(noisy_table, "05_noisy")

# %% [markdown]
# ## Limited budgets (clean tasks, 16 meta-training classes; drug: the clean molecular tasks)

# %%
budget = R.wide_table(df, {"1-shot": C.BUDGET16["1-shot"], "5-shot": C.BUDGET16["5-shot"]})
budget_table = with_drug(budget, R.drug_columns(df, *C.DRUG["clean"]))
show(budget_table, "05_budget16")

# %% [markdown]
# ## Ablations (noise 0.6; drug η = 4)

# %%
abl_methods = ("ats-random-phi", "rank-sim-loss", "ats-loss-only", "ats-sim-only", "ats-reweight", "ats")
abl = R.wide_table(df, {"1-shot": C.ABLATIONS["1-shot"], "5-shot": C.ABLATIONS["5-shot"]}, abl_methods)
abl_table = with_drug(abl, R.drug_columns(df, *C.ABLATIONS["drug η=4"], abl_methods), abl_methods)
show(abl_table, "05_ablations")

# %% [markdown]
# ## Effect of the noise ratio (1-shot) and of the drug noise scale, with the BNS row

# %%
ratio_table = R.wide_table(df, C.RATIOS)
ratio_table = pd.concat([ratio_table, pd.DataFrame([R.bns_row(df, C.RATIOS)])], ignore_index=True)
show(ratio_table, "05_noise_ratio")

# %%
drug_table = R.wide_table(df, C.DRUG, scale=1.0, digits=3)
drug_table = pd.concat([drug_table, pd.DataFrame([R.bns_row(df, C.DRUG, scale=1.0, digits=3)])], ignore_index=True)
show(drug_table, "05_drug_noise")

# %% [markdown]
# ## Effect of the budget (1-shot, clean tasks)

# %%
budgets = {f"{b} classes": v for b, v in C.BUDGETS.items()}
show(R.wide_table(df, budgets, ("uniform", "gcp", "ats", "rank-sim-loss")), "05_budgets")

# %% [markdown]
# ## Beyond the paper: equal compute, harder noise, the clean reference, a longer run
# `1000 steps` is the noisy 1-shot cell run 6.7 times longer (grid `long`, trained on an H100);
# `1000 steps 5-shot` the same for 5-shot (trained on the 2-core CPU).

# %%
show(R.wide_table(df, C.BEYOND, ("uniform", "ats", "rank-sim-loss")), "05_beyond")

# %% [markdown]
# ## Significance: ATS against uniform, BNS and the rank-sim-loss ranking
# `ATS-x` is the mean per-task difference (accuracy as a fraction; R² on molecules);
# `p paired` the paired t-test over meta-test tasks; `p Welch` the test over seeds.

# %%
settings = {**{f"noisy {k}": v for k, v in C.NOISY.items()}, **{f"ratio {k}": v for k, v in C.RATIOS.items()},
            **{f"budget16 {k}": v for k, v in C.BUDGET16.items()},
            **{f"budget {b}": v for b, v in C.BUDGETS.items() if b != 16},
            **{f"drug {k}": v for k, v in C.DRUG.items()},
            **{f"beyond {k}": v for k, v in C.BEYOND.items() if k.startswith(("flip", "1000 steps"))}}
sig = R.significance(df, settings, C.RANK_CELL)   # drug η=4: rank-sim-loss ran in the ablation grid
sig_show = sig.copy()
for c in sig_show.columns:
    if c.startswith("p "):
        sig_show[c] = sig_show[c].map(lambda v: "–" if pd.isna(v) else f"{v:.2g}")
    elif c.startswith("ATS-"):
        sig_show[c] = sig_show[c].map(lambda v: "–" if pd.isna(v) else f"{v:+.4f}")
show(sig_show.fillna("–"), "05_significance")

# %% [markdown]
# ## Plots: accuracy against noise ratio and against budget

# %%
def series(settings, method):
    s = [R.cell_stats(df, g, c, (method,)) for g, c in settings.values()]
    return (np.array([x["mean"].iloc[0] if len(x) else np.nan for x in s]) * 100,
            np.array([x["ci95"].iloc[0] if len(x) else np.nan for x in s]) * 100)


fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for ax, sets, xs, xlabel in ((axes[0], C.RATIOS, [0.2, 0.4, 0.6, 0.8], "noise ratio"),
                             (axes[1], C.BUDGETS, [16, 32, 48, 64], "meta-training classes")):
    for m in ("uniform", "gcp", "ats", "rank-sim-loss"):
        mean, ci = series(sets, m)
        if np.isfinite(mean).any():
            ax.errorbar(xs, mean, yerr=np.nan_to_num(ci), marker="o", capsize=3, label=m, color=plots.METHOD_COLORS.get(m))
    ax.set_xlabel(xlabel), ax.set_ylabel("test accuracy (%)")
plots.legend_outside(axes[1])
axes[0].set_title("1-shot, from the clean-pretrained start", fontsize=9)
axes[1].set_title("1-shot, clean tasks, from scratch", fontsize=9)
fig.tight_layout()
plots.savefig(fig, "05_noise_budget", fig_dir)

# %% [markdown]
# ## Probability mass on noisy tasks over training, and noise AUC per method (noise 0.6, 1-shot)
# The mass is the summed scheduler probability of the pool's noisy tasks (uniform: the pool's
# noisy share, about 0.6). The noise AUC ranks each method's task scores: 1 = every clean task
# above every noisy one, 0.5 = chance.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 2]})
hist = R.histories(df, "noisy", "1shot", ("uniform", "ats", "rank-sim-loss", "ats-cheap"))
hist.update({k: v for k, v in R.histories(df, "ablations", "1shot", ("ats-loss-only", "ats-sim-only",
                                                                      "ats-random-phi")).items()})
if hist:
    plots.trajectory(hist, "noisy_mass", smooth=10, ax=axes[0], ylabel="probability mass on noisy tasks")
auc_rows = []
for g, c in (C.NOISY["1-shot"], C.ABLATIONS["1-shot"], C.NOISY["5-shot"], C.ABLATIONS["5-shot"]):
    s = R.cell_stats(df, g, c)
    auc_rows += [{"shots": c, **r} for r in s[["method", "noise_auc", "n"]].to_dict("records")]
aucs = pd.DataFrame(auc_rows, columns=["shots", "method", "noise_auc", "n"]).drop_duplicates(["shots", "method"])
a1 = aucs[aucs.shots == "1shot"]
axes[1].bar(range(len(a1)), a1["noise_auc"], color=[plots.METHOD_COLORS.get(m, "#333") for m in a1["method"]])
axes[1].axhline(0.5, ls=":", color="grey")
axes[1].set_xticks(range(len(a1)), a1["method"], rotation=35, ha="right", fontsize=7)
axes[1].set_ylabel("noise AUC (2nd half)"), axes[1].set_ylim(0, 1.05)
fig.tight_layout()
plots.savefig(fig, "05_noisy_mass", fig_dir)
show(aucs, "05_noise_auc")

# %% [markdown]
# ## The claims, tested
# Each claim of the paper, our numbers at our scale, and a verdict: **holds**, **partly**,
# **does not hold**, or **pending** (its runs have not finished). `REPRODUCTION.md` discusses them.

# %%
cl = C.claims(df)
show(cl, "05_claims")

# %% [markdown]
# ## The results block of REPRODUCTION.md
# With `REPORT` set (`make figures` sets it to `REPRODUCTION.md`), this notebook rewrites the block
# between the `results:start` / `results:end` markers of that file with the tables above, so the
# numbers there always match `results/`.

# %%
sections = {"Claims": cl, "Meta-learning with noise (noise ratio 0.6; accuracy %, drug R²)": noisy_table,
            "Limited budgets (16 classes; drug: clean tasks)": budget_table, "Ablations": abl_table,
            "Effect of the noise ratio (1-shot)": ratio_table, "Effect of the drug noise scale η": drug_table,
            "Effect of the budget (1-shot)": R.wide_table(df, budgets, ("uniform", "gcp", "ats", "rank-sim-loss")),
            "Beyond the paper": R.wide_table(df, C.BEYOND, ("uniform", "ats", "rank-sim-loss")),
            "Significance": sig_show.fillna("–"), "Noise AUC": aucs}
if REPORT:
    print(f"{REPORT} updated:", C.update_block(REPORT, C.report(sections, progress)))
