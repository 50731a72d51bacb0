"""Regimes beyond the paper's noise: where a fixed ranking may fail (``experiments/regimes.yaml``).

Four task distributions, each a cell of the regimes grid, every method on the same pool stream:

- ``support``: 60% of tasks noisy, their support labels corrupted (the paper's noise);
- ``query``: the same tasks, their *query* labels corrupted instead (the authors' ATS loader);
- ``hard-mix``: 40% noisy, 30% hard-but-clean (mutually confusable classes), 30% ordinary; tested
  on random meta-test tasks and on hard ones built the same way from meta-test classes;
- ``ood``: 50% of tasks from a shifted domain (drawings rotated by 90 degrees, clean labels).

A *bad* task is a noisy or shifted one; hard-clean tasks count as good. Pure functions over the
committed runs (tables, AUCs, pool records) and figure builders that return figures; nothing here
trains. Verdicts follow the seed-level paired test of ``reproduction`` (level 0.01).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics import auc, seed_paired_t, t_ci95
from .reproduction import LEVEL, load_results, pool_records, runs, seed_differences
from ..store import SUMMARY
from ..tasks import KINDS, EpisodeSampler, stream

GRID = "regimes"
REGIMES = {
    "support": {"noise_ratio": 0.6},
    "query": {"noise_ratio": 0.6, "noise_on": "query"},
    "hard-mix": {"noise_ratio": 0.4, "hard_ratio": 0.3},
    "ood": {"ood_ratio": 0.5, "ood_shift": "rot90"},
}
DESCRIPTION = {
    "support": "60% noisy tasks, support labels corrupted (flip 0.8) - the paper's noise",
    "query": "60% noisy tasks, query labels corrupted (flip 0.8) - the authors' ATS loader",
    "hard-mix": "40% noisy, 30% hard-but-clean (confusable classes), 30% ordinary",
    "ood": "50% of tasks rotated by 90 degrees (clean labels, shifted domain)",
}
METHODS = ("uniform", "uniform-val", "spl", "rank-sim-loss", "ats", "ats-reweight")
FIXED = ("uniform", "spl", "rank-sim-loss")     # the fixed heuristics ATS must beat (uniform-val is a control)
KIND_STYLE = {"ordinary": ("o", "#4c72b0"), "noisy": ("x", "#c44e52"), "hard": ("^", "#55a868"),
              "shifted": ("s", "#8172b2")}


def load(root="results") -> pd.DataFrame:
    """Finished runs of the regimes grid, one row per run, with ``test_hard_mean`` where tested."""
    df = load_results(root)
    df = df[df["grid"] == GRID].copy()
    hard = []
    for d in df["dir"]:
        f = Path(d) / SUMMARY
        hard.append(json.loads(f.read_text()).get("test_hard_mean", np.nan) if f.is_file() else np.nan)
    df["test_hard_mean"] = hard
    return df.reset_index(drop=True)


def test_sets(regime: str) -> list[str]:
    return ["random", "hard"] if REGIMES[regime].get("hard_ratio") else ["random"]


def _column(test: str) -> str:
    return "test_mean" if test == "random" else "test_hard_mean"


def best_fixed(df, regime: str) -> str | None:
    """The fixed heuristic with the best mean validation score in the regime (never chosen by test)."""
    val = {m: runs(df, GRID, regime, m)["best_val"].astype(float).mean() for m in FIXED}
    val = {m: v for m, v in val.items() if np.isfinite(v)}
    return max(val, key=val.get) if val else None


def seed_test(df, regime: str, a: str, b: str, test: str = "random") -> dict:
    """a - b over the seeds both ran: mean, 95% t-interval, paired t-test p, seeds."""
    d = seed_differences(df, GRID, regime, a, b, _column(test))
    if d.size < 2:
        return {"diff": float(d.mean()) if d.size else np.nan, "ci95": np.nan, "p": np.nan, "n": d.size}
    diff, p = seed_paired_t(d, np.zeros_like(d))
    return {"diff": diff, "ci95": t_ci95(d), "p": p, "n": d.size}


def results_table(df) -> pd.DataFrame:
    """Regime x test set x method: seeds, mean and 95% t-interval over seeds (accuracy, %)."""
    rows = []
    for regime in REGIMES:
        for test in test_sets(regime):
            for m in METHODS:
                r = runs(df, GRID, regime, m)
                v = r[_column(test)].astype(float).dropna() * 100
                if len(v):
                    rows.append({"regime": regime, "test": test, "method": m, "seeds": len(v), "mean": v.mean(),
                                 "ci95": t_ci95(v) if len(v) > 1 else np.nan})
    return pd.DataFrame(rows, columns=["regime", "test", "method", "seeds", "mean", "ci95"])


def _cell(x) -> str:
    ci = f" ± {x['ci95']:.2f}" if np.isfinite(x["ci95"]) else ""
    return f"{x['mean']:.2f}{ci} ({int(x['seeds'])})"


def differences(df, base: str = "uniform") -> pd.DataFrame:
    """Regime x test set x method: method - ``base`` over the seeds both ran (points), mean, 95%
    t-interval and paired t-test p over seeds. Pairs share the start and the pool stream, so this
    removes the spread between starting models that the per-method intervals carry."""
    rows = []
    for regime in REGIMES:
        for test in test_sets(regime):
            for m in METHODS:
                if m == base or runs(df, GRID, regime, m).empty:
                    continue
                t = seed_test(df, regime, m, base, test)
                if t["n"]:
                    rows.append({"regime": regime, "test": test, "method": m, "seeds": t["n"], "diff": t["diff"] * 100,
                                 "ci95": t["ci95"] * 100, "p": t["p"]})
    return pd.DataFrame(rows, columns=["regime", "test", "method", "seeds", "diff", "ci95", "p"])


def wide_table(table: pd.DataFrame) -> pd.DataFrame:
    """``results_table`` as method x (regime, test set) of "mean ± CI (n)" strings."""
    cols = {}
    for r in REGIMES:
        for t in test_sets(r):
            d = table[(table.regime == r) & (table.test == t)].set_index("method")
            if len(d):
                cols[r + (" (hard test)" if t == "hard" else "")] = {m: _cell(x) for m, x in d.iterrows()}
    out = pd.DataFrame(cols).reindex([m for m in METHODS if any(m in c for c in cols.values())])
    return out.rename_axis("method").reset_index().fillna("–")


def verdicts(df) -> pd.DataFrame:
    """Per regime and test set: ATS (and ats-reweight) against the best fixed heuristic (chosen by
    validation) and against every fixed heuristic, at the seed level; ``beats_all`` is True only
    where ATS is above every fixed heuristic with p < 0.01."""
    rows = []
    for regime in REGIMES:
        best = best_fixed(df, regime)
        if best is None:
            continue
        for test in test_sets(regime):
            for method in ("ats", "ats-reweight"):
                t = seed_test(df, regime, method, best, test)
                others = {m: seed_test(df, regime, method, m, test) for m in FIXED}
                worst = min(others.values(), key=lambda o: o["diff"] if np.isfinite(o["diff"]) else -np.inf)
                beats = all(np.isfinite(o["p"]) and o["diff"] > 0 and o["p"] < LEVEL for o in others.values())
                rows.append({"regime": regime, "test": test, "method": method, "best_fixed": best,
                             "diff": t["diff"] * 100, "ci95": t["ci95"] * 100, "p": t["p"], "seeds": t["n"],
                             "min_diff_vs_fixed": worst["diff"] * 100, "beats_all": beats})
    return pd.DataFrame(rows)


def _z(frame: pd.DataFrame, col: str) -> np.ndarray:
    g = frame.groupby(["seed", "step"])[col]
    return ((frame[col] - g.transform("mean")) / (g.transform("std") + 1e-12)).to_numpy()


def auc_row(pools: pd.DataFrame) -> dict:
    """AUCs against the bad-task flag (noisy or shifted; hard-clean counts as good), late half of
    training: of the loss alone (low loss = good), the similarity alone (high = good), the
    scheduler's probability, and - among noisy and hard tasks only - how well each tells hard-clean
    tasks from noisy ones. Loss and similarity are z-scored within each pool."""
    nan = {k: np.nan for k in ("auc_loss", "auc_sim", "auc_prob", "hard_vs_noisy_loss", "hard_vs_noisy_sim",
                               "hard_vs_noisy_prob", "pools")}
    if pools.empty or "kind" not in pools:
        return nan
    late = pools[pools["step"] >= pools["step"].max() / 2].copy()
    late["z_loss"], late["z_sim"] = _z(late, "loss"), _z(late, "sim_cos")
    late = late[np.isfinite(late["z_loss"]) & np.isfinite(late["z_sim"])]
    good = ~late["kind"].isin([KINDS.index("noisy"), KINDS.index("shifted")]).to_numpy()
    out = dict(nan, pools=int(late.groupby(["seed", "step"]).ngroups))
    if 0 < good.sum() < len(good):
        out.update(auc_loss=auc(-late["z_loss"].to_numpy(), good), auc_sim=auc(late["z_sim"].to_numpy(), good),
                   auc_prob=auc(late["prob"].to_numpy(), good))
    hn = late[late["kind"].isin([KINDS.index("noisy"), KINDS.index("hard")])]
    hard = (hn["kind"] == KINDS.index("hard")).to_numpy()
    if 0 < hard.sum() < len(hard):
        out.update(hard_vs_noisy_loss=auc(-hn["z_loss"].to_numpy(), hard), hard_vs_noisy_sim=auc(hn["z_sim"].to_numpy(), hard),
                   hard_vs_noisy_prob=auc(hn["prob"].to_numpy(), hard))
    return out


def auc_table(df, method: str = "ats") -> pd.DataFrame:
    """``auc_row`` per regime, from the pool records of ``method``'s runs (all seeds)."""
    return pd.DataFrame([{"regime": r, **auc_row(pool_records(df, GRID, r, method))} for r in REGIMES])


