"""The study's settings and the paper's claims, tested on the sweep results; the REPRODUCTION.md block.

``claims(df)`` states each claim of the paper with its reference numbers, our numbers (from the
functions of ``reproduction``) and a verdict: holds / partly / does not hold / pending (its runs
have not finished). ``progress_table`` counts planned and finished runs per grid of
``experiments/``; ``write_report`` (``python -m atslib report``) writes the results block of
REPRODUCTION.md from the tables notebooks 07 and 09 save.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .grid import expand, load_grid, status
from ..paths import FIGURES_DIR, README, REPORT
from ..metrics import holm
from ..store import REUSED_FROM, SUMMARY
from .reproduction import (
    BUDGET_SEEDS,
    LEVEL,
    NON_ADAPTIVE,
    ablation_source,
    bns,
    budget_primary,
    cell_stats,
    factor_separation,
    gains,
    late_entropy,
    paired,
    paired_ci,
    paired_tasks,
    pool_records,
    prob_correlations,
    runs,
    seed_differences,
    trend,
    untestable,
)

# -- the study's settings: label -> (grid, cell) ----------------------------------------------
NOISY = {"1-shot": ("noisy", "1shot"), "5-shot": ("noisy", "5shot")}
DRUG_NOISY = {"drug η=4": ("molecules", "eta4")}
RATIOS = {r: ("noise-ratio", f"r{r}") for r in ("0.2", "0.4", "0.6", "0.8")}
BUDGET16 = {"1-shot": ("budget", "b16-1shot"), "5-shot": ("budget", "b16-5shot")}
BUDGETS = {b: ("budget", f"b{b}-1shot") for b in (16, 32, 48, 64)}
ABLATIONS = {"1-shot": ("ablations", "1shot"), "5-shot": ("ablations", "5shot"), "drug η=4": ("ablations", "drug-eta4")}
DRUG = {"clean": ("molecules", "clean"), **{f"η={e}": ("molecules", f"eta{e}") for e in (2, 4, 6, 8)}}
# where rank-sim-loss ran for a setting whose own grid lacks it (the ATS runs there are the same runs,
# copied by the sweep, so the pairing is over the same meta-test tasks)
RANK_CELL = {("molecules", "eta4"): ("ablations", "drug-eta4")}
BEYOND = {"equal compute": ("beyond", "equal-compute"), "flip 0.4": ("beyond", "flip0.4"),
          "flip 0.2": ("beyond", "flip0.2"), "clean 1-shot": ("beyond", "clean-1shot"),
          "clean 5-shot": ("beyond", "clean-5shot"), "1000 steps": ("long", "1shot"),
          "1000 steps 5-shot": ("long", "5shot")}


# the decisive long study (1000 steps; 3000 in one 1-shot cell), seed-level
DECISIVE = {"1-shot 1000": ("decisive", "1shot"), "5-shot 1000": ("decisive", "5shot"),
            "1-shot 3000": ("decisive", "1shot-3000")}
DECISIVE_METHODS = ("uniform", "uniform-val", "spl", "rank-sim-loss", "ats", "ats-cheap", "oracle-clean")
DECISIVE_BASELINES = ("uniform", "spl")          # the non-adaptive methods the decisive grid runs (BNS among them)


def verdict_changes(df, before: pd.DataFrame | dict | None = None) -> pd.DataFrame:
    """Each claim's verdict over seeds (the primary test) beside the verdict over tasks (conditional on
    the trained models) and, if given, ``before`` (a claims table as published earlier), with
    whether the wording moved."""
    seeds, tasks = claims(df, "seeds"), claims(df, "tasks")
    out = pd.DataFrame({"claim": seeds["claim"], "verdict (seeds)": seeds["verdict"],
                        "verdict (tasks, conditional)": tasks["verdict"]})
    if isinstance(before, pd.DataFrame):
        before = {"before": before}
    if before:                    # {label: claims table as published then}, oldest first
        for label, t in before.items():
            out[f"verdict {label}"] = out["claim"].map(t.set_index("claim")["verdict"]).fillna("–")
        out["changed"] = out["verdict (seeds)"] != out[f"verdict {list(before)[-1]}"]
    else:
        out["changed"] = out["verdict (seeds)"] != out["verdict (tasks, conditional)"]
    return out


def _pending(claim, paper):
    return {"claim": claim, "paper": paper, "ours": "runs not finished", "verdict": "pending"}


NOT_TESTABLE = "not testable at this scale"
INCONCLUSIVE = "inconclusive at this scale"
ORACLE_CELL = ("decisive", "1shot")
DECISIVE_ABLATIONS = ("ats-loss-only", "ats-sim-only", "ats-reweight", "ats-random-phi")
BUDGET_BINDING = ("budget-binding", "b16")
BUDGET_CONTROL = ("budget-binding", "b64")
BINDS_AT = 2.0          # points of uniform's 64 - 16 classes gap at which a budget binds (the issue's "2-3
                        # points", lower end; the pilot then chose T = 800, where the gap first reached 3)
BUDGET_GAIN = 1.0       # points: the gain the budget test was powered to detect (REPRODUCTION, plan of 2026-12-02)
# The margin of "reaches the ceiling" (claim 8): ATS or the ranking within this many points of the
# oracle. Set on 2026-12-04, after the oracle's runs: the effect the budget plan's 20 seeds were sized
# to detect (about 1 point); stated as chosen after the data.
EQUIVALENCE = 1.0


def p_digits(p) -> str:
    """Two significant digits; four where two would round a p onto the level (0.01005 is not 0.01)."""
    return f"{p:.4g}" if 0.005 <= p < 0.02 else f"{p:.2g}"


def _p(p, ph=None) -> str:
    return f"p={p_digits(p)}" + (f", Holm {p_digits(ph)}" if ph is not None and np.isfinite(ph) else "")


def _budget_gap(df, small, large) -> float:
    """Points by which uniform with every class beats uniform under the budget (seed means)."""
    a, b = (cell_stats(df, *c, ("uniform",)) for c in (large, small))
    return float("nan") if a.empty or b.empty else float(a["mean"].iloc[0] - b["mean"].iloc[0]) * 100


def late_entropies(df, g, cell, method="ats") -> tuple[np.ndarray, float, int]:
    """The scheduler's late-training entropy of each run (finite ones), the uniform maximum ln(pool
    size), and how many runs are within 0.05 of it."""
    r = runs(df, g, cell, method)
    e = np.array([late_entropy(d) for d in r["dir"]], dtype=float)
    e = e[np.isfinite(e)]
    top = float(np.log(r["pool_size"].astype(float).iloc[0])) if "pool_size" in r and len(r) else float(np.log(10))
    return e, top, int((e > top - 0.05).sum())


def _entropy_note(df, g, cell, method="ats") -> str:
    """The scheduler's late-training entropy over its runs, against the uniform maximum ln(pool size)."""
    e, top, near = late_entropies(df, g, cell, method)
    if not e.size:
        return ""
    return (f" [ATS entropy, late half: median {np.median(e):.2f} of a maximum {top:.3f}; {near} of {e.size} runs "
            f"within 0.05 of uniform]")


