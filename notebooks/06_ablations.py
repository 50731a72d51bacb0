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
# | `ats-reweight` | no sampling: the scheduler's weights; θ updates on the top-B tasks by weight, renormalised (`--reweight-update all`: on all P tasks, the authors' variant); φ trained through the look-ahead |
#
# `noise_auc` measures how well each method's scores rank clean above noisy pool tasks (0.5 =
# chance); `clean_share` is the share of trained-on tasks that were clean (uniform ≈ 0.4 at noise
# ratio 0.6). By default (`SOURCE = "study"`) the notebook reads the reproduction study's runs:
# the `ablations` grid's 1-shot cell (`ats-reweight`: its equal-batch cell `1shot-reweight-top`)
# and uniform from the `noisy` grid (noise 0.6, 150 steps from
# the clean-pretrained start, 3 seeds), with means and 95% t-intervals **over seeds** and tests
# paired over seeds. `SOURCE = "demo"` reads the single-seed demo runs in `results/demo/` (400
# steps from scratch, seed 0; `python -m atslib.display.demo` made them, `TRAIN = True` retrains them at
# `STEPS`): one seed shows what a run looks like, not which method is better.
#
# **How long.** Run All takes about 15 s (reading the committed runs). `TRAIN = True` takes about
# an hour on two CPU cores (seven runs of 400 steps; ATS about 0.5 s a step). To *watch* methods
# train at a noise ratio of your choice in two minutes, use the race in `05_race`.

# %% tags=["parameters"]
SMOKE = False
SOURCE = "study"  # "study": the ablations grid (3 seeds); "demo": the single-seed runs in RUNS_DIR
RESULTS_DIR = "../results"
TRAIN = False  # demo only: retrain the demo runs
STEPS = 400
RUNS_DIR = "../results/demo"
FIG_DIR = None

# %%
from pathlib import Path

import pandas as pd

from atslib.display import demo, plots
from atslib.study import reports
from atslib.runs import load_run

from atslib.study import reproduction as R

if SOURCE not in ("study", "demo"):
    raise ValueError(f"SOURCE {SOURCE!r}; allowed: 'study', 'demo'")
runs_dir = Path(RUNS_DIR)
if SOURCE == "demo":
    if SMOKE and TRAIN:
        STEPS = 4
    if TRAIN:
        demo.train_demo(demo.ABLATIONS, STEPS, runs_dir)
    names = [m for m in demo.ABLATIONS if (runs_dir / m / "summary.json").is_file()]
    runs = {m: load_run(runs_dir / m, with_model=False) for m in names}
    summ = reports.summaries([runs_dir / m for m in names])
    summ["method"] = names
    source = f"single-seed demo (results/demo: seed 0, {max(summ['steps'])} steps from scratch)"
    print(f"{len(names)} runs from {runs_dir.resolve()}; steps: {sorted(set(summ['steps']))}")
else:
    df = R.load_results(RESULTS_DIR)
    cells = {m: ("noisy", "1shot") if m == "uniform" else ("ablations", "1shot") for m in demo.ABLATIONS}
    cells["ats-reweight"] = ("ablations", "1shot-reweight-top")     # the default, equal batch (top-B)
    stats = pd.concat([R.cell_stats(df, *cells[m], (m,)) for m in demo.ABLATIONS], ignore_index=True)
    n = f"{stats['n'].min()}" if stats["n"].nunique() == 1 else f"{stats['n'].min()}-{stats['n'].max()}"
    source = (f"grids ablations/1shot, 1shot-reweight-top (ats-reweight) + noisy/1shot (uniform): "
              f"{int(stats['steps'].max())} steps from the pretrained start, {n} seeds")
    # one frame of the runs shown, so that methods from two grids pair by seed
    both = pd.concat([df[(df.grid == g) & (df.cell == c) & (df.method == m)] for m, (g, c) in cells.items()])
    both = both.assign(grid="03", cell="1shot")
    print(source)

# %% [markdown]
# ## Test accuracy, noise detection and clean share

