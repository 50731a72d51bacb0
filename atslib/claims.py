"""The study's settings and the paper's claims, tested on the sweep results; the REPRODUCTION.md block.

``claims(df)`` states each claim of the paper with its reference numbers, our numbers (from the
functions of ``reproduction``) and a verdict: holds / partly / does not hold / pending (its runs
have not finished). ``progress_table`` counts planned and finished runs per grid of
``experiments/``; ``write_report`` (``python -m atslib report``) writes the results block of
REPRODUCTION.md from the tables notebooks 05 and 08 save.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .grid import expand, load_grid, status
from .paths import FIGURES_DIR, REPORT
from .reproduction import (
    LEVEL,
    NON_ADAPTIVE,
    bns,
    cell_stats,
    factor_separation,
    gains,
    paired,
    paired_tasks,
    pool_records,
    prob_correlations,
    trend,
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
DECISIVE_METHODS = ("uniform", "uniform-val", "spl", "rank-sim-loss", "ats", "ats-cheap")
DECISIVE_BASELINES = ("uniform", "spl")          # the non-adaptive methods the decisive grid runs (BNS among them)


def verdict_changes(df, before: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each claim's verdict over seeds (the primary test) beside the verdict over tasks (conditional on
    the trained models) and, if given, ``before`` (a claims table as published earlier), with
    whether the wording moved."""
    seeds, tasks = claims(df, "seeds"), claims(df, "tasks")
    out = pd.DataFrame({"claim": seeds["claim"], "verdict (seeds)": seeds["verdict"],
                        "verdict (tasks, conditional)": tasks["verdict"]})
    if before is not None:
        old = before.set_index("claim")["verdict"]
        out["verdict before"] = out["claim"].map(old).fillna("–")
        out["changed"] = out["verdict (seeds)"] != out["verdict before"]
    else:
        out["changed"] = out["verdict (seeds)"] != out["verdict (tasks, conditional)"]
    return out


def _pending(claim, paper):
    return {"claim": claim, "paper": paper, "ours": "runs not finished", "verdict": "pending"}


def _two_part_claim(claim, paper, where, values: dict, threshold: float) -> dict:
    """A claim made of two statistics that should both exceed ``threshold``."""
    if not all(np.isfinite(v) for v in values.values()):
        return _pending(claim, paper)
    k = sum(v > threshold for v in values.values())
    return {"claim": claim, "paper": paper, "ours": where + ", ".join(f"{n} {v:+.3f}" for n, v in values.items()),
            "verdict": "holds" if k == len(values) else "partly" if k else "does not hold"}


