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
# # 04 · The scheduler, one step at a time
#
# ATS (Yao et al., NeurIPS 2021) learns *which* tasks a meta-learner should train on. This notebook
# takes one ATS step apart on a real pool of noisy tasks: every quantity is computed by hand with
# plain `torch`, then checked against the library's own step (`atslib.ats.ATS`).
#
# **What you will learn**
# - the two factors the scheduler reads (query loss after adaptation; cosine of the support- and
#   query-set gradients), computed task by task with autograd and for the whole pool with `torch.func.vmap`;
# - how the scheduler turns them into probabilities, draws B tasks without replacement and scores
#   the draw with its exact Plackett–Luce log-probability;
# - how a look-ahead model, a paired reward and a leave-one-out baseline give one REINFORCE update of φ;
# - what φ alone learns in a few dozen steps with θ frozen: how fast its ranking of clean above noisy
#   tasks forms, and how slowly its probabilities follow.
#
# **How long.** Run All takes about 60 s on two CPU cores at light load (the one-step lesson in
# float64, for exact checks, then `STEPS_FROZEN` steps that train φ only, in float32 as runs do;
# nearly twice that while other jobs share the cores); nothing long trains. `SMOKE = True` takes
# about 15 s, most of it imports and `torch.func`'s first call. Figures go to `build/figures/`
# (or `FIG_DIR`).
#
# **Where this sits in the course.** Previous: `03_factors` (what the two factors look like over
# whole training runs). Next: `05_race` (ATS and three other schedulers trained side by side, live).

# %% tags=["parameters"]
SMOKE = False
RESULTS_DIR = "../results"
START = "pretrain/1shot/uniform-s0"  # the committed clean-pretrained model, under RESULTS_DIR
NOISE = 0.6            # share of meta-training tasks whose support labels are corrupted
SEED = 0               # the task stream (pools, validation tasks, draws) and phi's initial weights
STEP = 0               # which pool of the stream the one-step lesson takes apart
STEPS_FROZEN = 30      # phi-only steps of the last experiment (theta frozen)
METHOD_FROZEN = "ats"  # or an ablation: "ats-loss-only", "ats-sim-only", "ats-random-phi"
PHI_LR = None          # phi's Adam learning rate; None: the library's Config.scheduler_lr
FIG_DIR = None         # None: $FIG_DIR, else build/figures/
TORCH_THREADS = 1      # many small ops: one thread is faster on two busy cores

# %%
import copy
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

from atslib.config import Config
from atslib.datasets import build_setup
from atslib.display import plots
from atslib.features import pool_factors
from atslib.methods import make_method
from atslib.metrics import auc
from atslib.runs import load_run
from atslib.scheduler import SchedulerNet, plackett_luce_log_prob, standardize
from atslib.setup import copy_params, init_from
from atslib.step import State, meta_step, step_inputs
from atslib.tasks import stream

SMALL = {}
if SMOKE:
    STEPS_FROZEN = 3
    SMALL = dict(pool_size=4, queries=2, val_tasks=2)     # a tiny pool: the maths, not the numbers
torch.set_num_threads(TORCH_THREADS)
torch.set_default_dtype(torch.float64)     # the lesson in float64: hand and library agree to rounding
NOISY, CLEAN = "#d62728", "#1f77b4"


def say(text: str) -> None:
    display(Markdown(text))


# %% [markdown]
# ## 1 · Algorithm 1, as the library implements it
#
# At step $t$ the meta-model $\theta$ (here ANIL: a conv-4 backbone whose linear head adapts) sees a
# pool of $P$ candidate tasks $\mathcal{T}_i = (\mathcal{D}_i^s, \mathcal{D}_i^q)$.
#
# 1. **Factors** at $\theta$, no graph back to $\theta$:
#    $L_i = \mathcal{L}(\mathcal{D}_i^q; \theta_i)$, the query loss after $K$ inner SGD steps of
#    size $\alpha$ on $\mathcal{D}_i^s$ (the head only), and
#    $s_i = \cos\big(\nabla_{\theta}\mathcal{L}(\mathcal{D}_i^s;\theta),\ \nabla_{\theta}\mathcal{L}(\mathcal{D}_i^q;\theta)\big)$
#    (the slides use the inner product $\langle\cdot,\cdot\rangle$; we use its cosine, see §9).
# 2. **Scheduler**: logits $g_i = g_\phi\big(z(L)_i, z(s)_i, t/N;\ \text{the other tasks}\big)$ with
#    $z$ the z-score within the pool and $t/N$ the training progress, probabilities $w = \mathrm{softmax}(g)$ (the slides:
#    $w_i = g(\mathcal{L}(\mathcal{D}_i^q;\theta_i), \langle\nabla\mathcal{L}(\mathcal{D}_i^s;\theta_0), \nabla\mathcal{L}(\mathcal{D}_i^q;\theta_0)\rangle;\phi)$).
# 3. **Two draws** $I^{(1)}, I^{(2)}$ of $B$ tasks without replacement, each with its exact
#    Plackett–Luce log-probability
#    $\log P(I;\phi) = \sum_{k=1}^{B}\Big[g_{i_k} - \log\sum_{m \notin \{i_1,\dots,i_{k-1}\}} e^{g_m}\Big]$.
# 4. **Look-ahead** for each draw: $\tilde\theta^{(j)} = \theta - \beta\,\mathrm{clip}\Big(\nabla_\theta \frac{1}{B}\sum_{i\in I^{(j)}} L_i(\theta)\Big)$
#    (second-order meta-gradient, its norm clipped).
# 5. **Paired reward** on the same $V$ fresh clean validation tasks:
#    $R^{(j)} = \mathcal{L}_{val}(\theta) - \mathcal{L}_{val}(\tilde\theta^{(j)})$.
# 6. **Leave-one-out baseline**: with two draws $A^{(1)} = R^{(1)} - R^{(2)}$ and $A^{(2)} = R^{(2)} - R^{(1)}$.
# 7. **REINFORCE**: one Adam step (learning rate $\gamma$) on $\phi$ down the surrogate
#    $-\frac{1}{2}\sum_j A^{(j)} \log P(I^{(j)};\phi)$, i.e. up the expected reward: a draw that did
#    better than the other becomes more likely (the slides write the step as
#    $\phi \leftarrow \phi - \gamma\nabla_\phi \log P(\mathbf{W};\phi)\,(\frac{1}{N_v}\sum_i R_i - b)$).
# 8. **θ's real update**: draw $B$ tasks with the *updated* $\phi$ at temperature
#    $T_t = \max(T_{\min}, d^{\,t})$ and take one Adam step on their mean query loss.
#
# The cell below reads the values of these symbols from the configuration used here.