def claim1_family(df, test: str = "seeds") -> tuple[list[dict], bool]:
    """Claim 1's comparisons, one dict per noisy setting: ATS against uniform (``du``, ``pu``), the
    best non-adaptive baseline ``b`` (``db``, ``pb``) and rank-sim-loss (``dr``, ``pr``), each with its
    Holm-adjusted p (``hu``, ``hb``, ``hr``; the family: every distinct test of the claim, so where the
    best baseline is uniform its test counts once), and whether every baseline has finished."""
    paired_ = paired if test == "seeds" else paired_tasks
    other_ = paired_tasks if test == "seeds" else paired
    settings = {**NOISY, **DRUG_NOISY, **{f"decisive {k}": DECISIVE[k] for k in ("1-shot 1000", "5-shot 1000")}}
    found, complete = [], True
    for label, (g, cell) in settings.items():
        du, pu, n = paired_(df, g, cell, "ats", "uniform")
        if n == 0:
            complete = False
            continue
        expected = (DECISIVE_BASELINES if g == "decisive" else
                    [m for m in NON_ADAPTIVE if not (m == "gcp" and g == "molecules")])
        missing = [m for m in expected if cell_stats(df, g, cell, (m,)).empty]
        complete = complete and not missing
        b = bns(df, g, cell)
        db, pb, _ = paired_(df, g, cell, "ats", b)
        dr, pr, _ = paired_(df, *RANK_CELL.get((g, cell), (g, cell)), "ats", "rank-sim-loss")
        _, pw, _ = other_(df, g, cell, "ats", "uniform")
        found.append(dict(label=label, g=g, cell=cell, du=du, pu=pu, n=n, b=b, db=db, pb=pb, dr=dr, pr=pr, pw=pw,
                          missing=missing, why=untestable(df, g, cell, "ats", "uniform")))
    tests = {}                                   # (setting, other method) -> p: each distinct test once
    for f in found:
        tests[(f["label"], "uniform")] = f["pu"]
        tests[(f["label"], f["b"])] = f["pb"]
        tests[(f["label"], "rank-sim-loss")] = f["pr"]
    adj = dict(zip(tests, holm(list(tests.values())))) if tests else {}
    for f in found:
        f.update(hu=adj[(f["label"], "uniform")], hb=adj[(f["label"], f["b"])], hr=adj[(f["label"], "rank-sim-loss")])
    return found, complete


