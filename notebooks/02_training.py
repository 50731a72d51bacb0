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
# # 02 · The learner: meta-training ANIL with uniform task sampling
#
# ANIL (Raghu et al. 2020) meta-learns a conv-4 backbone whose linear head adapts to each task in
# a few SGD steps on the support set (the *inner loop*); the meta-gradient of the query loss after
# adaptation updates everything (second order: the *outer loop*). Tasks are drawn **uniformly**
# from the pool - the baseline that ATS improves on. Validation on fixed clean meta-val tasks picks
# the checkpoint; the final score is the mean accuracy over 600 fixed meta-test tasks with a 95%
# interval (1.96·std/√600).
#
# **What you will learn**
# - what one inner loop does: the support loss falling over the head's SGD steps, and the query
#   accuracy before and after;
# - how a run is configured, trained, validated and tested, and what its learning curves look like;
# - why validation and test accuracy differ by about ten points.
#
# **How long.** The default, 300 uniform steps on clean tasks, makes Run All take about 150 s on two
# CPU cores (measured with one of them busy with another training; longer when a sweep loads both).
# ATS costs about ten times a uniform step.
#
# **Where this sits in the course.** Previous: `01_tasks` (what a task and a noisy task are). Next:
# `03_factors` (the two signals ATS reads from each task: loss and gradient similarity).
#
# **This run is the start of everything later.** The default configuration (uniform, clean, 1-shot,
# 300 steps, seed 0) is exactly the committed run `results/pretrain/1shot/uniform-s0`: its best
# checkpoint is the clean-pretrained start (`--init`) from which every noisy-task experiment of the
# later notebooks (`03_factors` to `09_regimes`) trains. The gallery (`make figures`) draws that
# committed run (`-p COMMITTED …`) instead of training again, so its figure is the same on every
# machine; a run trained here follows the same curve but, in float32 on another CPU, lands a few
# tenths of a point away, not on the bit (README, "What reproduces"; the paragraph under the learning
# curves compares the two).
#
# Parameters: `METHOD` (any of `atslib.METHODS`), `STEPS`, `SHOTS`, `NOISE_RATIO`, `SEED`.
# The dashboard updates while training runs; in JupyterLab the **Start / Stop** controls at the end
# train in the background and can be stopped at any time (the run keeps what it learnt).

# %% tags=["parameters"]
SMOKE = False
METHOD = "uniform"
STEPS = 300
SHOTS = 1
QUERIES = 10  # query drawings per class, as in every committed sweep (Config's default is 15)
NOISE_RATIO = 0.0
SEED = 0
EVAL_EVERY = 50
RUN_DIR = "../build/runs/02_training"
FIG_DIR = None
COMMITTED = None  # a run directory to draw instead of training (the gallery: the pretrained start)
TORCH_THREADS = 1  # many small ops: on 2 busy cores one thread is far faster than two (0.3 vs 3.5 s a step)

# %%
import dataclasses
import json

import pandas as pd
import torch

import atslib
from atslib.display import plots
from atslib.display.prose import num, pct, pts, say
from atslib.study import reports
from atslib.data import load_images

torch.set_num_threads(TORCH_THREADS)
extra = {}
if SMOKE:
    STEPS, EVAL_EVERY = 6, 3
    extra = dict(n_val_tasks=10, n_test_tasks=30, queries=5)
cfg = atslib.Config(method=METHOD, steps=STEPS, shots=SHOTS, noise_ratio=NOISE_RATIO, seed=SEED,
                    eval_every=EVAL_EVERY, **{"queries": QUERIES, **extra})


def config_changes(c) -> pd.DataFrame:
    """The fields of a Config that differ from the defaults (the full repr is ~50 fields long)."""
    return pd.DataFrame([{"field": f.name, "value": getattr(c, f.name), "default": f.default}
                         for f in dataclasses.fields(c) if getattr(c, f.name) != f.default])


changes = config_changes(cfg)
display(changes.style.hide(axis="index"))
say(f"**What this shows.** Only {len(changes)} of the {len(dataclasses.fields(cfg))} settings of `Config` differ "
    f"from their defaults here ({', '.join(changes['field'])}); everything else - {cfg.ways}-way tasks, "
    f"{cfg.inner_steps} inner steps while training and {cfg.test_inner_steps} at "
    f"validation and test, meta-batch {cfg.meta_batch} of a pool of {cfg.pool_size} - is the default every run "
    "uses. `cfg` itself prints all of them.")

# %% [markdown]
# ## One inner loop, by hand
# The learner's inner loop on one meta-test task, from the committed clean-pretrained start: the
# backbone's features of the support and query drawings, then SGD steps on a copy of the linear
# head (`atslib.maml.head_outputs`, the part of ANIL after the backbone) with the support loss, and
# the query accuracy after each number of steps. Nothing here changes the model.

