# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Ablations: which parts of ATS matter on noisy tasks
#
# ATS replaces MAML's uniform choice of meta-training tasks with a small neural scheduler: from a
# pool of P candidate tasks it scores each by two factors (the query loss after inner-loop
# adaptation, and the cosine similarity of the task's support- and query-set gradients), turns the
# scores into probabilities, draws B tasks for the meta-update, and learns its weights φ by
# REINFORCE. An **ablation** removes one of these parts and asks whether accuracy drops; if it does
# not, that part was not what made the difference.
#
# **What you will learn**
# - what each ablation removes, and how much test accuracy each variant reaches against full ATS
#   and against uniform sampling, with tests paired over random seeds;
# - how well each variant *ranks* clean above noisy tasks (noise AUC) and how many clean tasks it
#   actually *trains on* (clean share), and why the two differ for ATS;
# - what the runs can and cannot tell apart: 150-step runs barely leave their start; the 1000-step
#   runs of the decisive setting can.
#
# **How long.** Run All takes about 25 s on two CPU cores: it reads committed runs, nothing trains.
#
# **Where this sits.** Previous: `05_race` (methods training side by side, live). Next:
# `07_results` (the paper-layout tables for 1-shot, 5-shot and molecules, and the longer, 10-seed
# decisive study). The two factors are shown in `03_factors`; the algorithm is taken apart step
# by step in `04_scheduler`.
#
# | method | what it keeps / removes |
# |---|---|
# | `uniform` | no scheduler: B tasks of the pool uniformly (the MAML baseline) |
# | `ats` | full ATS: the network on (loss, similarity), trained by REINFORCE, B tasks sampled |
# | `ats-random-phi` | removes the *training* of φ: the same network at its random initial weights |
# | `rank-sim-loss` | removes the *network*: the top B tasks by z(similarity) − z(loss), a fixed rule |
# | `ats-loss-only` | removes the *similarity* factor: the scheduler sees the loss only |
# | `ats-sim-only` | removes the *loss* factor: the scheduler sees the similarity only |
# | `ats-reweight` | removes the *sampling*: θ updates on the B tasks of highest weight, weighted; φ learns through the look-ahead model |
#
# **The runs.** Noise ratio 0.6 (60% of meta-training tasks have corrupted support labels), 5-way,
# pool P = 10, batch B = 2, from the *clean-pretrained start* (the model `02_training` trains for
# 300 steps on clean tasks; one per random seed). Every method sees the same pool at step t for a
# given seed, the same validation tasks and the same 600 meta-test tasks; the checkpoint with the
# best validation accuracy is tested, and the start itself is a candidate, so a run that never
# validates above its start reports the start's test accuracy. Two sets of runs exist:
# - `SOURCE = "decisive"`: 1000 steps, 1-shot, seeds 0–4, noise 0.6 with flip 0.8 (the `decisive`
#   sweep, whose uniform, ATS and rank-sim-loss run the same seeds and starts);
# - `SOURCE = "short"`: 150 steps, 3 seeds, 1- or 5-shot (the `ablations` sweep, uniform from the
#   `noisy` sweep), the first, smaller study.
#
# `"auto"` (the default) reads the decisive runs once every ablation has its five seeds there, and
# the short ones until then. The line under the next cell says which runs are shown. `07_results`
# shows the 5-shot and molecule columns and the authors' reweighting variant (all P tasks weighted).

# %% tags=["parameters"]
SMOKE = False      # nothing trains here: SMOKE changes nothing
RESULTS_DIR = "../results"
SHOTS = 1          # 1 or 5: the 1-shot or 5-shot runs of the same sweeps (the decisive runs: 1-shot only)
SOURCE = "auto"    # "auto", "decisive" (1000 steps) or "short" (150 steps): see above
FIG_DIR = None

# %%
import numpy as np
import pandas as pd

from atslib.display import demo, plots
from atslib.display.prose import num, pct, pts, pval, say, seeds
from atslib.metrics import holm
from atslib.study import reproduction as R

cell = f"{SHOTS}shot"
df = R.load_results(RESULTS_DIR)
source_kind, df = R.ablation_source(df, SHOTS, SOURCE, demo.ABLATIONS)     # which runs, and only their common seeds
if source_kind == "decisive":
    cells = {m: ("decisive", cell) for m in demo.ABLATIONS}