def _one_sample(x, null: float = 0.0) -> tuple[float, float, int]:
    """(mean, two-sided one-sample t-test p against ``null``, n) of the finite values of ``x``."""
    from scipy import stats
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan"), float("nan"), int(x.size)
    return float(x.mean()), float(stats.ttest_1samp(x, null).pvalue), int(x.size)


def _seed_test_claim(claim, paper, where, per_seed: dict, null: float) -> dict:
    """A claim made of statistics that should each exceed ``null``: each one's per-seed values are
    tested against it (t-test over seeds, Holm over the statistics, level 0.01)."""
    res = {n: _one_sample(v, null) for n, v in per_seed.items()}
    if any(r[2] < 2 for r in res.values()):
        return _pending(claim, paper)
    ph = holm([r[1] for r in res.values()])
    up = [r[0] > null and h < LEVEL for r, h in zip(res.values(), ph)]
    down = [r[0] < null and h < LEVEL for r, h in zip(res.values(), ph)]
    return {"claim": claim, "paper": paper,
            "ours": where + ", ".join(f"{n} {r[0]:+.3f} (against {null:g}: {_p(r[1], h)}, {r[2]} seeds)"
                                      for (n, r), h in zip(res.items(), ph)),
            "verdict": "holds" if all(up) else "partly" if any(up) else
                       "does not hold" if any(down) else "inconclusive at this scale"}


def per_seed(pools: pd.DataFrame, fn) -> dict:
    """``fn`` (a dict-valued statistic of pool records) computed on each seed's pools: {key: array over seeds}."""
    if pools.empty:
        return {}
    out = [fn(g) for _, g in pools.groupby("seed")]
    return {k: np.array([o[k] for o in out], dtype=float) for k in out[0]}


def below(d, bound: float) -> float:
    """One-sided t-test p that the mean of ``d`` is below ``bound`` (H0: mean >= bound)."""
    from scipy import stats
    d = np.asarray(d, dtype=float)
    d = d[np.isfinite(d)]
    n = d.size
    if n < 2:
        return float("nan")
    se = d.std(ddof=1) / np.sqrt(n)
    if se == 0:
        return float(d.mean() >= bound)
    return float(stats.t.cdf((d.mean() - bound) / se, n - 1))


def tost(d, margin: float) -> float:
    """Two one-sided t-tests p that the mean of ``d`` lies within +-``margin`` (equivalence; small
    p = shown to be within the margin): the larger of "below +margin" and "above -margin"."""
    d = np.asarray(d, dtype=float)
    return max(below(d, margin), below(-d, margin))


