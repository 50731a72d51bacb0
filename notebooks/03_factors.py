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
# # 03 · The two factors: query loss and gradient similarity
#
# A MAML step adapts the model to each of a few tasks on its support set and updates the
# meta-parameters θ from the adapted models' query loss. ATS (Yao et al., NeurIPS 2021) changes only
# *which* tasks enter that step: from a pool of P candidates it scores each task by two numbers
# computed at the current θ, and a small scheduler network turns them into sampling probabilities.
# The two **factors** are
# 1. the **query loss after inner-loop adaptation**: how badly the adapted model does on the task's
#    query set (a hard task, or one whose support labels are wrong, has a high loss);
# 2. the **gradient similarity**: the cosine between the gradient of the task's support loss and
#    that of its query loss at θ (low when the support set pushes θ where the query set does not,
#    as when its labels are corrupted).
#
# This notebook plots the two factors of every pool task logged during real ATS runs, and checks
# the paper's reading of them: under label noise, noisy tasks sit at *high loss and low similarity*;
# with a limited budget of classes, the valuable tasks sit at *high loss and high similarity* (hard
# but consistent).
#
# **What you will learn**
# - where noisy and clean tasks fall in the (loss, similarity) plane, and how well each factor alone
#   separates them;
# - why a fixed rule that prefers low loss finds the noisy tasks as well as the learnt scheduler;
# - which tasks ATS favours when all tasks are clean and the budget is limited, and where that
#   disagrees with the paper.
#
# **How long.** Run All takes about 25 s on two CPU cores; nothing trains.
#
# **Where this sits.** Previous: `02_training` (the learner, ANIL, trained with uniform sampling).
# Next: `04_scheduler` (the scheduler network, its sampling and its REINFORCE update, one step at a
# time). `06_ablations` removes each factor in turn.
#
# **The runs.** By default (`SOURCE = "study"`) it reads the study's ATS runs: 1-shot 5-way at noise
# ratio 0.6 (60% of tasks with corrupted support labels), 150 steps from the clean-pretrained start of
# `02_training`; and clean 1-shot tasks drawn from only 16 meta-training classes (the limited budget),
# 300 steps from scratch; 3 random seeds each, pools of P = 10 logged every 10 steps. The scatter
# plots show seed `SEED`; the AUCs and correlations pool every seed. `SOURCE = "demo"` reads two
# single-seed demo runs instead (`results/demo/ats`, `results/demo/ats-budget16`, 400 steps from
# scratch): one seed shows what a run looks like, not a result. `SIM` picks the similarity: `sim_cos`
# (cosine, the default) or `sim_dot` (the paper's inner product).

# %% tags=["parameters"]
SMOKE = False
SOURCE = "study"  # "study": the noisy and limited-budget sweeps' ATS runs; "demo": the single-seed runs in RUNS_DIR
RESULTS_DIR = "../results"
SEED = 0  # study: the seed whose pools are drawn
RUNS_DIR = "../results/demo"
NOISY_RUN = "ats"
BUDGET_RUN = "ats-budget16"
SIM = "sim_cos"
FIG_DIR = None

# %%
from pathlib import Path

import numpy as np

from atslib.display import plots
from atslib.display.prose import num, pct, pts, pval, say, seeds
from atslib.metrics import auc
from atslib.runs import load_run

from atslib.study import reproduction as R

if SOURCE not in ("study", "demo"):
    raise ValueError(f"SOURCE {SOURCE!r}; allowed: 'study', 'demo'")
runs_dir = Path(RUNS_DIR)
if SOURCE == "demo":
    pools = {name: load_run(runs_dir / name, with_model=False)["pools"] for name in (NOISY_RUN, BUDGET_RUN)
             if (runs_dir / name / "pool.csv.gz").is_file()}
    all_seeds = pools
    where = {NOISY_RUN: "demo run, seed 0, 400 steps from scratch", BUDGET_RUN: "demo run, seed 0, 400 steps from scratch"}
else:
    df_runs = R.load_results(RESULTS_DIR)
    cells = {NOISY_RUN: ("noisy", "1shot"), BUDGET_RUN: ("budget", "b16-1shot")}
    all_seeds = {k: R.pool_records(df_runs, g, c, "ats") for k, (g, c) in cells.items()}
    pools = {k: v[v["seed"] == SEED] for k, v in all_seeds.items() if len(v)}
    where = {k: f"grid {g}/{c}, ATS seed {SEED} of {all_seeds[k]['seed'].nunique()}, "
                f"{int(R.cell_stats(df_runs, g, c, ('ats',))['steps'].iloc[0])} steps" for k, (g, c) in cells.items()}