def example_pool(regime: str, data, n: int = 40, seed: int = 0, shots: int = 1, queries: int = 2):
    """``n`` meta-train tasks of the regime's distribution (for display: fewer queries than the runs')."""
    kw = REGIMES[regime]
    s = EpisodeSampler(data, "train", 5, shots, queries, kw.get("noise_ratio", 0.0), 0.8,
                       noise_on=kw.get("noise_on", "support"), hard_ratio=kw.get("hard_ratio", 0.0),
                       ood_ratio=kw.get("ood_ratio", 0.0), ood_shift=kw.get("ood_shift", "rot90"))
    return s.sample(n, stream(seed, 0, "pool"))


# -- figures (each returns the figure) -------------------------------------------------------
def kinds_figure(tasks, class_names=None, title: str = ""):
    """One task of each kind present: its support image and first query per class, with the label
    the learner sees (red, true label in brackets, where corrupted)."""
    import matplotlib.pyplot as plt
    present = [k for k in range(len(KINDS)) if (tasks.kind == k).any()]
    ways = tasks.ways
    nq = tasks.y_q.shape[1] // ways
    fig, axes = plt.subplots(2 * len(present), ways, figsize=(1.35 * ways, 2.7 * len(present)), squeeze=False)
    for row, k in enumerate(present):
        t = int(np.flatnonzero((tasks.kind == k).numpy())[0])
        for w in range(ways):
            for j, (img, shown, true) in enumerate((
                    (tasks.x_s[t, w * (tasks.y_s.shape[1] // ways)], tasks.y_s[t, w * (tasks.y_s.shape[1] // ways)], w),
                    (tasks.x_q[t, w * nq], tasks.y_q[t, w * nq], w))):
                ax = axes[2 * row + j, w]
                ax.imshow(img[0].numpy(), cmap="gray_r", vmin=0, vmax=1)
                ax.set_xticks([]), ax.set_yticks([])
                bad = int(shown) != true
                ax.set_title(f"{'SQ'[j]}: {int(shown)}" + (f" ({true})" if bad else ""), fontsize=7,
                             color="red" if bad else "black")
                if j == 1 and class_names is not None:
                    ax.set_xlabel(class_names[int(tasks.classes[t, w])], fontsize=7)
            axes[2 * row, 0].set_ylabel(KINDS[k], fontsize=9, color=KIND_STYLE[KINDS[k]][1], fontweight="bold")
    fig.suptitle(title or "one task of each kind (S: support, Q: query)", fontsize=10)
    fig.tight_layout()
    return fig


def kind_scatter(pools: pd.DataFrame, ax=None, title: str = "", vmax=None, ylabel: bool = True):
    """Loss vs gradient similarity of pool tasks (late half of training), coloured by the scheduler's
    probability, one marker per kind (o ordinary, x noisy, ^ hard-clean, s shifted)."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.4))
    late = pools[pools["step"] >= pools["step"].max() / 2] if len(pools) else pools
    vmax = vmax or (float(late["prob"].max()) if len(late) else 1.0)
    sc = None
    for k, name in enumerate(KINDS):
        d = late[late["kind"] == k] if len(late) else late
        if len(d):
            sc = ax.scatter(d["loss"], d["sim_cos"], c=d["prob"], cmap="viridis", vmin=0, vmax=vmax, s=14,
                            marker=KIND_STYLE[name][0], alpha=0.7, linewidths=0.8, label=name)
    ax.set_xlabel("query loss after adaptation")
    if ylabel:
        ax.set_ylabel("gradient similarity (cos)")
    ax.set_title(title, fontsize=9)
    if sc is not None:
        leg = ax.legend(fontsize=7, loc="best", markerscale=1.2)
        for h in getattr(leg, "legend_handles", getattr(leg, "legendHandles", [])):
            h.set_color("#444444")
    return ax, sc


def results_figure(diffs: pd.DataFrame, footnote: str = "", base: str = "uniform"):
    """Each method minus ``base`` (points; mean and 95% CI over seeds, paired by seed), one panel per
    regime and test set; ATS and its reweighting variant in red."""
    import matplotlib.pyplot as plt
    panels = [(r, t) for r in REGIMES for t in test_sets(r) if ((diffs.regime == r) & (diffs.test == t)).any()]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(3.4 * max(len(panels), 1), 3.2), squeeze=False)
    for ax, (r, t) in zip(axes[0], panels):
        d = diffs[(diffs.regime == r) & (diffs.test == t)].set_index("method").reindex(
            [m for m in METHODS if m in set(diffs.method)]).dropna(subset=["diff"])
        y = np.arange(len(d))
        colours = ["#c44e52" if m.startswith("ats") else "#4c72b0" for m in d.index]
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        ax.errorbar(d["diff"], y, xerr=d["ci95"].fillna(0), fmt="none", ecolor="#888888", capsize=3)
        ax.scatter(d["diff"], y, c=colours, zorder=3)
        ax.set_yticks(y, [f"{m} (n={int(n)})" for m, n in zip(d.index, d["seeds"])], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{r}" + (" - hard test tasks" if t == "hard" else ""), fontsize=9)
        ax.set_xlabel(f"test accuracy - {base} (points)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"regimes: each method minus {base}, paired by seed (mean, 95% CI over seeds)"
                 + (f"\n{footnote}" if footnote else ""), fontsize=9)
    fig.tight_layout()
    return fig


__all__ = ["REGIMES", "DESCRIPTION", "METHODS", "FIXED", "load", "results_table", "differences", "wide_table", "verdicts", "auc_row", "auc_table",
           "best_fixed", "seed_test", "example_pool", "kinds_figure", "kind_scatter", "results_figure", "test_sets"]