def claims(df, test: str = "seeds") -> pd.DataFrame:
    """Each claim with our numbers and a verdict: holds / partly / does not hold / inconclusive /
    not testable at this scale (with the reason) / pending (its runs have not finished).

    Verdicts rest on ``test``: "seeds" (the primary, paired over seeds) or "tasks" (over the meta-test
    tasks of the trained models, conditional on them; what the verdicts rested on before, kept to
    show which verdicts it inflated). Where a claim makes several comparisons, each has its
    Holm-adjusted p beside the raw one (the family: that claim's comparisons), and the verdict uses
    the adjusted p. A comparison whose seed pairs mostly end at their common start cannot separate
    the methods; a budget claim needs a budget that binds (uniform loses >= 2 points to it).
    """
    if test not in ("seeds", "tasks"):
        raise ValueError(f"test {test!r}; allowed: seeds, tasks")
    paired_ = paired if test == "seeds" else paired_tasks
    other_ = paired_tasks if test == "seeds" else paired
    other_name = "over tasks, conditional" if test == "seeds" else "over seeds"
    rows = []
    # 1. ATS beats every baseline under noise
    c, paper = "ATS beats every baseline under noise", "1-shot +2.54, 5-shot +3.70 points over uniform; drug R² 0.233 vs 0.202 (η=4); * vs BNS at 0.01"
    found, complete = claim1_family(df, test)
    if not found:
        rows.append(_pending(c, paper))
    else:
        parts, testable, wins_u, wins_all = [], 0, 0, 0
        for f in found:
            hu, hb, hr = f["hu"], f["hb"], f["hr"]
            sc, dg, unit = (100, 2, " pts") if f["g"] != "molecules" else (1, 3, " R²")
            text = (f"{f['label']}: vs uniform {f['du'] * sc:+.{dg}f}{unit} ({_p(f['pu'], hu)}, {f['n']} seeds; "
                    f"{other_name} p={f['pw']:.2g}), vs BNS [{f['b']}] {f['db'] * sc:+.{dg}f} ({_p(f['pb'], hb)}), "
                    f"vs rank-sim-loss {f['dr'] * sc:+.{dg}f} ({_p(f['pr'], hr)})")
            if f["missing"]:
                text += f" [baselines not finished: {', '.join(f['missing'])}]"
            if f["g"] == "molecules":
                text += _entropy_note(df, f["g"], f["cell"])
            if f["why"]:
                text += f" [{NOT_TESTABLE}: {f['why']}]"
            else:
                testable += 1
                wins_u += int(f["du"] > 0 and hu < LEVEL)
                wins_all += int(f["du"] > 0 and hu < LEVEL and f["db"] > 0 and hb < LEVEL)
            parts.append(text)
        verdict = ("pending" if not complete else NOT_TESTABLE if not testable else
                   "holds" if wins_all == testable == len(found) else "partly" if wins_u else "does not hold")
        if verdict == "partly" and not wins_all:
            parts.append("ATS beats uniform but, at Holm 0.01, no cell's best non-adaptive baseline")
        rows.append({"claim": c, "paper": paper, "ours": "; ".join(parts), "verdict": verdict})
    # 2. gain over uniform grows with the noise ratio
    c, paper = "the gain over uniform is larger at high noise", "+2.1, +1.6, +2.5, +5.7 at ratios 0.2-0.8"
    gn = gains(df, RATIOS, test=paired_).dropna(subset=["gain"])
    if len(gn) < 2:
        rows.append(_pending(c, paper))
    else:
        x = gn["setting"].astype(float)
        slope = trend(x, gn["gain"] * 100)
        ph = holm(gn["p"].to_numpy())
        why = {r: untestable(df, *RATIOS[r], "ats", "uniform") for r in gn["setting"]}
        ours = (", ".join(f"{r}: {v * 100:+.2f} ({_p(p, h)}{'; ' + why[r] if why[r] else ''})"
                          for r, v, p, h in zip(gn["setting"], gn["gain"], gn["p"], ph))
                + f"; slope {slope:+.2f} pts per unit ratio")
        hi_lo = gn["gain"].iloc[-1] > gn["gain"].iloc[0]
        significant = (gn["gain"] > 0).to_numpy() & (ph < LEVEL)
        blocked = [r for r, w in why.items() if w]
        if len(gn) < 4:
            verdict = "pending"
        elif blocked:         # a trend over ratios needs every ratio, the high-noise end above all
            verdict = NOT_TESTABLE
            ours += f" [{NOT_TESTABLE}: at ratio {', '.join(blocked)} most seed pairs end at their start (150 steps)]"
        else:
            verdict = ("holds" if slope > 0 and hi_lo and significant[-1] else
                       "partly" if significant.any() else "does not hold")
        rows.append({"claim": c, "paper": paper, "ours": ours + ("" if len(gn) == 4 else f" ({len(gn)}/4 ratios)"),
                     "verdict": verdict})
    # 3. gain shrinks as the budget grows
    c, paper = "the gain over uniform shrinks as the budget grows", "+1.54, +1.20, +0.82, +0.54 at 16, 32, 48, 64 classes"
    gb = gains(df, {str(k): v for k, v in BUDGETS.items()}, test=paired_).dropna(subset=["gain"])
    if len(gb) < 2:
        rows.append(_pending(c, paper))
    else:
        slope = trend(gb["setting"].astype(float), gb["gain"] * 100)
        ph = holm(gb["p"].to_numpy())
        ours = ", ".join(f"{b} classes: {v * 100:+.2f} ({_p(p, h)})"
                         for b, v, p, h in zip(gb["setting"], gb["gain"], gb["p"], ph))
        gap = _budget_gap(df, BUDGETS[16], BUDGETS[64])
        pos16 = gb["gain"].iloc[0] > 0 and ph[0] < LEVEL
        verdict = ("pending" if len(gb) < 4 else
                   NOT_TESTABLE if not gap >= BINDS_AT else
                   "holds" if slope < 0 and pos16 else "partly" if pos16 else "does not hold")
        ours += f"; slope {slope * 16:+.2f} pts per 16 classes; uniform 64 − 16 classes {gap:+.2f} pts"
        if verdict == NOT_TESTABLE:
            ours += (f" [{NOT_TESTABLE}: at 300 steps the budget does not bind (uniform loses {gap:.2f} < {BINDS_AT:g} "
                     f"points to it); see the pre-registered budget test]")
        rows.append({"claim": c, "paper": paper, "ours": ours, "verdict": verdict})
    # 4. both factors are needed: the 1000-step decisive cell; the 150-step ablation cells for reference
    c, paper = "both factors are needed (each single-factor ablation is below ATS)", "loss-only and sim-only below ATS everywhere"
    g, cell = DECISIVE["1-shot 1000"]
    # read when notebook 06 reads them: every ablation with 5 seeds, cut to the seeds all methods ran
    abl_kind, abl_df = ablation_source(df, 1)
    old = []
    for label, (ga, ca) in ABLATIONS.items():
        lo, plo, n = paired_(df, ga, ca, "ats", "ats-loss-only")
        si, psi, _ = paired_(df, ga, ca, "ats", "ats-sim-only")
        if n:
            sc, dg = (1, 3) if "drug" in ca else (100, 2)
            why = [w for w in (untestable(df, ga, ca, "ats", m) for m in ("ats-loss-only", "ats-sim-only")) if w]
            steps = runs(df, ga, ca, "ats")["steps"].astype(int).iloc[0]
            ph_old = holm([plo, psi])
            old.append(f"{label} ({steps} steps, {n} seeds): − loss-only {lo * sc:+.{dg}f} ({_p(plo, ph_old[0])}), "
                       f"− sim-only {si * sc:+.{dg}f} ({_p(psi, ph_old[1])})" + (f" [{NOT_TESTABLE}: {why[0]}]" if why else ""))
    if abl_kind != "decisive":
        rows.append({"claim": c, "paper": paper, "verdict": "pending",
                     "ours": "1000-step ablations (decisive 1-shot, seeds 0-4) not finished; earlier cells: " + "; ".join(old)})
    else:
        res = [paired_ci(abl_df, g, cell, "ats", m) for m in ("ats-loss-only", "ats-sim-only")]
        ph = holm([r[1] for r in res])
        parts = [f"ATS − {m} {r[0] * 100:+.2f} [{r[2] * 100:+.2f}, {r[3] * 100:+.2f}] ({_p(r[1], h)}, {r[4]} seeds)"
                 for m, r, h in zip(("loss-only", "sim-only"), res, ph)]
        ok = [r[0] > 0 and h < LEVEL for r, h in zip(res, ph)]          # shown below ATS
        up = [r[0] < 0 and h < LEVEL for r, h in zip(res, ph)]          # shown above ATS
        # (rule of 2026-12-06, before any 1000-step ablation ran: neither shown below nor above ATS is
        # "inconclusive at this scale", not "does not hold")
        verdict = "holds" if all(ok) else "partly" if any(ok) else "does not hold" if any(up) else INCONCLUSIVE
        why = (f" [{INCONCLUSIVE}: with {res[0][4]} seeds neither single-factor ablation is shown below ATS "
               f"or above it]" if verdict == INCONCLUSIVE else "")
        rows.append({"claim": c, "paper": paper, "verdict": verdict,
                     "ours": "decisive 1-shot, 1000 steps: " + "; ".join(parts) + why + "; earlier cells: " + "; ".join(old)})
    # 5. noisy tasks: high loss, low similarity; 6. limited budget: valuable tasks at high loss and high similarity
    # (since 2026-12-04 both are tests over seeds: each seed's statistic, t-tested against its null,
    # Holm over the two; before, a threshold on the statistic pooled over seeds)
    sep = per_seed(pool_records(df, "noisy", "1shot", "ats"), factor_separation)
    rows.append(_seed_test_claim(
        "noisy tasks sit at high loss and low gradient similarity", "scatter plots: noisy tasks high loss / low sim",
        "1-shot, noise 0.6, ATS pools (2nd half), per seed: ",
        {"AUC(noisy | high loss)": sep.get("auc_loss", []), "AUC(noisy | low similarity)": sep.get("auc_low_sim", [])},
        0.5))
    c6, p6 = "with a limited budget, ATS favours tasks of high loss and high similarity", "scatter: chosen tasks high loss, high sim"
    primary = budget_primary(df, *BUDGET_BINDING)
    if primary["complete"]:
        rc = per_seed(pool_records(df, *BUDGET_BINDING, "ats"), prob_correlations)
        rows.append(_seed_test_claim(c6, p6, "16 classes, 1-shot, 800 steps (binding), ATS pools (2nd half), "
                                             "mean within-pool Spearman per seed: ",
                                     {"Spearman(prob, loss)": rc.get("rho_loss", []),
                                      "Spearman(prob, similarity)": rc.get("rho_sim", [])}, 0.0))
    else:
        rc = prob_correlations(pool_records(df, "budget", "b16-1shot", "ats"))
        gap = _budget_gap(df, BUDGETS[16], BUDGETS[64])
        rows.append({"claim": c6, "paper": p6, "verdict": "pending",
                     "ours": (f"300-step cell: Spearman(prob, loss) {rc['rho_loss']:+.3f}, (prob, similarity) "
                              f"{rc['rho_sim']:+.3f}, but the budget does not bind there (uniform 64 − 16 classes "
                              f"{gap:+.2f} pts); the binding 800-step grid has {primary['seeds']} of {BUDGET_SEEDS} seeds")})
    # 7. the paper's "Rank by Sim/Loss" ablation: ATS above the fixed ranking
    c, paper = "ATS beats the fixed ranking by similarity and loss (the paper's Rank by Sim/Loss)", "+1.37 (1-shot), +1.60 (5-shot) points"
    ref = {"1-shot 1000": 1.37, "5-shot 1000": 1.60}
    res = {k: paired_ci(df, *DECISIVE[k], "ats", "rank-sim-loss") for k in ref}
    if any(r[4] < 2 for r in res.values()):
        rows.append(_pending(c, paper))
    else:
        ph = holm([r[1] for r in res.values()])
        # the paper's gap as the null (since 2026-12-04; before: whether it lay above the 95% intervals):
        # one-sided t-test that ATS - ranking is below it, Holm over the two shots
        pg = {k: below(seed_differences(df, *DECISIVE[k], "ats", "rank-sim-loss") * 100, ref[k]) for k in ref}
        pgh = dict(zip(pg, holm(list(pg.values()))))
        parts = [f"decisive {k}: {r[0] * 100:+.2f} [{r[2] * 100:+.2f}, {r[3] * 100:+.2f}] ({_p(r[1], h)}, {r[4]} seeds; "
                 f"below the paper's +{ref[k]:.2f}: one-sided {_p(pg[k], pgh[k])})"
                 for (k, r), h in zip(res.items(), ph)]
        win = [r[0] > 0 and h < LEVEL for r, h in zip(res.values(), ph)]
        short = [pgh[k] < LEVEL for k in ref]                          # the paper's gap rejected
        verdict = ("holds" if all(win) else "partly" if any(win) else
                   "does not hold" if all(short) else "inconclusive at this scale")
        rows.append({"claim": c, "paper": paper, "verdict": verdict,
                     "ours": "; ".join(parts) + ("; the paper's gaps are rejected; a smaller gain is not excluded"
                                                 if verdict == "does not hold" else "")})
    # 8. our finding: the noise ceiling (the oracle reads the hidden noise flags; never a baseline)
    c, paper = ("finding (ours): ATS and the fixed ranking reach the clean-task ceiling under noise",
                "not in the paper; the ceiling is oracle-clean, which trains only on the pool's clean tasks")
    if len(runs(df, *ORACLE_CELL, "oracle-clean")) < 2:
        rows.append(_pending(c, paper))
    else:
        res = {m: paired_ci(df, *ORACLE_CELL, m, "oracle-clean") for m in ("ats", "rank-sim-loss", "uniform")}
        ph = holm([r[1] for r in res.values()])
        o = cell_stats(df, *ORACLE_CELL, ("oracle-clean",))
        # "reach" is an equivalence (since 2026-12-04; before: the interval contains 0): two one-sided
        # tests that the method is within EQUIVALENCE points of the oracle, Holm over the two methods
        eq = {m: tost(seed_differences(df, *ORACLE_CELL, m, "oracle-clean") * 100, EQUIVALENCE)
              for m in ("ats", "rank-sim-loss")}
        eqh = dict(zip(eq, holm(list(eq.values()))))
        parts = [f"{m} − oracle {r[0] * 100:+.2f} [{r[2] * 100:+.2f}, {r[3] * 100:+.2f}] ({_p(r[1], h)}, {r[4]} seeds"
                 + (f"; within ±{EQUIVALENCE:g} pts: {_p(eq[m], eqh[m])})" if m in eq else ")")
                 for (m, r), h in zip(res.items(), ph)]
        reach = [eqh[m] < LEVEL for m in eq]
        # short of the ceiling: more than the margin below the oracle (one-sided, Holm over the two)
        sh = {m: below(seed_differences(df, *ORACLE_CELL, m, "oracle-clean") * 100, -EQUIVALENCE) for m in eq}
        shh = dict(zip(sh, holm(list(sh.values()))))
        short = [shh[m] < LEVEL for m in eq]
        verdict = ("holds" if all(reach) else "partly" if any(reach) else
                   "does not hold" if all(short) else "inconclusive at this scale")
        why = (f" [inconclusive at this scale: with {res['ats'][4]} seeds no method is shown within ±{EQUIVALENCE:g} "
               f"points of the oracle, and not every one is shown further below it]"
               if verdict == "inconclusive at this scale" else "")
        rows.append({"claim": c, "paper": paper, "verdict": verdict,
                     "ours": f"decisive 1-shot (noise 0.6, flip 0.8, 1000 steps): oracle {o['mean'].iloc[0] * 100:.2f}%; "
                             + "; ".join(parts) + why})
    # 9. the pre-registered budget test: ATS against the best fixed rule where the budget binds
    c, paper = ("with a binding class budget, ATS beats the best fixed rule (pre-registered 2026-12-02)",
                "budget: +1.54 over uniform at 16 classes; valuable tasks are hard and aligned")
    gap = _budget_gap(df, BUDGET_BINDING, BUDGET_CONTROL)
    if not primary["complete"]:
        rows.append({"claim": c, "paper": paper, "verdict": "pending",
                     "ours": f"{primary['seeds']} of {BUDGET_SEEDS} seeds finished (all four methods)"
                             + (f"; uniform 64 − 16 classes {gap:+.2f} pts" if np.isfinite(gap) else "")})
    else:
        lo, hi = primary["ci"]
        win = primary["diff"] > 0 and primary["p"] < LEVEL
        # a gain the size the plan was powered for (BUDGET_GAIN) ruled out: one-sided, level 0.01
        # (rule fixed 2026-12-06, before the last seeds, blind to the means; REPRODUCTION amendments)
        small = below(primary["d"] * 100, BUDGET_GAIN)          # the primary test's own seeds
        lose = primary["diff"] < 0 and primary["p"] < LEVEL
        verdict = "holds" if win else "does not hold" if lose or small < LEVEL else INCONCLUSIVE
        why = (f"; {primary['best_fixed']} beats ATS" if lose else
               f"; a gain of {BUDGET_GAIN:g} point or more is ruled out (one-sided p={p_digits(small)})"
               if verdict == "does not hold" else
               f" [{INCONCLUSIVE}: neither a difference nor the absence of a {BUDGET_GAIN:g}-point gain is shown]"
               if verdict == INCONCLUSIVE else "")
        rows.append({"claim": c, "paper": paper, "verdict": verdict,
                     "ours": (f"16 classes, 1-shot, 800 steps, {primary['seeds']} seeds: ATS − {primary['best_fixed']} "
                              f"(best fixed rule on validation) {primary['diff'] * 100:+.2f} [{lo * 100:+.2f}, "
                              f"{hi * 100:+.2f}] (p={p_digits(primary['p'])}; {primary['above']} seeds above 0){why}"
                              + (f"; uniform 64 − 16 classes {gap:+.2f} pts" if np.isfinite(gap) else ""))})
    return pd.DataFrame(rows)