else:
    cells = {m: ("noisy", cell) if m == "uniform" else ("ablations", cell) for m in demo.ABLATIONS}
    cells["ats-reweight"] = ("ablations", f"{cell}-reweight-top")     # the default, equal batch (top-B)
stats = pd.concat([R.cell_stats(df, *cells[m], (m,)) for m in demo.ABLATIONS], ignore_index=True)
n = f"{stats['n'].min()}" if stats["n"].nunique() == 1 else f"{stats['n'].min()}-{stats['n'].max()}"
source = (f"grid decisive/{cell} (seeds every ablation ran)" if source_kind == "decisive" else
          f"grids ablations/{cell}, {cell}-reweight-top (ats-reweight) + noisy/{cell} (uniform)"
          ) + f": {int(stats['steps'].max())} steps from the pretrained start, {n} seeds"
# one frame of the runs shown, so that methods from two sweeps pair by seed
both = pd.concat([df[(df.grid == g) & (df.cell == c) & (df.method == m)] for m, (g, c) in cells.items()])
both = both.assign(grid="03", cell="1shot")
steps = int(stats["steps"].max())
noise = float(both["noise_ratio"].iloc[0])
dec = R.cell_stats(df, "decisive", cell, ("ats",))      # 07_results' longer study, for the pointers below
dec_txt = (f"{seeds(int(dec['n'].iloc[0]))}, {int(dec['steps'].iloc[0])} steps" if len(dec) else "more seeds, longer runs")
# where to look for a longer test: this notebook itself once it reads the decisive runs
longer = (None if source_kind == "decisive" else f"`07_results`' decisive study ({dec_txt})")
print(source)

# %% [markdown]
# ## Test accuracy, noise detection and clean share
# One row per method: test accuracy (mean ± 95% t-interval over seeds), the **noise AUC** (how
# well the method's task scores rank clean above noisy tasks within each pool, second half of
# training: 1 = every clean task above every noisy one, 0.5 = chance), the **clean share** (the
# share of the tasks θ was actually updated on that were clean, whole run; uniform ≈ 0.4 at noise
# 0.6), and ATS minus the method, paired over seeds, with its p and its Holm-adjusted p (the family:
# the six comparisons with ATS).

# %%
table = stats.rename(columns={"mean": "test_mean", "ci95": "test_ci95"})
vs = [R.paired(both, "03", "1shot", "ats", m) if m != "ats" else (float("nan"),) * 3 for m in table["method"]]
holm_ats = holm([p for _, p, _ in vs])              # NaN (ATS's own row) stays NaN and is not counted
shown = pd.DataFrame({"method": table["method"], "seeds": table["n"],
                      "test acc (%)": [R.fmt(a, b) for a, b in zip(table["test_mean"], table["test_ci95"])],
                      "noise AUC": table["noise_auc"].round(3), "clean share": table["clean_share"].round(3),
                      "ATS − method (points)": [f"{d * 100:+.2f}" if d == d else "–" for d, _, _ in vs],
                      "p over seeds": [f"{p:.2g}" if p == p else "–" for _, p, _ in vs],
                      "p (Holm)": [f"{h:.2g}" if h == h else "–" for h in holm_ats]})
ci_over = "mean ± 95% t-CI over seeds"
plots.save_table(shown, "06_ablations", FIG_DIR)
shown

# %%
t = table.set_index("method")
k_seeds = int(t["n"].min())
pre = df[(df.grid == "pretrain") & (df.cell == cell) & df.seed.isin(both.seed.unique())]
start = float(pre["test_mean"].mean()) if len(pre) else None     # the clean-pretrained start of these seeds
vs_ats = {m: v for m, v in zip(table["method"], vs) if m != "ats"}
h_ats = {m: h for m, h in zip(table["method"], holm_ats) if m != "ats"}
d_u, p_u, _ = vs_ats["uniform"]
# the ablations (uniform is the baseline, not an ablation), decided on their Holm-adjusted p
ablated = [m for m in vs_ats if m != "uniform"]
under = [m for m in ablated if vs_ats[m][0] > 0 and h_ats[m] < R.LEVEL]      # shown below ATS
over = [m for m in ablated if vs_ats[m][0] < 0 and h_ats[m] < R.LEVEL]       # shown above ATS
signif = under + over
below = [m for m in t.index if start is not None and t.loc[m, "test_mean"] < start - 5e-5]
at_start = {m: R.at_start(R.runs(both, "03", "1shot", m)) for m in t.index}   # runs that ended as their start
all_start = [m for m, a in at_start.items() if a.size and a.all()]
verdict = ("none differs from ATS" if not signif else "; ".join(
    [f"{', '.join(under)} {'is' if len(under) == 1 else 'are'} below ATS"] * bool(under)
    + [f"{', '.join(over)} {'is' if len(over) == 1 else 'are'} above ATS"] * bool(over)
    + [f"{len(ablated) - len(signif)} of {len(ablated)} are not shown to differ"] * (len(signif) < len(ablated))))