# %%
start = Path(RESULTS_DIR) / START
run = load_run(start, with_model=False)                    # the start's config and summary
base = run["config"]
kept = ("dataset", "data", "ways", "shots", "queries", "width", "max_pools", "inner", "inner_lr", "inner_steps",
        "first_order", "flip_prob", "noise_on")             # what the model and its tasks were trained with
cfg = Config.from_dict({**{k: getattr(base, k) for k in kept}, "method": "ats", "noise_ratio": NOISE, "seed": SEED,
                        "steps": STEPS_FROZEN + 1, "device": "cpu", "init": str(start),
                        "scheduler_lr": PHI_LR, **SMALL})   # ATS's own options: the library's defaults
P, B, V, K = cfg.pool_size, cfg.meta_batch, cfg.val_tasks, cfg.inner_steps
say(f"P = {P} pool tasks, B = {B} per draw, {cfg.draws_per_step} draws per step, V = {V} validation tasks; "
    f"inner loop K = {K} steps of α = {cfg.inner_lr:g} ({cfg.inner.upper()}, meta-gradient "
    f"{'first' if cfg.first_order else 'second'} order); look-ahead β = {cfg.lookahead_lr:g}, clipped to norm "
    f"{cfg.lookahead_max_norm:g}; φ: {cfg.scheduler_hidden} hidden units, Adam lr γ = {cfg.scheduler_lr:g}; "
    f"real draw at T = max({cfg.temperature:g}, {cfg.temperature_decay:g}^t); θ: Adam lr {cfg.outer_lr:g}.")

# %% [markdown]
# ## 2 · The clean-pretrained model and one noisy pool
# θ is the committed start of every noisy experiment, loaded as `loop.Run` does with `--init`
# (`setup.init_from`). The pool comes from the library's task stream (`step.step_inputs`): the method
# sees it *without* its noisy mask; the mask comes back separately, for us only.

# %%
setup = build_setup(cfg)
init_from(setup, cfg.init)                                  # theta <- results/pretrain/.../best.pt
model = setup.model
theta = {k: v.detach().clone() for k, v in model.named_parameters()}
x, truth = step_inputs(setup, STEP)                         # x.pool: what ATS sees; truth: which tasks are noisy
pool, noisy = x.pool, truth.noisy
s = run["summary"]
say(f"Start: `{START}` — {base.method} {base.inner.upper()} trained {s['steps_done']} steps on clean {base.ways}-way "
    f"{base.shots}-shot tasks ({base.queries} queries per class), test accuracy {s['test_mean']:.2%} ± "
    f"{s['test_ci95']:.2%}. The pool of step {STEP}: {int(noisy.sum())} of its {P} tasks are noisy (requested noise "
    f"ratio {NOISE:g}; in a noisy task each support label is replaced with probability {cfg.flip_prob:g}); the "
    f"method's copy has noisy mask `{pool.noisy}`.")

# %% [markdown]
# ## 3 · The two factors, by hand
# A loop over the tasks with plain autograd: the query loss after $K$ SGD steps on the head, and the
# cosine of the support- and query-set gradients w.r.t. *all* parameters at θ (no adaptation).

# %%
p0 = {k: v.clone().requires_grad_(True) for k, v in theta.items()}


def set_loss(p, x_, y_):
    """One set's loss at p, no adaptation."""
    return F.cross_entropy(model.head(p, model.features(p, x_)), y_)