def progress_table(experiments="experiments", results="results") -> pd.DataFrame:
    """Per committed grid: runs planned, done, failed (a FAILED record, no summary), pending, and the
    hours of training (wall time summed over runs) on CPUs and on GPUs (each run's ``device``)."""
    rows = []
    grids = sorted(Path(experiments).glob("*.yaml"))
    if not grids:
        raise FileNotFoundError(f"{experiments}: no grid files (*.yaml) there")
    for g in grids:
        specs = expand(load_grid(g), Path(results) / g.stem)
        states = [status(s) for s in specs]
        done = [s for s, st in zip(specs, states) if st == "done"]
        failed = states.count("failed")
        secs = {"cpu": 0.0, "cuda": 0.0}
        for s in done:
            if not (s.dir / REUSED_FROM).is_file():
                summ = json.loads((s.dir / SUMMARY).read_text())
                kind = "cuda" if str(summ.get("device", "cpu")).startswith("cuda") else "cpu"
                secs[kind] += summ.get("wall_seconds", 0.0)
        rows.append({"grid": g.stem, "runs": len(specs), "done": len(done), "failed": failed,
                     "pending": len(specs) - len(done) - failed,
                     "CPU hours": round(secs["cpu"] / 3600, 2), "GPU hours": round(secs["cuda"] / 3600, 2)})
    return pd.DataFrame(rows).set_index("grid")