# %%
if SOURCE == "demo":
    table = reports.method_table(summ, order=demo.ABLATIONS)
    shown = reports.formatted(table)
    ci_over = "95% CI over 600 tasks of one run"
else:   # one row per method: mean and 95% t-CI over seeds, ATS minus the method paired over seeds
    table = stats.rename(columns={"mean": "test_mean", "ci95": "test_ci95"})
    vs = [R.paired(both, "03", "1shot", "ats", m) if m != "ats" else (float("nan"),) * 3 for m in table["method"]]
    shown = pd.DataFrame({"method": table["method"], "seeds": table["n"],
                          "test acc (%)": [R.fmt(a, b) for a, b in zip(table["test_mean"], table["test_ci95"])],
                          "noise AUC": table["noise_auc"].round(3), "clean share": table["clean_share"].round(3),
                          "ATS − method (points)": [f"{d * 100:+.2f}" if d == d else "–" for d, _, _ in vs],
                          "p over seeds": [f"{p:.2g}" if p == p else "–" for _, p, _ in vs]})
    ci_over = "mean ± 95% t-CI over seeds"
plots.save_table(shown, "06_ablations", FIG_DIR)
shown

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 2]})
start = None
if SOURCE == "study":   # the clean-pretrained start of the same seeds, a checkpoint candidate of every run
    pre = df[(df.grid == "pretrain") & (df.cell == "1shot") & df.seed.isin(both.seed.unique())]
    start = float(pre["test_mean"].mean()) if len(pre) else None
plots.method_bars(table, ax=axes[0], reference=start)
axes[0].set_title(f"test accuracy, 1-shot, noise 0.6 ({ci_over})\n{source}"
                  + ("; dotted: the pretrained start" if start else ""), fontsize=8)
axes[1].bar(range(len(table)), table["noise_auc"], color=[plots.METHOD_COLORS.get(m) for m in table["method"]])
axes[1].axhline(0.5, ls=":", color="grey")
axes[1].set_xticks(range(len(table)), table["method"], rotation=30, ha="right")
axes[1].set_ylabel("noise AUC (2nd half of training)"), axes[1].set_ylim(0, 1.05)
fig.tight_layout()
plots.savefig(fig, "06_ablations", FIG_DIR)

# %% [markdown]
# ## Probability mass on noisy tasks over training
# Uniform puts ≈ 60% of its mass on noisy tasks (their share of the pool); a scheduler that
# detects them pushes this down.

# %%
if SOURCE == "demo":
    hist = {m: r["history"] for m, r in runs.items()}
else:
    hist = {}
    for m in demo.ABLATIONS:
        hist.update(R.histories(df, *cells[m], (m,)))
fig, ax = plots.trajectory(hist, "noisy_mass", smooth=10 if SOURCE == "study" else 50,
                           ylabel="probability mass on noisy pool tasks")
ax.set_title(source + (" (mean over seeds)" if SOURCE == "study" else ""), fontsize=8)
plots.savefig(fig, "06_noisy_mass", FIG_DIR)

# %% [markdown]
# ## Each method against uniform
# Study: paired over seeds (the same seed gives the same start and pool stream), the test the
# verdicts rest on. Demo: one seed only, so only the test over the 600 meta-test tasks exists, and
# it is conditional on those two trained models (it cannot see training variance).

# %%
from atslib.metrics import paired_t

rows = []
if SOURCE == "study":
    for m in demo.ABLATIONS:
        if m != "uniform":
            d, p, k = R.paired(both, "03", "1shot", m, "uniform")
            rows.append({"method": m, "minus uniform (points)": round(100 * d, 2), "p over seeds": f"{p:.2g}", "seeds": k})
else:
    base = runs["uniform"]["test_scores"]["acc"] if "uniform" in runs else None
    for m, r in runs.items():
        if base is not None and m != "uniform":
            d, p = paired_t(r["test_scores"]["acc"], base)
            rows.append({"method": m, "minus uniform (points)": round(100 * d, 2), "p over tasks (one seed)": f"{p:.2g}"})
pd.DataFrame(rows)
