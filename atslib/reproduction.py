"""The reproduction study's analysis: sweep results -> the seed's tables, significance, claims.

Pure functions over ``results/<grid>/summary.csv`` and the runs' ``test_scores.csv`` /
``history.csv`` / ``pool.csv.gz``; nothing here trains. Conventions:

- a cell's score is the mean over seeds of each run's test mean (accuracy; R^2 on molecules), with
  a 95% t-interval over seeds;
- the primary test is paired over the same meta-test tasks (every run scores the same 600 image
  tasks / the same assays): each task's score is averaged over the seeds both methods ran, then
  ``scipy.stats.ttest_rel``; the secondary test is Welch's over the seeds' means;
- BNS, the best non-adaptive scheduler of a cell, is chosen by mean validation score (``best_val``),
  never by test.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

NON_ADAPTIVE = ("uniform", "uniform-val", "spl", "focal", "gcp", "daml", "paml")
METHOD_ORDER = ("uniform", "uniform-val", "spl", "focal", "gcp", "daml", "paml", "ats", "rank-sim-loss",
                "ats-cheap", "ats-random-phi", "ats-loss-only", "ats-sim-only", "ats-reweight")
LEVEL = 0.01


def load_results(root="results") -> pd.DataFrame:
    """Every grid's ``summary.csv`` stacked, finished runs only, with the run directory."""
    root = Path(root)
    frames = []
    for f in sorted(root.glob("*/summary.csv")):
        df = pd.read_csv(f)
        df["dir"] = [str(f.parent / r) for r in df["run"]]
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["grid", "cell", "method", "seed", "status", "test_mean", "dir"])
    df = pd.concat(frames, ignore_index=True)
    return df[df["status"] == "done"].reset_index(drop=True)


def runs(df, grid, cell, method) -> pd.DataFrame:
    return df[(df.grid == grid) & (df.cell == cell) & (df.method == method)].sort_values("seed")


def task_scores(run_dir) -> pd.Series:
    """Per meta-test task score of one run (accuracy, or R^2 on molecules)."""
    t = pd.read_csv(Path(run_dir) / "test_scores.csv")
    return t["acc"] if "acc" in t else t["r2"]


def _ci(v) -> float:
    from scipy import stats
    v = np.asarray(v, dtype=float)
    return float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def cell_stats(df, grid, cell, methods=METHOD_ORDER) -> pd.DataFrame:
    """Per method of a cell: seeds, mean and CI of the test score, r2 median / count, val, noise AUC."""
    rows = []
    for m in methods:
        r = runs(df, grid, cell, m)
        if r.empty:
            continue
        v = r["test_mean"].astype(float)
        rows.append({"method": m, "n": len(r), "mean": float(v.mean()), "ci95": _ci(v),
                     "val": float(r["best_val"].astype(float).mean()),
                     "r2_median": float(r["r2_median"].astype(float).mean()) if "r2_median" in r else float("nan"),
                     "r2_gt_03": float(r["r2_gt_03"].astype(float).mean()) if "r2_gt_03" in r else float("nan"),
                     "noise_auc": float(r["noise_auc"].astype(float).mean()) if "noise_auc" in r else float("nan"),
                     "wall": float(r["wall_seconds"].astype(float).mean())})
    return pd.DataFrame(rows, columns=["method", "n", "mean", "ci95", "val", "r2_median", "r2_gt_03", "noise_auc",
                                       "wall"])


def bns(df, grid, cell, candidates=NON_ADAPTIVE) -> str | None:
    """The non-adaptive method with the best mean validation score in the cell (None if none ran)."""
    s = cell_stats(df, grid, cell, candidates)
    return None if s.empty else str(s.loc[s["val"].idxmax(), "method"])


def paired(df, grid, cell, a, b) -> tuple[float, float, int]:
    """(mean difference a - b over tasks, paired t-test p, seeds used); tasks averaged over common seeds."""
    from scipy import stats
    ra, rb = runs(df, grid, cell, a), runs(df, grid, cell, b)
    seeds = sorted(set(ra.seed) & set(rb.seed))
    if not seeds:
        return float("nan"), float("nan"), 0
    sa = np.mean([task_scores(d) for d in ra[ra.seed.isin(seeds)]["dir"]], 0)
    sb = np.mean([task_scores(d) for d in rb[rb.seed.isin(seeds)]["dir"]], 0)
    return float((sa - sb).mean()), float(stats.ttest_rel(sa, sb).pvalue), len(seeds)