def claims(df, test: str = "seeds") -> pd.DataFrame:
    """Each claim of the seed with our numbers and a verdict: holds / partly / does not hold / pending.

    Verdicts rest on ``test``: "seeds" (the primary, paired over seeds) or "tasks" (over the meta-test
    tasks of the trained models, conditional on them; what the verdicts rested on before, kept to
    show which verdicts it inflated).
    """
    if test not in ("seeds", "tasks"):
        raise ValueError(f"test {test!r}; allowed: seeds, tasks")
    paired_ = paired if test == "seeds" else paired_tasks
    other_ = paired_tasks if test == "seeds" else paired
    other_name = "over tasks, conditional" if test == "seeds" else "over seeds"
    rows = []
    # 1. ATS beats every baseline under noise
    c, paper = "ATS beats every baseline under noise", "1-shot +2.54, 5-shot +3.70 points over uniform; drug R² 0.233 vs 0.202 (η=4); * vs BNS at 0.01"
    parts, wins_u, wins_all, complete = [], 0, 0, True
    settings = {**NOISY, **DRUG_NOISY, **{f"decisive {k}": DECISIVE[k] for k in ("1-shot 1000", "5-shot 1000")}}
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
        sc, dg, unit = (100, 2, " pts") if g != "molecules" else (1, 3, " R²")
        parts.append(f"{label}: vs uniform {du * sc:+.{dg}f}{unit} (p={pu:.2g}, {n} seeds; {other_name} p={pw:.2g}), "
                     f"vs BNS [{b}] {db * sc:+.{dg}f} (p={pb:.2g}), vs rank-sim-loss {dr * sc:+.{dg}f} (p={pr:.2g})"
                     + (f" [baselines not finished: {', '.join(missing)}]" if missing else ""))
        wins_u += int(du > 0 and pu < LEVEL)
        wins_all += int(du > 0 and pu < LEVEL and db > 0 and pb < LEVEL)
    if not parts:
        rows.append(_pending(c, paper))
    else:
        verdict = ("pending" if not complete else "holds" if wins_all == len(settings) else
                   "partly" if wins_u else "does not hold")
        rows.append({"claim": c, "paper": paper, "ours": "; ".join(parts), "verdict": verdict})
    # 2. gain over uniform grows with the noise ratio
    c, paper = "the gain over uniform is larger at high noise", "+2.1, +1.6, +2.5, +5.7 at ratios 0.2-0.8"
    gn = gains(df, RATIOS, test=paired_).dropna(subset=["gain"])
    if len(gn) < 2:
        rows.append(_pending(c, paper))
    else:
        x = gn["setting"].astype(float)
        slope = trend(x, gn["gain"] * 100)
        ours = (", ".join(f"{r}: {v * 100:+.2f} (p={p:.2g})" for r, v, p in zip(gn["setting"], gn["gain"], gn["p"]))
                + f"; slope {slope:+.2f} pts per unit ratio")
        hi_lo = gn["gain"].iloc[-1] > gn["gain"].iloc[0]
        significant = (gn["gain"] > 0) & (gn["p"] < LEVEL)
        rows.append({"claim": c, "paper": paper, "ours": ours + ("" if len(gn) == 4 else f" ({len(gn)}/4 ratios)"),
                     # holds: a positive trend whose high-noise end is a significant gain; partly: a
                     # significant gain at some ratio (a trend of gains none of which is significant is none)
                     "verdict": ("holds" if slope > 0 and hi_lo and significant.iloc[-1] else
                                 "partly" if significant.any() else "does not hold") if len(gn) == 4 else "pending"})
    # 3. gain shrinks as the budget grows
    c, paper = "the gain over uniform shrinks as the budget grows", "+1.54, +1.20, +0.82, +0.54 at 16, 32, 48, 64 classes"
    gb = gains(df, {str(k): v for k, v in BUDGETS.items()}, test=paired_).dropna(subset=["gain"])
    if len(gb) < 2:
        rows.append(_pending(c, paper))
    else:
        slope = trend(gb["setting"].astype(float), gb["gain"] * 100)
        ours = ", ".join(f"{b} classes: {v * 100:+.2f} (p={p:.2g})" for b, v, p in zip(gb["setting"], gb["gain"], gb["p"]))
        # a gain must exist at the smallest budget before it can shrink
        pos16 = gb["gain"].iloc[0] > 0 and gb["p"].iloc[0] < LEVEL
        rows.append({"claim": c, "paper": paper, "ours": ours + f"; slope {slope * 16:+.2f} pts per 16 classes",
                     "verdict": ("holds" if slope < 0 and pos16 else "partly" if pos16 else "does not hold")
                     if len(gb) == 4 else "pending"})
    # 4. both factors are needed
    c, paper = "both factors are needed (each single-factor ablation is below ATS)", "loss-only and sim-only below ATS everywhere"
    parts, ok, some, n = [], 0, 0, 0
    for label, (g, cell) in ABLATIONS.items():
        s = cell_stats(df, g, cell, ("ats", "ats-loss-only", "ats-sim-only")).set_index("method")
        if len(s) < 3:
            continue
        n += 1
        sc, dg = (1, 3) if "drug" in cell else (100, 2)
        lo, plo, _ = paired_(df, g, cell, "ats", "ats-loss-only")
        si, psi, _ = paired_(df, g, cell, "ats", "ats-sim-only")
        ok += int(lo > 0 and plo < LEVEL and si > 0 and psi < LEVEL)   # "below ATS" means significantly below
        some += int((lo > 0 and plo < LEVEL) or (si > 0 and psi < LEVEL))
        parts.append(f"{label}: ATS − loss-only {lo * sc:+.{dg}f} (p={plo:.2g}), ATS − sim-only {si * sc:+.{dg}f} "
                     f"(p={psi:.2g})")
    rows.append(_pending(c, paper) if n == 0 else {
        "claim": c, "paper": paper, "ours": "; ".join(parts) + ("" if n == 3 else f" ({n}/3 settings)"),
        "verdict": "pending" if n < 3 else "holds" if ok == 3 else "partly" if some else "does not hold"})
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
            if not (s.dir / "REUSED_FROM").is_file():
                summ = json.loads((s.dir / "summary.json").read_text())
                kind = "cuda" if str(summ.get("device", "cpu")).startswith("cuda") else "cpu"
                secs[kind] += summ.get("wall_seconds", 0.0)
        rows.append({"grid": g.stem, "runs": len(specs), "done": len(done), "failed": failed,
                     "pending": len(specs) - len(done) - failed,
                     "CPU hours": round(secs["cpu"] / 3600, 2), "GPU hours": round(secs["cuda"] / 3600, 2)})
    return pd.DataFrame(rows).set_index("grid")