START, END = "<!-- results:start (written by python -m atslib report) -->", "<!-- results:end -->"
# README.md's table of findings (notebook 07's 07_headline), between its own markers
FINDINGS = ("<!-- findings:start (written by python -m atslib report) -->", "<!-- findings:end -->")

# The results block: (section title, table name) in order; notebook 07 writes each table as
# figures/tables/<name>.csv, and ``write_report`` (``python -m atslib report``) assembles them.
REPORT_SECTIONS = (
    ("Claims", "07_claims"),
    ("Meta-learning with noise (noise ratio 0.6; accuracy %, drug R²)", "07_noisy"),
    ("Limited budgets (16 classes; drug: clean tasks)", "07_budget16"),
    ("Ablations", "07_ablations"),
    ("Effect of the noise ratio (1-shot)", "07_noise_ratio"),
    ("Effect of the drug noise scale η", "07_drug_noise"),
    ("Effect of the budget (1-shot)", "07_budgets"),
    ("Beyond the paper", "07_beyond"),
    ("Significance", "07_significance"),
    ("The null check: ats-random-phi (uniform in practice) against uniform", "07_null_check"),
    ("Runs that kept their step-0 model (a checkpoint candidate since 2026-11-30)", "07_kept_start"),
    ("Noise AUC", "07_noise_auc"),
    ("ats-reweight: all pool tasks vs equal batch", "07_reweight"),
    ("The decisive long study (grid decisive)", "07_decisive"),
    ("The decisive study: ATS against each method, over seeds (points)", "07_decisive_significance"),
    ("The decisive study: the fixed ranking (rank-sim-loss) against the non-adaptive methods, over seeds (points)",
     "07_decisive_rank"),
    ("The authors' scheduler warm-up: ATS with it against each method, over seeds (1-shot, 1000 steps; points)",
     "07_decisive_warmup"),
    ("Statistical power (points detectable at level 0.01, power 0.8)", "07_power"),
    ("The pre-registered budget test (16 classes, 800 steps; plan of 2026-12-02)", "07_budget_binding"),
    ("The budget test: every pair of methods over seeds (points; Holm over the six)", "07_budget_pairs"),
    ("The budget test: ATS's preference per quarter of training (within-pool Spearman)", "07_budget_quarters"),
    ("Verdicts: over seeds, over tasks, and as published on 2026-11-27 and 2026-12-02", "07_verdicts"),
    ("Beyond the paper's noise: regimes (test accuracy %, mean ± 95% CI over seeds)", "09_regimes_table"),
    ("Regimes: each method minus uniform, paired over seeds (points)", "09_regimes_differences"),
    ("Regimes: ATS against the best fixed heuristic, over seeds (points)", "09_regimes_verdicts"),
    ("Regimes: AUC of each factor against the bad-task flag", "09_regimes_auc"),
)