ats_vs_u = ("no difference shown" if h_ats["uniform"] >= R.LEVEL else "a difference at the study's level")
_ = say(f"""**What this shows.** Full ATS reaches {num(100 * t.loc['ats', 'test_mean'])}% and uniform
{num(100 * t.loc['uniform', 'test_mean'])}%: ATS − uniform = {pts(100 * d_u)} ({pval(p_u)}, Holm
{h_ats['uniform']:.2g} over {seeds(k_seeds)}), {ats_vs_u}. Of the ablations, at the study's level (Holm-adjusted
p < {R.LEVEL:g}), {verdict}"""
    + (", so with these runs no part of ATS can be shown to matter." if not signif else ".")
    + (f""" The clean-pretrained start of the same seeds scores {num(100 * start)}%, and
{len(below)} of {len(t)} methods {'ends' if len(below) == 1 else 'end'} below it ({', '.join(below) if below else 'none'})"""
       + (f": {steps} steps on {pct(noise)} noisy tasks mostly fail to improve on a model pretrained on clean ones."
          if 2 * len(below) > len(t) else ".") if start is not None else "")
    + (f""" {' and '.join(all_start)} ended as {'their' if len(all_start) > 1 else 'its'} start on every seed
(no checkpoint validated above it), so {'those rows measure' if len(all_start) > 1 else 'that row measures'}
the start, not the method; {int(at_start['uniform'].sum())} of {at_start['uniform'].size} uniform runs did
too.""" if all_start else "")
    + f""" ATS ranks clean above noisy tasks {'almost perfectly' if t.loc['ats', 'noise_auc'] > 0.98 else 'well'}
(noise AUC {num(t.loc['ats', 'noise_auc'], 3)}) yet only {pct(t.loc['ats', 'clean_share'])} of the tasks it
trained on were clean (uniform {pct(t.loc['uniform', 'clean_share'])}), while the fixed rule
rank-sim-loss, which takes the top-ranked tasks outright, trained on
{pct(t.loc['rank-sim-loss', 'clean_share'])} clean tasks; the figures below show why.""")

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 2]})
plots.method_bars(table, ax=axes[0], reference=start)
axes[0].set_title(f"test accuracy, {SHOTS}-shot, noise 0.6 ({ci_over})\n{source}"
                  + ("; dotted: the pretrained start" if start else ""), fontsize=8)
axes[1].bar(range(len(table)), table["noise_auc"], color=[plots.METHOD_COLORS.get(m) for m in table["method"]])
axes[1].axhline(0.5, ls=":", color="grey")
axes[1].set_xticks(range(len(table)), table["method"], rotation=30, ha="right")
axes[1].set_ylabel("noise AUC (2nd half of training)"), axes[1].set_ylim(0, 1.05)
fig.tight_layout()
plots.savefig(fig, "06_ablations", FIG_DIR)

# %%
spread = t["test_mean"].max() - t["test_mean"].min()
trained = t["noise_auc"].drop(["uniform", "ats-random-phi"])
weakest = trained.idxmin()
_ = say(f"""**What this shows.** Left: the bars' 95% intervals over {seeds(k_seeds)} are
{num(100 * t['test_ci95'].min())} to {num(100 * t['test_ci95'].max())} points wide on each side, while all
{len(t)} means lie within {num(100 * spread)} points of each other"""
    + (", so the bars cannot be ranked." if spread < t["test_ci95"].max() else ".")
    + (f""" The dotted line, the pretrained start ({num(100 * start)}%), runs
{'through the middle of them' if t['test_mean'].min() < start < t['test_mean'].max() else
 'above them all' if start >= t['test_mean'].max() else 'below them all'}.""" if start is not None else "")
    + f""" Right: every scheduler that was trained, or ranks by a fixed rule, detects the noisy tasks
(noise AUC at least {num(trained.min(), 3)}); the untrained network scores
{num(t.loc['ats-random-phi', 'noise_auc'], 3)}"""
    + (", near chance, so REINFORCE does teach φ to rank." if t.loc["ats-random-phi", "noise_auc"] < 0.75 else ".")
    + f""" The weakest trained ranking is {weakest}'s ({num(trained.min(), 3)})"""
    + (""": with the loss removed the ranking is weaker, because the query loss alone already
separates noisy from clean tasks (`03_factors`).""" if weakest == "ats-sim-only" and trained.min() < 0.98 else "."))