START, END = "<!-- results:start (written by python -m atslib report) -->", "<!-- results:end -->"

# The results block: (section title, table name) in order; notebook 05 writes each table as
# figures/tables/<name>.csv, and ``write_report`` (``python -m atslib report``) assembles them.
REPORT_SECTIONS = (
    ("Claims", "05_claims"),
    ("Meta-learning with noise (noise ratio 0.6; accuracy %, drug R²)", "05_noisy"),
    ("Limited budgets (16 classes; drug: clean tasks)", "05_budget16"),
    ("Ablations", "05_ablations"),
    ("Effect of the noise ratio (1-shot)", "05_noise_ratio"),
    ("Effect of the drug noise scale η", "05_drug_noise"),
    ("Effect of the budget (1-shot)", "05_budgets"),
    ("Beyond the paper", "05_beyond"),
    ("Significance", "05_significance"),
    ("The null check: ats-random-phi (uniform in practice) against uniform", "05_null_check"),
    ("Runs that kept their step-0 model (a checkpoint candidate since 2026-11-30)", "05_kept_start"),
    ("Noise AUC", "05_noise_auc"),
    ("ats-reweight: all pool tasks vs equal batch", "05_reweight"),
    ("The decisive long study (grid decisive)", "05_decisive"),
    ("The decisive study: ATS against each method, over seeds (points)", "05_decisive_significance"),
    ("The decisive study: the fixed ranking (rank-sim-loss) against the non-adaptive methods, over seeds (points)",
     "05_decisive_rank"),
    ("The authors' scheduler warm-up: ATS with it against each method, over seeds (1-shot, 1000 steps; points)",
     "05_decisive_warmup"),
    ("Statistical power (points detectable at level 0.01, power 0.8)", "05_power"),
    ("Verdicts: over seeds, over tasks, and as published on 2026-11-27", "05_verdicts"),
    ("Beyond the paper's noise: regimes (test accuracy %, mean ± 95% CI over seeds)", "08_regimes_table"),
    ("Regimes: each method minus uniform, paired over seeds (points)", "08_regimes_differences"),
    ("Regimes: ATS against the best fixed heuristic, over seeds (points)", "08_regimes_verdicts"),
    ("Regimes: AUC of each factor against the bad-task flag", "08_regimes_auc"),
)


def markdown(t: pd.DataFrame) -> str:
    try:
        return t.to_markdown(index=False)
    except ImportError:                                   # tabulate missing: plain text still reads
        return "```\n" + t.to_string(index=False) + "\n```"


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


def write_report(path=REPORT, tables=FIGURES_DIR / "tables") -> list[str]:
    """Rewrite the results block of ``path`` from the tables notebooks 05 and 08 saved in ``tables``
    (``make figures`` regenerates them); returns the table names that were missing. This is the
    only code that writes REPRODUCTION.md."""
    tables = Path(tables)
    sections, missing = {}, []
    for title, name in REPORT_SECTIONS:
        f = tables / f"{name}.csv"
        if f.is_file():
            sections[title] = pd.read_csv(f, keep_default_na=False)
        else:
            missing.append(name)
    progress = tables / "05_progress.csv"
    if not progress.is_file():
        raise FileNotFoundError(f"{progress}: no progress table; run notebook 05 first (make figures)")
    if not update_block(path, report(sections, pd.read_csv(progress).set_index("grid"))):
        raise ValueError(f"{path}: no results block (the {START!r} / {END!r} markers)")
    return missing


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


__all__ = ["claims", "verdict_changes", "DECISIVE", "DECISIVE_METHODS", "report", "update_block", "write_report",
           "REPORT_SECTIONS", "progress_table", "NOISY", "DRUG_NOISY", "RATIOS", "BUDGET16",
           "BUDGETS", "ABLATIONS", "DRUG", "BEYOND", "RANK_CELL", "START", "END"]