def markdown(t: pd.DataFrame) -> str:
    try:
        return t.to_markdown(index=False)
    except ImportError:                                   # tabulate missing: plain text still reads
        return "```\n" + t.to_string(index=False) + "\n```"


def compact_markdown(t: pd.DataFrame) -> str:
    """A Markdown table without the padding that aligns its columns in plain text: for prose-wide
    cells, as in README.md's findings (pipes inside a cell are escaped)."""
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    rows = [list(t.columns), ["---"] * t.shape[1], *t.astype(str).values.tolist()]
    return "".join("| " + " | ".join(cell(v) for v in r) + " |\n" for r in rows)


def report(sections: dict[str, pd.DataFrame], progress: pd.DataFrame) -> str:
    """The results block of REPRODUCTION.md: run progress, then one Markdown table per section."""
    done, total = int(progress["done"].sum()), int(progress["runs"].sum())
    hours = float(progress["CPU hours"].sum())
    gpu = float(progress["GPU hours"].sum()) if "GPU hours" in progress else 0.0
    failed = int(progress["failed"].sum()) if "failed" in progress else 0
    out = [f"Runs finished: **{done} of {total}**" + (f", {failed} failed (see the text)" if failed else "")
           + f" (runs shared by two grids count in both; {hours:.1f} CPU-hours of training on the 2-core machine"
           + (f" and {gpu:.2f} GPU-hours on an H100" if gpu else "")
           + "; hours are wall time summed over runs, several of which ran at once; test time not included)."]
    out += ["", markdown(progress.reset_index()), ""]
    for title, t in sections.items():
        out += [f"### {title}", "", markdown(t), ""]
    return "\n".join(out).rstrip() + "\n"


