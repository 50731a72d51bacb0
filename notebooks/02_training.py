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
# # 02 · Meta-training ANIL with uniform task sampling
#
# ANIL (Raghu et al. 2020) meta-learns a conv-4 backbone whose linear head adapts to each task in
# a few SGD steps on the support set; the meta-gradient of the query loss after adaptation
# updates everything (second order). Tasks are drawn **uniformly** from the pool — the baseline
# that ATS improves on. Validation on fixed clean meta-val tasks picks the checkpoint; the final
# score is the mean accuracy over 600 fixed meta-test tasks with a 95% interval
# (1.96·std/√600).
#
# Parameters: `METHOD` (any of `atslib.METHODS`), `STEPS`, `SHOTS`, `NOISE_RATIO`, `SEED`.
# The dashboard updates while training runs; in JupyterLab the **Start / Stop** controls at the end
# train in the background and can be stopped at any time (the run keeps what it learnt).
#
# **How long.** The default, 300 uniform steps on clean tasks, makes Run All take about 1.5 minutes on
# two CPU cores (75 s measured in JupyterLab with the cores shared with a training grid; 4 minutes
# when that grid loaded them heavily). ATS costs about ten times a uniform step.
#
# **This run is the start of everything later.** The default configuration (uniform, clean, 1-shot,
# 300 steps, seed 0) is exactly the committed run `results/pretrain/1shot/uniform-s0`: its best
# checkpoint is the clean-pretrained start (`--init`) from which every noisy-task experiment of
# notebooks 03–07 trains. The gallery (`make figures`) draws that committed run (`-p COMMITTED …`)
# instead of training again, so its figure is the same on every machine; a float32 run on another
# CPU gives the same curve to about four digits, not to the bit (README, "What reproduces").
#
# Validation and test differ by about 10 points because they are different classes and different
# episodes: validation picks the checkpoint on 100 fixed tasks of the 16 meta-validation classes, the
# test reports 600 tasks of the 20 meta-test classes, which happen to be easier for this backbone.

# %% tags=["parameters"]
SMOKE = False
METHOD = "uniform"
STEPS = 300
SHOTS = 1
NOISE_RATIO = 0.0
SEED = 0
EVAL_EVERY = 50
RUN_DIR = "../build/runs/02_training"
FIG_DIR = None
COMMITTED = None  # a run directory to draw instead of training (the gallery: the pretrained start)
TORCH_THREADS = 1  # many small ops: on 2 busy cores one thread is far faster than two (0.3 vs 3.5 s a step)

# %%
import json

import torch

import atslib
from atslib.display import plots
from atslib.study import reports
from atslib.data import load_images

torch.set_num_threads(TORCH_THREADS)
extra = {}
if SMOKE:
    STEPS, EVAL_EVERY = 6, 3
    extra = dict(n_val_tasks=10, n_test_tasks=30, queries=5)
cfg = atslib.Config(method=METHOD, steps=STEPS, shots=SHOTS, noise_ratio=NOISE_RATIO, seed=SEED,
                    eval_every=EVAL_EVERY, **extra)
cfg

# %% [markdown]
# ## Train
# The dashboard shows the training query loss, the validation accuracy and (on noisy tasks) the
# probability mass the sampler puts on noisy tasks; its status line says what the run is doing
# (training, validating, testing, with counts). It has no buttons: the kernel is busy running this
# cell and could not receive a click. The controls at the end are the interactive version.

# %%
from atslib.display import widgets

if COMMITTED:   # draw a committed run: nothing is trained
    record = atslib.load_run(COMMITTED, with_model=False)
    cfg, history, s = record["config"], record["history"], record["summary"]
    source = f"committed run {COMMITTED.replace('../', '')}"
else:
    dashboard = widgets.TrainingDashboard(every=max(1, STEPS // 20))
    run = dashboard.run(cfg, out=RUN_DIR, overwrite=True)
    history, s, source = run.history_frame(), run.summary, "trained here"

# %% [markdown]
# ## Learning curves and test accuracy

# %%
fig, _ = plots.learning_curves(history, label=cfg.method)
fig.suptitle(f"{cfg.method}, {cfg.shots}-shot, noise ratio {cfg.noise_ratio}, {cfg.steps} steps from scratch, one run "
             f"(seed {cfg.seed}; {source}): a demonstration", fontsize=9)
fig.tight_layout()
plots.savefig(fig, "02_learning_curves", FIG_DIR)
ncm = reports.nearest_mean_baseline(load_images(), cfg.ways, cfg.shots, cfg.queries, cfg.n_test_tasks, cfg.test_seed)
print(f"{cfg.method}: test accuracy {s['test_mean'] * 100:.2f} ± {s['test_ci95'] * 100:.2f}% over {s['n_test_tasks']} "
      f"meta-test tasks after {s['steps_done']} steps ({s['wall_seconds']:.0f} s of training); best validation "
      f"{s['best_val'] * 100:.2f}% at step {s['best_step']}")
print(f"nearest class mean on raw pixels, same tasks: {ncm[0] * 100:.2f} ± {ncm[1] * 100:.2f}%")
print(json.dumps({k: s[k] for k in ("test_mean", "test_ci95", "best_val", "wall_seconds")}, indent=1))

# %% [markdown]
# ## Interactive training (JupyterLab)
# Press **Start** to train another run in the background with the configuration above (its run
# directory gets a `-live` suffix); **Stop** answers at once, disables itself, and the run ends
# cleanly after the current step: validated, then tested on the 600 meta-test tasks (the status
# counts them; about 10–20 s). Under papermill this cell only draws the idle controls.

# %%
live = widgets.TrainingDashboard(every=5)
live.controls(cfg, out=RUN_DIR + "-live", overwrite=True)