def adapted_query_loss(p, x_s, y_s, x_q, y_q, graph=False):
    """ANIL: K SGD steps of size alpha on the head (support set), then the query loss.
    graph=True keeps the second-order graph to p (a meta-gradient); False: a score, no graph to p."""
    with torch.set_grad_enabled(graph):
        f_s, f_q = model.features(p, x_s), model.features(p, x_q)
    W, b = p["head.weight"], p["head.bias"]
    if not graph:
        W, b = W.detach().requires_grad_(True), b.detach().requires_grad_(True)
    for _ in range(K):
        gW, gb = torch.autograd.grad(F.cross_entropy(F.linear(f_s, W, b), y_s), (W, b), create_graph=graph)
        W, b = W - cfg.inner_lr * gW, b - cfg.inner_lr * gb
    return F.cross_entropy(F.linear(f_q, W, b), y_q)


def flat_grad(loss, p):
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(p.values()))])


loss_loop, sim_loop = [], []
for i in range(P):
    xs, ys, xq, yq = pool.x_s[i], pool.y_s[i], pool.x_q[i], pool.y_q[i]
    loss_loop.append(adapted_query_loss(p0, xs, ys, xq, yq).detach())
    g_s, g_q = flat_grad(set_loss(p0, xs, ys), p0), flat_grad(set_loss(p0, xq, yq), p0)
    sim_loop.append(g_s @ g_q / (g_s.norm() * g_q.norm()))
loss_loop, sim_loop = torch.stack(loss_loop), torch.stack(sim_loop)
say(f"{P} tasks scored one at a time: losses from {loss_loop.min():.3f} to {loss_loop.max():.3f}, cosines from "
    f"{sim_loop.min():.3f} to {sim_loop.max():.3f}.")

# %% [markdown]
# The same maths for the whole pool in one program: `torch.func.grad` inside `torch.func.vmap` over
# the task axis (no Python loop over tasks; the library's fast path on a GPU). It must give the loop's
# numbers, and so must the library's `features.pool_factors`.

# %%
from torch.func import grad, vmap


def adapted_query_loss_func(p, x_s, y_s, x_q, y_q):
    """adapted_query_loss for torch.func: grad() instead of autograd.grad."""
    f_s, f_q = model.features(p, x_s), model.features(p, x_q)
    W, b = p["head.weight"], p["head.bias"]
    inner = grad(lambda W_, b_: F.cross_entropy(F.linear(f_s, W_, b_), y_s), argnums=(0, 1))
    for _ in range(K):
        gW, gb = inner(W, b)
        W, b = W - cfg.inner_lr * gW, b - cfg.inner_lr * gb
    return F.cross_entropy(F.linear(f_q, W, b), y_q)


loss_vmap = vmap(adapted_query_loss_func, in_dims=(None, 0, 0, 0, 0))(theta, pool.x_s, pool.y_s, pool.x_q, pool.y_q)
per_task_grad = vmap(grad(set_loss), in_dims=(None, 0, 0))             # {name: (P, ...)}
flat = lambda g: torch.cat([v.flatten(1) for v in g.values()], 1)      # noqa: E731
G_s, G_q = flat(per_task_grad(theta, pool.x_s, pool.y_s)), flat(per_task_grad(theta, pool.x_q, pool.y_q))
sim_vmap = (G_s * G_q).sum(1) / (G_s.norm(dim=1) * G_q.norm(dim=1))

lib = pool_factors(model, theta, pool, K, cfg.inner_lr, cfg.inner)     # the library's factors
for name, a, b_ in (("loss: vmap vs loop", loss_vmap, loss_loop), ("sim: vmap vs loop", sim_vmap, sim_loop),
                    ("loss: pool_factors vs loop", lib.loss, loss_loop), ("sim: pool_factors vs loop", lib.sim_cos, sim_loop)):
    torch.testing.assert_close(a, b_)
    print(f"{name:28s} agree, max |difference| {float((a - b_).abs().max()):.1e}")

# %% [markdown]
# One row per task: the truth (noisy or not, which the scheduler never sees) next to the two factors
# and their z-scores, the scheduler's actual inputs.

# %%
z = torch.stack([(v - v.mean()) / v.std(unbiased=False) for v in (loss_loop, sim_loop)], 1)   # (P, 2)
torch.testing.assert_close(z, torch.stack([standardize(loss_loop), standardize(sim_loop)], 1))
table = pd.DataFrame({"task": range(P), "noisy": noisy.numpy(), "loss": loss_loop.numpy(), "sim": sim_loop.numpy(),
                      "z(loss)": z[:, 0].numpy(), "z(sim)": z[:, 1].numpy()})
display(table.style.format(precision=3).hide(axis="index"))
clean = ~noisy.numpy()
say(f"Noisy tasks: mean loss {table.loss[~clean].mean():.3f} vs {table.loss[clean].mean():.3f} for clean ones, mean "
    f"similarity {table.sim[~clean].mean():.3f} vs {table.sim[clean].mean():.3f}. As a ranking of clean above noisy, "
    f"AUC of −loss {auc(-table.loss, clean):.2f}, of similarity {auc(table.sim, clean):.2f} (1 = perfect, 0.5 = chance).")

# %%
fig, ax = plt.subplots(figsize=(4, 3.2))
for flag, colour, marker in ((False, CLEAN, "o"), (True, NOISY, "x")):
    e = table[table.noisy == flag]
    ax.scatter(e.loss, e.sim, color=colour, marker=marker, label="noisy" if flag else "clean")