# %% [markdown]
# ## Probability mass on noisy tasks over training
# The summed probability the sampler gives the pool's noisy tasks at each step (mean over seeds,
# 10-step rolling mean). Uniform gives them their share of the pool (about 0.6); a scheduler that
# avoids them pushes this down. `rank-sim-loss` has no probabilities: its curve is the share of
# noisy tasks among the B it takes.

# %%
hist = {}
for m in demo.ABLATIONS:
    hist.update(R.histories(df, *cells[m], (m,)))
fig, ax = plots.trajectory(hist, "noisy_mass", smooth=10, ylabel="probability mass on noisy pool tasks")
ax.set_title(source + " (mean over seeds)", fontsize=8)
plots.savefig(fig, "06_noisy_mass", FIG_DIR)

# %%
def by_half(m, column):
    """(first half, second half) of a per-step history column, mean over seeds and steps."""
    h = R.histories(df, *cells[m], (m,), column=column).get(m)
    if h is None:
        return float("nan"), float("nan")
    first = h["step"] < steps / 2
    return float(h.loc[first, column].mean()), float(h.loc[~first, column].mean())


def falls(m, drop=0.1):
    """First step at which m's 10-step rolling noisy mass is `drop` below uniform's average level."""
    if m not in hist or "uniform" not in hist:
        return None
    level = hist["uniform"]["noisy_mass"].mean()
    s = hist[m].set_index("step")["noisy_mass"].rolling(10, min_periods=1).mean()
    hit = s.index[(s < level - drop).to_numpy()]
    return int(hit[0]) if len(hit) else None


pool = int(pd.read_json(f"{R.runs(both, '03', '1shot', 'ats')['dir'].iloc[0]}/config.json")["config"]["pool_size"])
u_level = hist["uniform"]["noisy_mass"].mean()
f_ats = falls("ats")
cs1, cs2 = by_half("ats", "clean_share")
h1, _ = by_half("ats", "entropy")
a1, _ = by_half("ats", "auc")
late_mass = hist["ats"]["noisy_mass"].tail(10).mean()
others = {m: falls(m) for m in ("ats-loss-only", "ats-sim-only", "ats-reweight")}
late_turn = f_ats is None or f_ats >= steps / 3
share_gap = t.loc["rank-sim-loss", "clean_share"] - t.loc["ats", "clean_share"]
share_words = ("far below" if share_gap > 0.15 else "below" if share_gap > 0.02 else
               "about the same as" if share_gap > -0.02 else "above")
_ = say(f"""**What this shows.** Uniform keeps {pct(u_level)} of its probability on noisy tasks on
average, their share of the pool. ATS's 10-step average first falls 10 points below that level at
step {f_ats if f_ats is not None else '(never)'} of {steps}, and averages {pct(late_mass)} over the last
10 steps."""
    + (f""" Its ranking is good from the start (noise AUC {num(a1, 3)} over the first half), but its
probabilities are nearly flat: over the first half the scheduler's entropy is {num(h1)}, against
{num(np.log(pool))} (= ln {pool}) for equal probabilities over the pool of {pool}.""" if a1 > 0.9 else
       f""" Over the first half its noise AUC is {num(a1, 3)} and its entropy {num(h1)}, against
{num(np.log(pool))} (= ln {pool}) for equal probabilities over the pool of {pool}.""")
    + f""" So the tasks it drew were {pct(cs1)} clean in the first half and {pct(cs2)} in the second,
{pct(t.loc['ats', 'clean_share'])} over the run, {share_words} the {pct(t.loc['rank-sim-loss', 'clean_share'])}
of rank-sim-loss, which takes the top-ranked tasks from step 0. The ablations' curves cross the same
line at {', '.join(f'step {s} ({m})' if s is not None else f'no step ({m})' for m, s in others.items())}."""
    + (f""" The paper's picture, ATS steering away from noisy tasks, appears here
{f'only from step {f_ats} of {steps} on' if f_ats is not None else 'nowhere in these runs'}"""
       + (f"; {longer} follows ATS longer." if longer else ".") if late_turn else f""" ATS steers away from noisy tasks, as the paper says, from step {f_ats} on."""))