for k, v in all_seeds.items():     # the demo runs have one seed and no seed column
    if len(v) and "seed" not in v:
        all_seeds[k] = v.assign(seed=0)


def within_pool(p, a, b):
    """Spearman correlation of columns a and b within each logged pool, averaged over pools."""
    rs = [g[a].corr(g[b], method="spearman") for _, g in p.groupby(["seed", "step"])
          if len(g) > 2 and g[a].nunique() > 1 and g[b].nunique() > 1]
    return float(np.nanmean(rs)) if rs else float("nan")


def three_steps(df):
    s = np.sort(df["step"].unique())
    return [s[0], s[len(s) // 2], s[-1]]


def scatter_and_late(run, title, name):
    """Draw and save the run's loss/similarity scatter at three steps; return the second half of
    training over all its seeds (what the paragraphs read)."""
    df = pools[run]
    fig, _ = plots.loss_sim_scatter(df, three_steps(df), sim=SIM, title=title)
    fig.suptitle(where[run], fontsize=8, y=1.02)
    plots.savefig(fig, name, FIG_DIR)
    late = all_seeds[run]
    return late[late["step"] >= late["step"].max() / 2]


# %% [markdown]
# ## Noisy tasks: high loss, low similarity
# Each point is one task of a logged pool at an early, a middle and a late step, coloured by the
# probability the scheduler gave it; crosses are noisy tasks.

# %%
late = scatter_and_late(NOISY_RUN, "noise 0.6,", "03_scatter_noisy")
df = pools[NOISY_RUN]
clean = ~late["noisy"].astype(bool)
n_seeds = late["seed"].nunique()
loss_c, loss_n = late.loc[clean, "loss"].mean(), late.loc[~clean, "loss"].mean()
sim_c, sim_n = late.loc[clean, SIM].mean(), late.loc[~clean, SIM].mean()
auc_loss, auc_sim, auc_prob = auc(-late["loss"], clean), auc(late[SIM], clean), auc(late["prob"], clean)
print(f"second half of training, {seeds(n_seeds)}, clean vs noisy pool tasks:")
print(f"  mean loss {loss_c:.3f} vs {loss_n:.3f}; mean {SIM} {sim_c:.3f} vs {sim_n:.3f}")
print(f"  AUC of -loss {auc_loss:.3f}, of {SIM} {auc_sim:.3f}, of the scheduler's probability {auc_prob:.3f}")

# %%
shown = three_steps(df)
is_clean = ~df["noisy"].astype(bool)
mass = [float(df.loc[(df.step == st) & is_clean, "prob"].sum()) for st in shown]      # probability on clean tasks
share = [float(is_clean[df.step == st].mean()) for st in shown]                      # their share of the pool
picture = "holds" if loss_n > loss_c and sim_n < sim_c else "does not hold"
late_only = all(m - c < 0.15 for m, c in zip(mass[:2], share[:2])) and mass[2] - share[2] > 0.2
if SOURCE == "study":
    rank = R.cell_stats(df_runs, "ablations", "1shot", ("rank-sim-loss", "ats")).set_index("method")
    d_rank, p_rank, k_rank = R.paired(df_runs, "ablations", "1shot", "rank-sim-loss", "ats")
_ = say(f"""**What this shows.** Over the second half of training ({seeds(n_seeds)}), noisy tasks have a mean
query loss of {num(loss_n)} against {num(loss_c)} for clean ones, and a mean similarity of {num(sim_n)}
against {num(sim_c)}: the paper's picture, noisy tasks at high loss and low similarity, {picture}. But
the loss alone {'already separates them' if auc_loss > 0.98 else 'separates them'}: ranked by loss, clean
tasks fall below noisy ones with AUC {num(auc_loss, 3)} (the share of clean–noisy pairs put in the right
order; 1 = perfect, 0.5 = chance), against {num(auc_sim, 3)} for the similarity alone."""
    + (f""" So no learning is needed to find the noisy tasks: a rule that prefers low loss does. This is why
the fixed ranking `rank-sim-loss` (the top B tasks by z(similarity) − z(loss), no network) trained on
{pct(rank.loc['rank-sim-loss', 'clean_share'])} clean tasks against ATS's {pct(rank.loc['ats', 'clean_share'])}
in the same runs, and ends {pts(100 * d_rank)} relative to ATS ({pval(p_rank)}, {seeds(k_rank)}; see
`06_ablations`).""" if SOURCE == "study" and auc_loss > 0.98 else "")
    + f""" The colours show the scheduler's side: in the pools drawn, clean tasks get
{', '.join(pct(m) for m in mass)} of the probability at steps {', '.join(str(int(x)) for x in shown)},
against {', '.join(pct(c) for c in share)} of the pool"""
    + (": ATS prefers them only by the last step." if late_only else "."))

# %% [markdown]
# ## Limited budget: which tasks does the scheduler favour?
# All tasks are clean here (meta-training classes limited to 16); the colour shows where the
# scheduler puts its probability.

# %%
if BUDGET_RUN in pools:
    late = scatter_and_late(BUDGET_RUN, "budget 16,", "03_scatter_budget")
    r = late[["prob", "loss", SIM]].corr(method="spearman")["prob"]
    w_loss, w_sim, w_ls = within_pool(late, "prob", "loss"), within_pool(late, "prob", SIM), within_pool(late, "loss", SIM)
    print(f"{seeds(late['seed'].nunique())}, 2nd half: Spearman correlation of the scheduler's probability")
    print(f"  pooled over steps: with loss {r['loss']:.3f}, with {SIM} {r[SIM]:.3f}")
    print(f"  within each pool (mean over pools): with loss {w_loss:.3f}, with {SIM} {w_sim:.3f}; loss with {SIM} {w_ls:.3f}")

# %%
if BUDGET_RUN in pools:
    on_loss = "high-loss" if w_loss > 0.1 else "low-loss" if w_loss < -0.1 else "neither high- nor low-loss"
    paper_loss = ("as the paper expects" if w_loss > 0.1 else "the opposite of the paper's 'high loss'" if w_loss < -0.1
                  else "too weak to show the paper's 'high loss'")
    paper_sim = "as the paper expects" if w_sim > 0 else "against the paper's 'high similarity'"
    if SOURCE == "study":
        d_b, p_b, k_b = R.paired(df_runs, *cells[BUDGET_RUN], "ats", "uniform")
    _ = say(f"""**What this shows.** The paper expects ATS, when the budget is limited, to favour hard but
consistent tasks: high loss and high similarity. Over the second half of training
({seeds(late['seed'].nunique())}), ATS's probability correlates with similarity at {num(w_sim)} within each
pool (Spearman, averaged over pools; {num(r[SIM])} pooled over steps), {paper_sim}, and with the loss at
{num(w_loss)} ({num(r['loss'])} pooled), {paper_loss}: it favours consistent, {on_loss} tasks."""
        + (f""" In these pools the two factors move together (loss and similarity correlate at {num(w_ls)}
within pools), so a preference for similarity brings a preference for easy tasks with it; the
paper's 'high loss' does not hold here.""" if w_loss < -0.1 and w_ls < 0 else "")
        + """ The within-pool numbers say what the scheduler prefers among the tasks offered at one step;
the pooled ones mix pools of different steps, whose levels of loss and similarity differ."""
        + (f""" Whether the preference helps is another question: in these runs ATS ends {pts(100 * d_b)}
relative to uniform ({pval(p_b)}, {seeds(k_b)}); `07_results` has the budget test with more seeds."""
           if SOURCE == "study" else ""))

# %% [markdown]
# ## Explore (JupyterLab)
# A slider over the logged steps and a menu over runs redraw the scatter.

# %%
from atslib.display import widgets

widgets.scatter_explorer(pools, sim=SIM)


# %% [markdown]
# ## Summary

# %%
_ = say(f"""1. Under noise 0.6, noisy tasks sit at higher loss ({num(loss_n)} vs {num(loss_c)}) and lower
similarity ({num(sim_n)} vs {num(sim_c)}){', as the paper says' if picture == 'holds' else ''}.""")
_ = say(f"""2. The loss alone separates them (AUC {num(auc_loss, 3)}; similarity {num(auc_sim, 3)})"""
        + (", so a fixed low-loss ranking finds the noisy tasks without any learning." if auc_loss > 0.98 else "."))
if BUDGET_RUN in pools:
    _ = say(f"""3. With a limited budget ATS favours {'high' if w_sim > 0 else 'low'} similarity ({num(w_sim)}) and
{on_loss} tasks ({num(w_loss)}, correlations within pools); the paper expects high loss and high similarity.""")

# %% [markdown]
# ## Try this
# Set `SIM = "sim_dot"`, the paper's plain inner product of the two gradients instead of their
# cosine. The scheduler of these runs read the cosine, so the colours stay as they are; expect the
# inner product to separate noisy from clean tasks less well (a lower AUC than the cosine's) and to
# track the scheduler's probability less closely in the limited-budget pools.