def welch(df, grid, cell, a, b) -> tuple[float, float]:
    from scipy import stats
    va, vb = runs(df, grid, cell, a)["test_mean"].astype(float), runs(df, grid, cell, b)["test_mean"].astype(float)
    if len(va) < 2 or len(vb) < 2:
        return float(va.mean() - vb.mean()) if len(va) and len(vb) else float("nan"), float("nan")
    return float(va.mean() - vb.mean()), float(stats.ttest_ind(va, vb, equal_var=False).pvalue)


def fmt(mean, ci, scale=100.0, digits=2) -> str:
    if mean is None or not np.isfinite(mean):
        return "–"
    return f"{mean * scale:.{digits}f}" + ("" if not np.isfinite(ci) else f" ± {ci * scale:.{digits}f}")


def wide_table(df, columns: dict, methods=METHOD_ORDER, scale=100.0, digits=2) -> pd.DataFrame:
    """Rows = methods, one column per ``{label: (grid, cell)}``: 'mean ± ci' over seeds (n in brackets if < 3)."""
    out = {m: {"method": m} for m in methods}
    for label, (grid, cell) in columns.items():
        s = cell_stats(df, grid, cell, methods).set_index("method") if not df.empty else pd.DataFrame()
        for m in methods:
            if m in s.index:
                r = s.loc[m]
                out[m][label] = fmt(r["mean"], r["ci95"], scale, digits) + (f" (n={int(r['n'])})" if r["n"] < 3 else "")
            else:
                out[m][label] = "–"
    t = pd.DataFrame(list(out.values()))
    return t[(t.drop(columns="method") != "–").any(axis=1)].reset_index(drop=True)


def drug_columns(df, grid, cell, methods=METHOD_ORDER) -> pd.DataFrame:
    """Molecules: R^2 mean, median and number of test assays with R^2 > 0.3 (means over seeds)."""
    s = cell_stats(df, grid, cell, methods)
    if s.empty:
        return pd.DataFrame(columns=["method", "drug R2 mean", "drug R2 median", "drug R2>0.3"])
    return pd.DataFrame({"method": s["method"], "drug R2 mean": [fmt(m, c, 1, 3) for m, c in zip(s["mean"], s["ci95"])],
                         "drug R2 median": s["r2_median"].map(lambda v: f"{v:.3f}"),
                         "drug R2>0.3": s["r2_gt_03"].map(lambda v: f"{v:.1f}")})


def bns_row(df, settings: dict, scale=100.0, digits=2) -> dict:
    """The 'BNS' row: for each ``{label: (grid, cell)}``, the validation-chosen best non-adaptive method."""
    row = {"method": "BNS (chosen on val)"}
    for label, (grid, cell) in settings.items():
        m = bns(df, grid, cell)
        if m is None:
            row[label] = "–"
            continue
        s = cell_stats(df, grid, cell, (m,)).iloc[0]
        row[label] = f"{fmt(s['mean'], s['ci95'], scale, digits)} [{m}]"
    return row


def significance(df, settings: dict) -> pd.DataFrame:
    """ATS vs uniform, vs BNS and vs rank-sim-loss per setting: paired (tasks) and Welch (seeds) p-values."""
    rows = []
    for label, (grid, cell) in settings.items():
        b = bns(df, grid, cell)
        row = {"setting": label, "BNS": b}
        for other, key in (("uniform", "uniform"), (b, "BNS"), ("rank-sim-loss", "rank-sim-loss")):
            if other is None:
                continue
            d, p, n = paired(df, grid, cell, "ats", other)
            _, pw = welch(df, grid, cell, "ats", other)
            row.update({f"ATS-{key}": d, f"p paired ({key})": p, f"p Welch ({key})": pw, f"seeds ({key})": n})
        rows.append(row)
    return pd.DataFrame(rows)


def gains(df, settings: dict, other="uniform") -> pd.DataFrame:
    """ATS minus ``other`` (seed means) per setting, with the paired p-value."""
    rows = []
    for label, (grid, cell) in settings.items():
        d, p, n = paired(df, grid, cell, "ats", other)
        rows.append({"setting": label, "gain": d, "p": p, "seeds": n})
    return pd.DataFrame(rows)