# %% [markdown]
# ## Each method against uniform
# Each method's test accuracy minus uniform's, paired over seeds (the same seed gives the same
# start and the same pool stream), the test the study's verdicts rest on.

# %%
rows = []
for m in demo.ABLATIONS:
    if m != "uniform":
        d, p, k = R.paired(both, "03", "1shot", m, "uniform")
        rows.append({"method": m, "minus uniform (points)": round(100 * d, 2), "p over seeds": f"{p:.2g}", "seeds": k})
against = pd.DataFrame(rows)
h_u = holm([R.paired(both, "03", "1shot", r["method"], "uniform")[1] for r in rows])
against.insert(3, "p (Holm)", [f"{h:.2g}" for h in h_u])
against

# %%
pu = {r["method"]: R.paired(both, "03", "1shot", r["method"], "uniform") for r in rows}
best = max(pu, key=lambda m: pu[m][0])
sig_u = [m for m, h in zip(pu, h_u) if h < R.LEVEL]             # after Holm over the six
gap = max(abs(d) for d, _, _ in pu.values())
wide = gap < t.loc["uniform", "test_ci95"]
_ = say(f"""**What this shows.** {'No method' if not sig_u else ', '.join(sig_u)}
{'differs' if len(sig_u) <= 1 else 'differ'} from uniform at Holm-adjusted p < {R.LEVEL:g} over {seeds(k_seeds)}. The
largest difference is {best}'s {pts(100 * pu[best][0])} ({pval(pu[best][1])}); full ATS's is
{pts(100 * pu['ats'][0])} ({pval(pu['ats'][1])}). The paper reports ATS above uniform and above each of
its ablations on noisy tasks"""
    + (f"""; here uniform's own interval over seeds (± {num(100 * t.loc['uniform', 'test_ci95'])} points)
is wider than any of these gaps, so {seeds(k_seeds)} of {steps} steps neither confirm nor refute it.""" if wide and not sig_u
       else "; none of these gaps reaches the study's level here." if not sig_u else
       f"; here ATS is shown {'above' if pu['ats'][0] > 0 else 'below'} uniform after Holm over this table's six comparisons."
       if "ats" in sig_u else "; here ATS is not shown to differ from uniform after Holm over this table's six comparisons.")
    + (f" {longer} is the test that can." if longer and not sig_u else ""))

# %% [markdown]
# ## Summary

# %%
rs = vs_ats["rank-sim-loss"]
_ = say(f"""1. ATS − uniform: {pts(100 * d_u)} ({pval(p_u)}, {seeds(k_seeds)}); of the ablations, at
Holm-adjusted p < {R.LEVEL:g}, {verdict}{f', and {len(below)} of {len(t)} methods {"ends" if len(below) == 1 else "end"} below the pretrained start' if start is not None else ''}.""")
_ = say(f"""2. ATS ranks noisy tasks {'almost perfectly' if t.loc['ats', 'noise_auc'] > 0.98 else 'well'} (AUC
{num(t.loc['ats', 'noise_auc'], 3)}) but trains on only {pct(t.loc['ats', 'clean_share'])} clean tasks: its
noisy probability mass stays near uniform's until about step {f_ats if f_ats is not None else steps} of {steps}.""")
rank_finds = t.loc["rank-sim-loss", "clean_share"] >= t.loc["ats", "clean_share"]
_ = say(f"""3. The fixed rule rank-sim-loss trains on {pct(t.loc['rank-sim-loss', 'clean_share'])} clean tasks and
ends {pts(-100 * rs[0])} relative to ATS ({pval(rs[1])})"""
    + (": a fixed ranking finds the noisy tasks sooner than the learnt one." if rank_finds else "."))

# %% [markdown]
# ## Try this
# Set `SOURCE = "short"` and `SHOTS = 5` to read the 5-shot runs of the 150-step sweeps. With five
# labelled examples per class the factors are less noisy: expect noise AUCs of 1 for ATS and its
# trained ablations, the untrained network still near chance, and intervals over three seeds too
# wide to rank the methods. With `SOURCE = "short"` at 1-shot, compare the 150-step picture with the
# 1000-step one the default shows once the decisive ablations are in.