ax.set(xlabel="query loss after adaptation", ylabel="gradient similarity (cosine)",
       title=f"the pool of step {STEP} (noise {NOISE:g})")
ax.legend(fontsize=7)
fig.tight_layout()
plots.savefig(fig, "04_scheduler_factors", FIG_DIR)
dl, ds = table.loss[~clean].mean() - table.loss[clean].mean(), table.sim[~clean].mean() - table.sim[clean].mean()
say(f"The {int((~clean).sum())} noisy tasks (crosses) sit at a mean loss {dl:+.3f} and a mean similarity {ds:+.3f} "
    f"relative to the clean ones: " + ("high loss and low similarity, the paper's picture of noisy tasks."
                                       if dl > 0 and ds < 0 else "not the paper's picture (high loss, low similarity) in this pool."))

# %% [markdown]
# ## 4 · The scheduler's logits and two draws
# φ is built as `ATS` builds it (`SchedulerNet`, seeded by the `scheduler-init` stream, output layer at
# zero, so a fresh ATS samples uniformly). A random φ (`zero_output=False`, the `ats-random-phi`
# ablation) shows what a non-trivial ranking looks like.

# %%
phi = SchedulerNet(2, cfg.scheduler_hidden, generator=stream(cfg.seed, 0, "scheduler-init"), zero_output=True)
phi_random = SchedulerNet(2, cfg.scheduler_hidden, generator=stream(cfg.seed, 0, "scheduler-init"), zero_output=False)
logits, logits_random = phi(z, x.progress), phi_random(z, x.progress)
probs_before = torch.softmax(logits.detach(), 0)
display(table[["task", "noisy"]].assign(**{"logit, ATS's φ": logits.detach().numpy(),
                                           "logit, random φ": logits_random.detach().numpy(),
                                           "prob, random φ": torch.softmax(logits_random.detach(), 0).numpy()})
        .style.format(precision=3).hide(axis="index"))
pr = torch.softmax(logits_random.detach(), 0)
say(f"ATS's φ: every logit {float(logits.detach().abs().max()):g}, every probability {float(probs_before[0]):.3f} = "
    f"1/{P}. The random φ's probabilities range from {float(pr.min()):.3f} to {float(pr.max()):.3f}.")

# %% [markdown]
# A draw without replacement from softmax(g / T) is the Gumbel-top-k trick: add independent Gumbel noise
# to each logit and keep the B largest (equivalent to drawing one task at a time and renormalising).
# Its log-probability is the sum over positions of the drawn task's logit minus the logsumexp over
# the tasks not drawn yet.