def histories(df, grid, cell, methods, column="noisy_mass") -> dict[str, pd.DataFrame]:
    """Per method, ``column`` per step averaged over seeds."""
    out = {}
    for m in methods:
        hs = [pd.read_csv(Path(d) / "history.csv")[["step", column]] for d in runs(df, grid, cell, m)["dir"]
              if (Path(d) / "history.csv").is_file()]
        hs = [h for h in hs if column in h]
        if hs:
            out[m] = pd.concat(hs).groupby("step", as_index=False)[column].mean()
    return out


def pool_records(df, grid, cell, method="ats") -> pd.DataFrame:
    """Pool records (factors, probability, noisy mask) of every seed of one method, one frame."""
    frames = []
    for d, seed in zip(runs(df, grid, cell, method)["dir"], runs(df, grid, cell, method)["seed"]):
        f = Path(d) / "pool.csv.gz"
        if f.is_file():
            frames.append(pd.read_csv(f).assign(seed=seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def factor_separation(pools: pd.DataFrame) -> dict:
    """AUC of 'noisy' from high loss and from low similarity (within-pool z-scores), late half of training."""
    from .metrics import auc
    if pools.empty or pools["noisy"].nunique() < 2:
        return {"auc_loss": float("nan"), "auc_low_sim": float("nan")}
    late = pools[pools["step"] >= pools["step"].max() / 2].copy()
    g = late.groupby(["seed", "step"])
    z = lambda c: (late[c] - g[c].transform("mean")) / (g[c].transform("std") + 1e-12)  # noqa: E731
    noisy = late["noisy"].astype(bool).to_numpy()
    return {"auc_loss": auc(z("loss").to_numpy(), noisy), "auc_low_sim": auc(-z("sim_cos").to_numpy(), noisy)}


def prob_correlations(pools: pd.DataFrame) -> dict:
    """Spearman correlation of the scheduler's probability with loss and with similarity (late half)."""
    from scipy import stats
    if pools.empty:
        return {"rho_loss": float("nan"), "rho_sim": float("nan")}
    late = pools[pools["step"] >= pools["step"].max() / 2]
    return {"rho_loss": float(stats.spearmanr(late["prob"], late["loss"]).statistic),
            "rho_sim": float(stats.spearmanr(late["prob"], late["sim_cos"]).statistic)}


def trend(x, y) -> float:
    """Least-squares slope of y on x (NaN with fewer than two finite points)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.polyfit(x[ok], y[ok], 1)[0]) if ok.sum() >= 2 else float("nan")


# -- the study's settings: label -> (grid, cell) ----------------------------------------------
NOISY = {"1-shot": ("noisy", "1shot"), "5-shot": ("noisy", "5shot")}
DRUG_NOISY = {"drug η=4": ("molecules", "eta4")}
RATIOS = {r: ("noise-ratio", f"r{r}") for r in ("0.2", "0.4", "0.6", "0.8")}
BUDGET16 = {"1-shot": ("budget", "b16-1shot"), "5-shot": ("budget", "b16-5shot")}
BUDGETS = {b: ("budget", f"b{b}-1shot") for b in (16, 32, 48, 64)}
ABLATIONS = {"1-shot": ("ablations", "1shot"), "5-shot": ("ablations", "5shot"), "drug η=4": ("ablations", "drug-eta4")}
DRUG = {"clean": ("molecules", "clean"), **{f"η={e}": ("molecules", f"eta{e}") for e in (2, 4, 6, 8)}}
BEYOND = {"equal compute": ("beyond", "equal-compute"), "flip 0.4": ("beyond", "flip0.4"),
          "flip 0.2": ("beyond", "flip0.2"), "clean 1-shot": ("beyond", "clean-1shot"),
          "clean 5-shot": ("beyond", "clean-5shot")}


def _pending(claim, paper):
    return {"claim": claim, "paper": paper, "ours": "runs not finished", "verdict": "pending"}


def _two_part_claim(claim, paper, where, values: dict, threshold: float) -> dict:
    """A claim made of two statistics that should both exceed ``threshold``."""
    if not all(np.isfinite(v) for v in values.values()):
        return _pending(claim, paper)
    k = sum(v > threshold for v in values.values())
    return {"claim": claim, "paper": paper, "ours": where + ", ".join(f"{n} {v:+.3f}" for n, v in values.items()),
            "verdict": "holds" if k == len(values) else "partly" if k else "does not hold"}


def claims(df) -> pd.DataFrame:
    """Each claim of the seed with our numbers and a verdict: holds / partly / does not hold / pending."""
    rows = []
    # 1. ATS beats every baseline under noise
    c, paper = "ATS beats every baseline under noise", "1-shot +2.54, 5-shot +3.70 points over uniform; drug R² 0.233 vs 0.202 (η=4); * vs BNS at 0.01"
    parts, wins_u, wins_all = [], 0, 0
    settings = {**NOISY, **DRUG_NOISY}
    for label, (g, cell) in settings.items():
        du, pu, n = paired(df, g, cell, "ats", "uniform")
        b = bns(df, g, cell)
        db, pb, _ = paired(df, g, cell, "ats", b) if b else (float("nan"), float("nan"), 0)
        dr, pr, _ = paired(df, g, cell, "ats", "rank-sim-loss")
        if n == 0:
            continue
        sc, dg, unit = (100, 2, " pts") if g != "molecules" else (1, 3, " R²")
        parts.append(f"{label}: vs uniform {du * sc:+.{dg}f}{unit} (p={pu:.2g}), vs BNS [{b}] {db * sc:+.{dg}f} "
                     f"(p={pb:.2g}), vs rank-sim-loss {dr * sc:+.{dg}f} (p={pr:.2g})")
        wins_u += int(du > 0 and pu < LEVEL)
        wins_all += int(du > 0 and pu < LEVEL and db > 0 and pb < LEVEL)
    if not parts:
        rows.append(_pending(c, paper))
    else:
        verdict = ("holds" if wins_all == len(settings) and len(parts) == len(settings) else
                   "partly" if wins_u else "does not hold")
        rows.append({"claim": c, "paper": paper, "ours": "; ".join(parts), "verdict": verdict})
    # 2. gain over uniform grows with the noise ratio
    c, paper = "the gain over uniform is larger at high noise", "+2.1, +1.6, +2.5, +5.7 at ratios 0.2-0.8"
    gn = gains(df, RATIOS).dropna(subset=["gain"])
    if len(gn) < 2:
        rows.append(_pending(c, paper))
    else:
        x = gn["setting"].astype(float)
        slope = trend(x, gn["gain"] * 100)
        ours = ", ".join(f"{r}: {v * 100:+.2f}" for r, v in zip(gn["setting"], gn["gain"])) + f"; slope {slope:+.2f} pts per unit ratio"
        hi_lo = gn["gain"].iloc[-1] > gn["gain"].iloc[0]
        rows.append({"claim": c, "paper": paper, "ours": ours + ("" if len(gn) == 4 else f" ({len(gn)}/4 ratios)"),
                     "verdict": ("holds" if slope > 0 and hi_lo else "partly" if slope > 0 or hi_lo else "does not hold")
                     if len(gn) == 4 else "pending"})
    # 3. gain shrinks as the budget grows
    c, paper = "the gain over uniform shrinks as the budget grows", "+1.54, +1.20, +0.82, +0.54 at 16, 32, 48, 64 classes"
    gb = gains(df, {str(k): v for k, v in BUDGETS.items()}).dropna(subset=["gain"])
    if len(gb) < 2:
        rows.append(_pending(c, paper))
    else:
        slope = trend(gb["setting"].astype(float), gb["gain"] * 100)
        ours = ", ".join(f"{b} classes: {v * 100:+.2f} (p={p:.2g})" for b, v, p in zip(gb["setting"], gb["gain"], gb["p"]))
        pos16 = gb["gain"].iloc[0] > 0
        rows.append({"claim": c, "paper": paper, "ours": ours + f"; slope {slope * 16:+.2f} pts per 16 classes",
                     "verdict": ("holds" if slope < 0 and pos16 else "partly" if slope < 0 or pos16 else "does not hold")
                     if len(gb) == 4 else "pending"})
    # 4. both factors are needed
    c, paper = "both factors are needed (each single-factor ablation is below ATS)", "loss-only and sim-only below ATS everywhere"
    parts, ok, n = [], 0, 0
    for label, (g, cell) in ABLATIONS.items():
        s = cell_stats(df, g, cell, ("ats", "ats-loss-only", "ats-sim-only")).set_index("method")
        if len(s) < 3:
            continue
        n += 1
        sc = 100 if g != "ablations" or "drug" not in cell else 1
        lo, si = (s.loc["ats", "mean"] - s.loc["ats-loss-only", "mean"]), (s.loc["ats", "mean"] - s.loc["ats-sim-only", "mean"])
        ok += int(lo > 0 and si > 0)
        parts.append(f"{label}: ATS − loss-only {lo * sc:+.{2 if sc == 100 else 3}f}, ATS − sim-only {si * sc:+.{2 if sc == 100 else 3}f}")
    rows.append(_pending(c, paper) if n == 0 else {
        "claim": c, "paper": paper, "ours": "; ".join(parts),
        "verdict": "holds" if ok == n == 3 else "partly" if ok else "does not hold"})
    # 5. noisy tasks: high loss, low similarity; 6. limited budget: valuable tasks at high loss and high similarity
    sep = factor_separation(pool_records(df, "noisy", "1shot", "ats"))
    rows.append(_two_part_claim(
        "noisy tasks sit at high loss and low gradient similarity", "scatter plots: noisy tasks high loss / low sim",
        "1-shot, noise 0.6, ATS pools (2nd half): ", {"AUC(noisy | high loss)": sep["auc_loss"],
                                                      "AUC(noisy | low similarity)": sep["auc_low_sim"]}, 0.6))
    rc = prob_correlations(pool_records(df, "budget", "b16-1shot", "ats"))
    rows.append(_two_part_claim(
        "with a limited budget, ATS favours tasks of high loss and high similarity",
        "scatter: chosen tasks high loss, high sim", "16 classes, 1-shot, ATS pools (2nd half): ",
        {"Spearman(prob, loss)": rc["rho_loss"], "Spearman(prob, similarity)": rc["rho_sim"]}, 0.0))
    return pd.DataFrame(rows)


def progress_table(experiments="experiments", results="results") -> pd.DataFrame:
    """Per committed grid: runs planned, done, pending, and CPU-hours of training (wall time) so far."""
    import json
    from .sweep import expand, load_grid
    rows = []
    for g in sorted(Path(experiments).glob("*.yaml")):
        specs = expand(load_grid(g), Path(results) / g.stem)
        done = [s for s in specs if (s.dir / "summary.json").is_file()]
        secs = sum(json.loads((s.dir / "summary.json").read_text()).get("wall_seconds", 0.0) for s in done
                   if not (s.dir / "REUSED_FROM").is_file())
        rows.append({"grid": g.stem, "runs": len(specs), "done": len(done), "pending": len(specs) - len(done),
                     "CPU hours": round(secs / 3600, 2)})
    return pd.DataFrame(rows).set_index("grid")


START, END = "<!-- results:start (written by notebooks/05_results) -->", "<!-- results:end -->"


def markdown(t: pd.DataFrame) -> str:
    try:
        return t.to_markdown(index=False)
    except ImportError:                                   # tabulate missing: plain text still reads
        return "```\n" + t.to_string(index=False) + "\n```"


def report(sections: dict[str, pd.DataFrame], progress: pd.DataFrame) -> str:
    """The results block of REPRODUCTION.md: run progress, then one Markdown table per section."""
    done, total = int(progress["done"].sum()), int(progress["runs"].sum())
    hours = float(progress["CPU hours"].sum())
    out = [f"Runs finished: **{done} of {total}** (runs shared by two grids count in both; {hours:.1f} CPU-hours "
           "of training so far on the 2-core machine, test time not included)."]
    out += ["", markdown(progress.reset_index()), ""]
    for title, t in sections.items():
        out += [f"### {title}", "", markdown(t), ""]
    return "\n".join(out).rstrip() + "\n"


def update_block(path, text: str) -> bool:
    """Replace what lies between the START and END markers of ``path``; False if the markers are missing."""
    path = Path(path)
    doc = path.read_text()
    if START not in doc or END not in doc:
        return False
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{text}{END}{tail}")
    return True


__all__ = ["load_results", "cell_stats", "bns", "paired", "welch", "wide_table", "drug_columns", "bns_row",
           "significance", "gains", "histories", "pool_records", "factor_separation", "prob_correlations",
           "trend", "claims", "report", "update_block", "progress_table", "NON_ADAPTIVE", "METHOD_ORDER", "LEVEL"]