# %%
from atslib import maml
from atslib.datasets import build_setup
from atslib.setup import init_from, test_tasks

START = "../results/pretrain/1shot/uniform-s0"
start = build_setup(atslib.load_run(START, with_model=False)["config"])
init_from(start, START)
scfg, p = start.cfg, {k: v.detach() for k, v in start.model.named_parameters()}
start_sum = atslib.load_run(START, with_model=False)["summary"]
chunk = test_tasks(start)[0]
task = chunk[[0]]
W, b = p["head.weight"][None], p["head.bias"][None]
with torch.no_grad():
    f_s, f_q = maml.anil_features(start.model, p, task.x_s, task.x_q)
rows = []
for k in range(scfg.test_inner_steps + 1):
    out_s = maml.head_outputs(W, b, f_s, f_s, task.y_s, task.m_s, k, scfg.inner_lr, first_order=True).detach()
    out_q = maml.head_outputs(W, b, f_s, f_q, task.y_s, task.m_s, k, scfg.inner_lr, first_order=True).detach()
    rows.append({"inner step": k, "support loss": float(maml.task_loss(out_s, task.y_s)),
                 "query loss": float(maml.task_loss(out_q, task.y_q)),
                 "query accuracy": float(maml.task_score(out_q, task.y_q))})
inner = pd.DataFrame(rows)
display(inner.style.hide(axis="index").format(precision=3))
_, before = maml.evaluate(start.model, p, chunk, 0, scfg.inner_lr)                 # the same 100 tasks, no step
_, after = maml.evaluate(start.model, p, chunk, scfg.test_inner_steps, scfg.inner_lr)
first, last = inner.iloc[0], inner.iloc[-1]
say(f"**What this shows.** On this {scfg.ways}-way {scfg.shots}-shot task the support loss falls from "
    f"{num(first['support loss'])} to {num(last['support loss'])} over {scfg.test_inner_steps} steps of the head "
    f"(learning rate {scfg.inner_lr}), and the query accuracy goes from {pct(first['query accuracy'])} to "
    f"{pct(last['query accuracy'])}. Over the first {len(chunk)} meta-test tasks the head adapted this way scores "
    f"{pct(float(after.mean()), 1)} on the query sets, against {pct(float(before.mean()), 1)} before any step "
    f"(chance: {pct(1 / scfg.ways)})"
    + (": the backbone alone does not classify, the adapted head does. " if float(before.mean()) < 1.25 / scfg.ways
       else ". ")
    + f"Training "
    f"uses {scfg.inner_steps} inner steps; the outer loop then differentiates through them.")

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
v = history.dropna(subset=["val_acc"])
k = max(1, len(history) // 10)
say(f"**What this shows.** Over {s['steps_done']} steps the training query loss falls from "
    f"{num(history['train_loss'].iloc[:k].mean())} (mean of the first tenth) to "
    f"{num(history['train_loss'].iloc[-k:].mean())} (last tenth), and the validation accuracy goes from "
    f"{pct(v['val_acc'].iloc[0], 1)} at step {int(v['step'].iloc[0])} to its best, {pct(s['best_val'], 1)} at step "
    f"{s['best_step']}. The test accuracy, {pct(s['test_mean'], 1)} ± {num(s['test_ci95'] * 100, 1)} points, is "
    f"{num(abs(s['test_mean'] - ncm[0]) * 100, 1)} points {'above' if s['test_mean'] > ncm[0] else 'below'} the "
    f"nearest class mean on raw pixels ({pct(ncm[0], 1)}), and "
    f"{num(abs(s['test_mean'] - s['best_val']) * 100, 1)} points "
    f"{'above' if s['test_mean'] > s['best_val'] else 'below'} the best validation accuracy, which the next "
    "section explains."
    + ("" if COMMITTED else f" The committed run of the same configuration tested at {pct(start_sum['test_mean'], 1)} "
       f"(best validation {pct(start_sum['best_val'], 1)}): this run is "
       f"{pts((s['test_mean'] - start_sum['test_mean']) * 100, 1)} from it on the test."))

# %% [markdown]
# ## Why validation and test differ
# Both are scored the same way - clean 5-way tasks, the same number of query drawings, the same
# `test_inner_steps` inner steps - so the gap is either sampling (100 validation tasks against 600
# test tasks) or the classes (16 meta-validation classes against 20 meta-test classes). Below, on
# the committed clean-pretrained start (the default run): the 100 validation tasks' accuracy with its
# 95% interval, and a model-free yardstick, the nearest class mean on raw pixels, on 600 tasks of each
# split.

# %%
import numpy as np

from atslib.metrics import mean_ci95
from atslib.setup import val_tasks
from atslib.tasks import EpisodeSampler, fixed_tasks


def nearest_mean(split, n):
    """Nearest class mean on raw pixels over n fixed tasks of a split (as reports.nearest_mean_baseline)."""
    sampler = EpisodeSampler(start.data, split, scfg.ways, scfg.shots, scfg.queries)
    accs = []
    for t in fixed_tasks(sampler, n, scfg.test_seed, split):
        xs, xq = t.x_s.flatten(2), t.x_q.flatten(2)
        proto = np.stack([xs[:, t.y_s[0] == c].mean(1).numpy() for c in range(scfg.ways)], 1)
        d = ((xq.numpy()[:, :, None, :] - proto[:, None]) ** 2).sum(-1)
        accs.append((d.argmin(-1) == t.y_q.numpy()).mean(1))
    return mean_ci95(np.concatenate(accs))


_, val_scores = maml.evaluate(start.model, p, val_tasks(start), scfg.test_inner_steps, scfg.inner_lr)
val_m, val_ci = mean_ci95(val_scores.numpy())
ncm_val, ncm_test = nearest_mean("val", 100 if SMOKE else 600), nearest_mean("test", 100 if SMOKE else 600)
gap = (start_sum["test_mean"] - val_m) * 100
display(pd.DataFrame([
    {"": "clean-pretrained start", "validation": f"{val_m * 100:.1f} ± {val_ci * 100:.1f} ({len(val_scores)} tasks)",
     "test": f"{start_sum['test_mean'] * 100:.1f} ± {start_sum['test_ci95'] * 100:.1f} ({start_sum['n_test_tasks']} tasks)"},
    {"": "nearest class mean, raw pixels", "validation": f"{ncm_val[0] * 100:.1f} ± {ncm_val[1] * 100:.1f}",
     "test": f"{ncm_test[0] * 100:.1f} ± {ncm_test[1] * 100:.1f}"}]).style.hide(axis="index"))
sampling = abs(gap) > 2 * (val_ci + start_sum["test_ci95"]) * 100
say(f"**What this shows.** The start tests {num(abs(gap), 1)} points {'above' if gap > 0 else 'below'} its "
    f"validation accuracy, with "
    f"{scfg.test_inner_steps} inner steps and {scfg.queries} queries per class on both. "
    + ("That is several times the two intervals together, so it is not the sampling of 100 against 600 tasks. "
       if sampling else "That is within the sampling error of 100 against 600 tasks. ")
    + f"The classes differ: even the nearest class mean on raw pixels, which learns nothing, scores "
    f"{num(abs(ncm_test[0] - ncm_val[0]) * 100, 1)} points {'more' if ncm_test[0] > ncm_val[0] else 'less'} on the "
    f"{len(start.data.classes('test'))} meta-test classes ({pct(ncm_test[0], 1)}) than on the "
    f"{len(start.data.classes('val'))} meta-validation ones ({pct(ncm_val[0], 1)}), so the test classes are "
    f"{'easier' if ncm_test[0] > ncm_val[0] else 'harder'} to tell apart"
    f"{', and a learnt backbone widens that gap' if abs(gap) > abs(ncm_test[0] - ncm_val[0]) * 100 else ''}. "
    "Validation is only used to pick a checkpoint (and to compare methods on the same tasks); its level is not "
    "comparable with the test's.")

# %% [markdown]
# ## Interactive training (JupyterLab)
# Press **Start** to train another run in the background with the configuration above (its run
# directory gets a `-live` suffix); **Stop** answers at once, disables itself, and the run ends
# cleanly after the current step: validated, then tested on the 600 meta-test tasks (the status
# counts them; about 10–20 s). Under papermill this cell only draws the idle controls.

# %%
live = widgets.TrainingDashboard(every=5)
live.controls(cfg, out=RUN_DIR + "-live", overwrite=True)

# %% [markdown]
# ## Summary

# %%
say(f"1. One inner loop of {scfg.test_inner_steps} head steps takes the query accuracy of the first {len(chunk)} "
    f"meta-test tasks from {pct(float(before.mean()), 1)} to {pct(float(after.mean()), 1)}.")
say(f"2. This run ({cfg.method}, {s['steps_done']} steps) tests at {pct(s['test_mean'], 1)} ± "
    f"{num(s['test_ci95'] * 100, 1)} points, against {pct(ncm[0], 1)} for the nearest class mean on raw pixels.")
say(f"3. The start tests {num(abs(gap), 1)} points {'above' if gap > 0 else 'below'} its validation: the meta-test classes are "
    f"{'easier' if ncm_test[0] > ncm_val[0] else 'harder'} than the meta-validation ones (raw pixels: "
    f"{pts((ncm_test[0] - ncm_val[0]) * 100, 1)})"
    + (", and the gap is far beyond the sampling error of the tasks." if sampling else "."))

# %% [markdown]
# ## Try this
# Set `STEPS = 600`: the run trains twice as long from scratch (about 3 minutes); expect the
# validation curve to keep rising slowly and the test accuracy to gain a point or two over the
# 300-step start, while the validation-test gap stays, because it comes from the classes.