# %%
def gumbel_top_k(logits, k, g, T=1.0):
    u = torch.rand(logits.shape, generator=g, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    return torch.topk(logits.detach() / T - torch.log(-torch.log(u)), k).indices


def log_prob_by_hand(logits, order, T=1.0):
    s_, left, total = logits / T, torch.ones(len(logits), dtype=torch.bool), 0.0
    for i in order.tolist():
        total = total + s_[i] - torch.logsumexp(s_[left], 0)
        left = left.clone()
        left[i] = False
    return total


draws = [gumbel_top_k(logits, B, x.gen) for _ in range(cfg.draws_per_step)]   # the step's own draw stream
logps = [log_prob_by_hand(logits, d) for d in draws]
for j, d in enumerate(draws):
    mine, mine_r = logps[j].detach(), log_prob_by_hand(logits_random, d).detach()
    lib_, lib_r = plackett_luce_log_prob(logits, d).detach(), plackett_luce_log_prob(logits_random, d).detach()
    torch.testing.assert_close(mine, lib_)
    torch.testing.assert_close(mine_r, lib_r)
    print(f"draw {j + 1}: tasks {d.tolist()} (noisy: {noisy[d].tolist()}); log P = {float(mine):.4f} with ATS's φ, "
          f"{float(mine_r):.4f} with the random φ; plackett_luce_log_prob agrees "
          f"(max |difference| {max(float((mine - lib_).abs()), float((mine_r - lib_r).abs())):.1e})")
say(f"With the uniform φ every ordered draw has log P = −log({P}·{P - 1}) = {-np.log(P * (P - 1)):.4f}; the "
    f"gradient of log P w.r.t. φ is not zero, which is all REINFORCE needs.")

# %% [markdown]
# ## 5 · Look-aheads and paired rewards
# Each draw moves θ one clipped SGD step along its tasks' mean second-order meta-gradient. Both
# look-ahead models are scored on the same fresh clean validation tasks (`x.reward_tasks()`), against θ
# on those tasks: the tasks' own difficulty cancels in the difference.

# %%
cache = {}


def mean_meta_grad(order):
    """Mean over the tasks of ``order`` of d L_i(theta) / d theta, each task's meta-gradient taken once."""
    for i in order.tolist():
        if i not in cache:
            loss_i = adapted_query_loss(p0, pool.x_s[i], pool.y_s[i], pool.x_q[i], pool.y_q[i], graph=True)
            cache[i] = torch.autograd.grad(loss_i, list(p0.values()))
    return [torch.stack(gs).mean(0) for gs in zip(*(cache[i] for i in order.tolist()))]


def val_loss(p, tasks):
    return float(torch.stack([adapted_query_loss(p, tasks.x_s[v], tasks.y_s[v], tasks.x_q[v], tasks.y_q[v])
                              for v in range(len(tasks))]).mean().detach())


val = x.reward_tasks()
looks, norms = [], []
for d in draws:
    g = mean_meta_grad(d)
    norm = torch.sqrt(sum((gk ** 2).sum() for gk in g))
    scale = min(1.0, cfg.lookahead_max_norm / (float(norm) + 1e-12))
    looks.append({k: v - cfg.lookahead_lr * scale * gk for (k, v), gk in zip(theta.items(), g)})
    norms.append(float(norm))
L_theta = val_loss(theta, val)
L_tilde = [val_loss(t, val) for t in looks]
R = [L_theta - lt for lt in L_tilde]
A = [R[0] - R[1], R[1] - R[0]]
for j in range(2):
    print(f"draw {j + 1}: {int(noisy[draws[j]].sum())} of {B} noisy; meta-gradient norm {norms[j]:.2f}"
          f"{' (clipped)' if norms[j] > cfg.lookahead_max_norm else ''}; L_val(θ~) = {L_tilde[j]:.4f}; "
          f"R = {R[j]:+.5f}; A = {A[j]:+.5f}")
win, lose = int(np.argmax(R)), int(np.argmin(R))
say(f"On the same {V} validation tasks L_val(θ) = {L_theta:.4f}. Draw {win + 1} (tasks {draws[win].tolist()}) did "
    f"better (R = {R[win]:+.5f} against {R[lose]:+.5f}), so its advantage is {A[win]:+.5f} and that of draw {lose + 1} "
    f"{A[lose]:+.5f}: the REINFORCE gradient points to a higher log-probability of draw {win + 1} and a lower one of "
    f"draw {lose + 1}.")

# %% [markdown]
# ## 6 · One REINFORCE step on φ
# Adam (the library's learning rate) down $-\frac12\sum_j A^{(j)}\log P(I^{(j)};\phi)$. At a first step
# the advantage bound has no running scale yet, so the advantages are used as they are.

# %%
opt_phi = torch.optim.Adam(phi.parameters(), lr=cfg.scheduler_lr)
surrogate = sum(-a * lp for a, lp in zip(A, logps)) / len(A)
opt_phi.zero_grad()
surrogate.backward()
opt_phi.step()
with torch.no_grad():
    logits_after = phi(z, x.progress)
probs_after = torch.softmax(logits_after, 0)
delta = (probs_after - probs_before).numpy()

fig, ax = plt.subplots(figsize=(6, 2.8))
ax.bar(range(P), delta, color=[NOISY if n else CLEAN for n in noisy.tolist()])
ax.axhline(0, color="grey", lw=0.8)
ax.set_xticks(range(P))
ax.set_xlabel("pool task (red: noisy, blue: clean)")
ax.set_ylabel("Δ probability")
ax.set_title(f"one REINFORCE step (Adam lr {cfg.scheduler_lr:g}): change of each task's probability", fontsize=9)
plots.savefig(fig, "04_scheduler_one_step", FIG_DIR)
m0, m1 = float(probs_before[noisy].sum()), float(probs_after[noisy].sum())
lp_after = [float(log_prob_by_hand(logits_after, d)) for d in draws]
say(f"log P of draw {win + 1}: {float(logps[win].detach()):.6f} → {lp_after[win]:.6f}; of draw {lose + 1}: "
    f"{float(logps[lose].detach()):.6f} → {lp_after[lose]:.6f}. "
    f"Probability mass on the noisy tasks: {m0:.5f} before, {m1:.5f} after ({m1 - m0:+.2e}). "
    f"{int(((delta > 0) & clean).sum())} of {int(clean.sum())} clean tasks and {int(((delta > 0) & ~clean).sum())} of "
    f"{int((~clean).sum())} noisy tasks gained probability; as a ranking of clean above noisy, the new logits have "
    f"AUC {auc(logits_after.numpy(), clean):.2f}. "
    + ("" if lp_after[win] - float(logps[win].detach()) > lp_after[lose] - float(logps[lose].detach()) else
       "(Adam's first step moves each parameter by about γ·sign(g), so it follows the gradient only roughly: here "
       "the winning draw did not gain on the other.) ")
    + ("The pool has no clean or no noisy task: the mass cannot move. " if clean.all() or not clean.any() else
       "This step moved probability *off* the noisy tasks. " if m1 < m0 else
       f"This step moved probability *towards* the noisy tasks: the winning draw held "
       f"{int(noisy[draws[win]].sum())} noisy task(s) too, and one REINFORCE step is a noisy estimate. ")
    + "At this learning rate one step moves little; §8 takes many.")

# %% [markdown]
# Then θ's real update: B tasks drawn with the *updated* φ at the step's temperature, one Adam step on
# their mean meta-gradient (the per-task meta-gradients of the look-aheads are reused).

# %%
T = max(cfg.temperature, cfg.temperature_decay ** STEP)
real = gumbel_top_k(logits_after, B, x.gen, T)
theta_new = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
opt_theta = torch.optim.Adam(theta_new.values(), lr=cfg.outer_lr)
for v, gk in zip(theta_new.values(), mean_meta_grad(real)):
    v.grad = gk.clone()
opt_theta.step()
say(f"Real draw at T = {T:g}: tasks {real.tolist()} ({int(noisy[real].sum())} noisy); θ moved by at most "
    f"{max(float((theta_new[k].detach() - theta[k]).abs().max()) for k in theta):.2e} per parameter.")

# %% [markdown]
# ## 7 · The same step by the library
# `atslib.ats.ATS` (built by `make_method`, as a `Run` builds it) takes the same pool, validation tasks
# and draw stream (`step_inputs` is a function of (seed, step)) on a copy of the same θ. Light wrappers
# record what its step passes between its pieces (look-aheads, rewards, draws, the REINFORCE update);
# nothing in the step changes.

# %%
x_lib, _ = step_inputs(setup, STEP)
ats = make_method(cfg, setup)
model_lib = copy.deepcopy(model)
state = State(model_lib, torch.optim.Adam(model_lib.parameters(), lr=cfg.outer_lr), ats)
seen = {"lookahead": [], "score": [], "update": []}


def recording(name, fn):
    def wrapped(*args):
        out = fn(*args)
        seen[name].append((args, out))
        return out
    return wrapped


ats.lookahead, ats.score = recording("lookahead", ats.lookahead), recording("score", ats.score)
ats.sched.update = recording("update", ats.sched.update)
out = ats.step(state, x_lib)
(lib_draws, lib_rewards), lib_up = seen["update"][0]
print(f"the library's step: draws {[d.indices.tolist() for d in lib_draws]}, rewards {lib_rewards}, "
      f"advantages {lib_up['advantages']}, real draw {out.indices.tolist()}")

# %% [markdown]
# With two draws the library's reward is $-\mathcal{L}_{val}(\tilde\theta^{(j)})$: it does not evaluate
# $\mathcal{L}_{val}(\theta)$, which is the same for both draws and cancels in the leave-one-out
# advantage. So the rewards are compared as $R^{(j)} = \mathcal{L}_{val}(\theta) + \text{reward}^{(j)}$;
# everything else is compared as it is.

# %%
def maxdiff(a, b_):
    return max(float((torch.as_tensor(u) - torch.as_tensor(v)).abs().max()) for u, v in zip(a, b_))


lib_looks, GRAD_ROW = [o[0] for _, o in seen["lookahead"]], "φ's REINFORCE gradient"
phi_diff = {k: float((ats.net.state_dict()[k] - v).abs().max()) for k, v in phi.state_dict().items()}
rows = [
    ("factor: loss", maxdiff([out.factors.loss], [loss_loop])),
    ("factor: sim (cosine)", maxdiff([out.factors.sim_cos], [sim_loop])),
    ("draws (indices, in order)", 0.0 if [d.indices.tolist() for d in lib_draws] == [d.tolist() for d in draws] else float("inf")),
    ("log P of each draw", maxdiff([d.log_prob.detach() for d in lib_draws], [lp.detach() for lp in logps])),
    ("look-ahead norms", maxdiff([o[1] for _, o in seen["lookahead"]], norms)),
    ("look-ahead models θ~", max(maxdiff([a[k] for k in theta], [b_[k] for k in theta]) for a, b_ in zip(lib_looks, looks))),
    ("L_val(θ~) = −reward", maxdiff([-r for r in lib_rewards], L_tilde)),
    ("paired reward R", maxdiff([L_theta + r for r in lib_rewards], R)),
    ("advantages (raw)", maxdiff(lib_up["advantages_raw"], A)),
    ("advantages (bounded)", maxdiff(lib_up["advantages"], A)),
    (GRAD_ROW, maxdiff([q.grad for q in ats.net.parameters()], [q.grad for q in phi.parameters()])),
    ("φ after the update", max(phi_diff.values())),
    ("real draw (indices)", 0.0 if out.indices.tolist() == real.tolist() else float("inf")),
    ("real draw's probabilities", maxdiff([out.probs], [torch.softmax(logits_after / T, 0)])),
    ("θ after its update", maxdiff([dict(model_lib.named_parameters())[k].detach() for k in theta], [theta_new[k].detach() for k in theta])),
]
check = pd.DataFrame(rows, columns=["quantity", "max |hand − library|"])
check["equal"] = check["max |hand − library|"] < 1e-9
display(check.style.format({"max |hand − library|": "{:.1e}"}).hide(axis="index"))
worst = check["max |hand − library|"].max()
print(f"equal: {bool(check['equal'].all())} (float64; largest difference {worst:.1e}, tolerance 1e-9)")
row, diffs = check.loc[check["max |hand − library|"].idxmax(), "quantity"], dict(rows)
where = max(phi_diff, key=phi_diff.get)
g_mine, g_lib = (float(n.get_parameter(where).grad.abs().max()) for n in (phi, ats.net))
say(f"The largest difference is in *{row}*." + (
    f" It sits in `{where}`, whose largest gradient entry is {g_mine:.1e} here and {g_lib:.1e} in the library: "
    + ("rounding around an exact 0 (the output bias shifts every logit alike, which leaves every log P unchanged). "
       if where == "score.2.bias" else "a gradient entry of the order of ε. ")
    + f"Adam's first step γ·g/(|g| + ε), ε = {opt_phi.defaults['eps']:g}, "
    f"turns such rounding into a visible step; every other φ entry agrees to "
    f"{max(v for k, v in phi_diff.items() if k != where):.0e}." if row == "φ after the update" else ""))

# %% [markdown]
# ## 8 · θ frozen, φ learns
# Now many steps, each on a fresh noisy pool of the stream, with θ held at the pretrained start: the
# library's own scheduler warm-up (`Config.warmup`: φ trains, θ's updates are not applied), in float32
# as runs train. Per step we plot the probability mass φ puts on noisy tasks against the pool's own
# noisy share (what uniform sampling gives), their difference, and the AUC of φ's scores (the real draw's
# logits) for clean against noisy tasks.

# %%
def phi_only(noise: float, steps: int, method: str = METHOD_FROZEN):
    """(per-step records, largest change of theta) of ``steps`` phi-only ATS steps at noise ratio ``noise``."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        c = cfg.replace(method=method, noise_ratio=noise, steps=steps + 1, warmup=steps)
        s_ = build_setup(c)
        init_from(s_, c.init)
        before = copy_params(s_.model)
        st = State(s_.model, torch.optim.Adam(s_.model.parameters(), lr=c.outer_lr), make_method(c, s_))
        h = pd.DataFrame([meta_step(s_, st, t)[0] for t in range(steps)])
        moved = max(float((v - before[k]).abs().max()) for k, v in s_.model.state_dict().items())
    finally:
        torch.set_default_dtype(old)
    return h, moved


def frozen_figure(h, noise: float):
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(12, 3.1))
    a1.plot(h["step"], h["pool_noisy"], color="grey", ls="--", lw=1, label="pool's noisy share (uniform)")
    a1.plot(h["step"], h["noisy_mass"], color=NOISY, marker=".", label="φ's mass on noisy tasks")
    a1.axhline(noise, color="grey", ls=":", lw=1, label=f"noise ratio {noise:g}")
    a1.set(xlabel="step (θ frozen)", ylabel="probability mass on noisy tasks", ylim=(0, 1))
    a1.legend(fontsize=7, loc="lower left")
    a2.plot(h["step"], h["noisy_mass"] - h["pool_noisy"], color=NOISY, marker=".")
    a2.axhline(0, color="grey", ls="--", lw=1)
    a2.set(xlabel="step (θ frozen)", ylabel="mass on noisy − pool's noisy share")
    a3.plot(h["step"], h["auc"], color="k", marker=".")
    a3.axhline(0.5, color="grey", ls=":", lw=1)
    a3.set(xlabel="step (θ frozen)", ylabel="AUC of φ's scores: clean above noisy", ylim=(-0.02, 1.02))
    fig.suptitle(f"{METHOD_FROZEN}, φ only, noise {noise:g}, φ's Adam lr {cfg.scheduler_lr:g}", fontsize=9)
    fig.tight_layout()
    return fig


def reading(h, moved) -> str:
    late = h.iloc[len(h) // 2:]
    return (f"Over {len(h)} steps θ moved by {moved:g} (frozen). AUC of φ's scores for clean above noisy tasks: mean "
            f"{h['auc'].mean():.2f} (0.5 = chance, 1 = every clean task first; first step {h['auc'].iloc[0]:.2f}). In the second half, φ "
            f"puts {late['noisy_mass'].mean():.3f} of its probability on noisy tasks where uniform would put "
            f"{late['pool_noisy'].mean():.3f} ({(late['noisy_mass'] - late['pool_noisy']).mean():+.3f}).")


hist, moved = phi_only(NOISE, STEPS_FROZEN)
plots.savefig(frozen_figure(hist, NOISE), "04_scheduler_frozen", FIG_DIR)
say(reading(hist, moved))

# %% [markdown]
# **Explore (JupyterLab).** The slider reruns the φ-only steps at another noise ratio and redraws the
# figure (about 20–30 s a run; the status line says when it is done). Under papermill (and with
# `SMOKE`) nothing reruns.

# %%
if SMOKE:
    say("*SMOKE: no slider.*")
else:
    import ipywidgets as W

    from atslib.display.widgets import png

    slider = W.FloatSlider(value=NOISE, min=0.1, max=0.9, step=0.1, description="noise ratio",
                           continuous_update=False, style={"description_width": "initial"})
    status = W.HTML(reading(hist, moved))
    image = W.Image(value=png(frozen_figure(hist, NOISE)), format="png")

    def rerun(change):
        r = float(change["new"])
        status.value = f"<i>running {STEPS_FROZEN} φ-only steps at noise ratio {r:g}…</i>"
        h, mv = phi_only(r, STEPS_FROZEN)
        image.value = png(frozen_figure(h, r))
        status.value = reading(h, mv)

    slider.observe(rerun, names="value")
    display(W.VBox([slider, status, image]))

# %% [markdown]
# ## 9 · Where this implementation departs from the paper, and why
# Each row is in the code (the option that controls it in `atslib.Config`); the reasons and
# measurements are in [REPRODUCTION.md, "Deviations from the paper"](../REPRODUCTION.md#deviations-from-the-paper),
# [its "Bounded look-ahead"](../REPRODUCTION.md#bounded-look-ahead-2026-11-30), [docs/choices.md](../docs/choices.md)
# and the docstrings of [ats.py](../atslib/ats.py) and [scheduler.py](../atslib/scheduler.py).

# %%
dev = [
    ("Reward", "validation accuracy of θ~", f"paired loss difference L_val(θ) − L_val(θ~) on the same {cfg.val_tasks} "
     "tasks (`reward`, `reward_paired`)", "accuracy on a few small tasks was too noisy for REINFORCE to learn from"),
    ("Baseline b", "moving average of rewards", f"leave-one-out over {cfg.draws_per_step} draws per step on the same "
     "validation tasks (`draws_per_step`)", "a moving average lags a reward that shrinks as θ improves; "
     "shared noise cancels"),
    ("Log-probability of a draw", "authors' code: B independent draws", "exact Plackett–Luce, without replacement",
     "the draw *is* without replacement"),
    ("Set context of g_φ", "authors' code sums over the feature axis", "mean encoding of the *other* pool tasks",
     "the paper's description: a task is scored against its competitors"),
    ("Similarity factor", "inner product ⟨∇L_s, ∇L_q⟩", "cosine; both factors z-scored within the pool "
     f"(`zscore_factors={cfg.zscore_factors}`)", "within a pool the inner product mostly measures gradient size"),
    ("Look-ahead", "plain SGD step", f"SGD step β = {cfg.lookahead_lr:g}, meta-gradient clipped to norm "
     f"{cfg.lookahead_max_norm:g} (`lookahead_max_norm`)", "heavy-tailed meta-gradients sent θ~ where the inner loop diverges"),
    ("Advantages", "as they come", f"winsorised at {cfg.adv_clip:g}× their running scale; beyond {cfg.adv_reject:g}× "
     "φ skips the step (`adv_clip`, `adv_reject`)", "one absurd reward froze φ's Adam for the rest of a run"),
    ("Initial φ", "random", "output layer at zero: exactly uniform (`ats-random-phi` keeps a random φ)",
     "the real draw's low temperature amplifies an arbitrary initial ranking"),
    ("Scheduler warm-up", "the authors train φ alone for thousands of steps", f"`warmup` = {Config.warmup} by default "
     "(used above to freeze θ)", "in runs as short as ours a warm-up of that length would be the whole run"),
    ("Noisy labels", "authors' ATS loader: query labels", f"support labels (`noise_on='{cfg.noise_on}'`), as the paper "
     "states and for every method", "the same noise for every method"),
    ("`ats-reweight` ablation", "exact hypergradient", "first-order inner loop on the validation tasks; θ on the top-B "
     f"tasks (`reweight_update='{cfg.reweight_update}'`)", "a second-order loop inside a meta-gradient is a third derivative"),
    ("Where φ lives", "—", "on the CPU whatever θ's device (an implementation choice)",
     "a small MLP over P rows is dozens of tiny kernels on a GPU"),
]
say("| | paper / authors' code | here | why |\n|---|---|---|---|\n"
    + "\n".join(f"| {a} | {b_} | {c} | {d} |" for a, b_, c, d in dev))

# %% [markdown]
# ## Summary

# %%
late = hist.iloc[len(hist) // 2:]
say(f"1. The factors are plain autograd: a loop and `vmap(grad(...))` agree with `pool_factors` to "
    f"{max(float((loss_vmap - loss_loop).abs().max()), float((lib.sim_cos - sim_loop).abs().max())):.0e}; in this pool "
    f"the AUC of −loss for clean above noisy tasks is {auc(-table.loss, clean):.2f}, of the similarity "
    f"{auc(table.sim, clean):.2f}.\n"
    f"2. One ATS step — two draws, two clipped look-aheads, paired rewards, leave-one-out advantages, one Adam step on "
    f"φ, θ's update — done by hand {'equals' if check['equal'].all() else 'does NOT equal'} the library's "
    f"(largest difference {worst:.0e}, float64).\n"
    f"3. With θ frozen for {len(hist)} steps, the AUC of φ's scores for clean above noisy tasks is "
    f"{hist['auc'].mean():.2f} on average, while its probability mass on noisy tasks differs from uniform's by "
    f"{(late['noisy_mass'] - late['pool_noisy']).mean():+.3f} in the second half (φ's lr {cfg.scheduler_lr:g}).")

# %% [markdown]
# ## Try this
# - `PHI_LR = 1e-2`: φ's probability mass falls well below the pool's noisy share within the same steps
#   (the ranking is learnt early; the learning rate sets how fast the mass follows).
#
# More to try:
# - `NOISE = 0.2` or `0.9` (or the slider): with few noisy tasks there is little to avoid; with almost
#   all noisy, does φ still find the few clean ones? (Pools without a clean task have no AUC: gaps in the curve.)
# - `METHOD_FROZEN = "ats-loss-only"` or `"ats-sim-only"`: the scheduler reads one factor; the AUCs of §3
#   say which one separates this noise. `"ats-random-phi"` never trains φ: expect no trend in either curve.
# - `STEP = 5`: take another pool of the stream apart; the equality check of §7 must still print `equal: True`.