def write_report(path=REPORT, tables=FIGURES_DIR / "tables", readme=None) -> list[str]:
    """Rewrite the results block of ``path`` from the tables notebooks 07 and 09 saved in ``tables``
    (``make figures`` regenerates them), and the findings table of ``readme`` (when given; the
    command line passes README.md when it writes REPRODUCTION.md) from 07_headline; returns the
    table names that were missing. This is the only code that writes REPRODUCTION.md
    and that block of README.md."""
    tables = Path(tables)
    sections, missing = {}, []
    for title, name in REPORT_SECTIONS:
        f = tables / f"{name}.csv"
        if f.is_file():
            sections[title] = pd.read_csv(f, keep_default_na=False)
        else:
            missing.append(name)
    progress = tables / "07_progress.csv"
    if not progress.is_file():
        raise FileNotFoundError(f"{progress}: no progress table; run notebook 07 first (make figures)")
    if not update_block(path, report(sections, pd.read_csv(progress).set_index("grid"))):
        raise ValueError(f"{path}: no results block (the {START!r} / {END!r} markers)")
    headline = tables / "07_headline.csv"
    if not headline.is_file():
        missing.append("07_headline")
    else:
        findings = compact_markdown(pd.read_csv(headline, keep_default_na=False))
        update_block(path, findings, *FINDINGS)              # its answer-first section, where it has one
        if readme is not None and not update_block(readme, findings, *FINDINGS):
            raise ValueError(f"{readme}: no findings block (the {FINDINGS[0]!r} / {FINDINGS[1]!r} markers)")
    return missing


def update_block(path, text: str, start: str = START, end: str = END) -> bool:
    """Replace what lies between the ``start`` and ``end`` markers of ``path``; False if they are missing."""
    path = Path(path)
    doc = path.read_text()
    if start not in doc or end not in doc:
        return False
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}{end}{tail}")
    return True


__all__ = ["claims", "verdict_changes", "DECISIVE", "DECISIVE_METHODS", "report", "update_block", "write_report",
           "REPORT_SECTIONS", "FINDINGS", "progress_table", "NOISY", "DRUG_NOISY", "RATIOS", "BUDGET16",
           "BUDGETS", "ABLATIONS", "DRUG", "BEYOND", "RANK_CELL", "START", "END"]
