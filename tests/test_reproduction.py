"""The reproduction analysis on a synthetic results folder: cell means, paired tests over the same
tasks, BNS chosen on validation (not test), claims."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT
from scipy import stats


def fake_results(root, cells):
    """cells: {(grid, cell): {method: (val, per-seed task-score arrays)}} -> results/<grid>/summary.csv"""
    by_grid = {}
    for (grid, cell), methods in cells.items():
        for method, (val, seeds) in methods.items():
            for seed, scores in enumerate(seeds):
                d = root / grid / cell / f"{method}-s{seed}"
                d.mkdir(parents=True)
                pd.DataFrame({"task": np.arange(len(scores)), "acc": scores}).to_csv(d / "test_scores.csv", index=False)
                steps = np.arange(20)
                pd.DataFrame({"step": steps, "noisy_mass": np.linspace(0.6, 0.2 if method == "ats" else 0.6, 20)}
                             ).to_csv(d / "history.csv", index=False)
                by_grid.setdefault(grid, []).append({
                    "grid": grid, "cell": cell, "method": method, "seed": seed, "run": f"{cell}/{method}-s{seed}",
                    "status": "done", "test_mean": float(np.mean(scores)), "best_val": val, "noise_auc": 0.5,
                    "r2_median": np.nan, "r2_gt_03": np.nan, "wall_seconds": 1.0})
    for grid, rows in by_grid.items():
        pd.DataFrame(rows).to_csv(root / grid / "summary.csv", index=False)


@pytest.fixture
def results(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.7, 200)
    noise = lambda: rng.normal(0, 0.05, 200)  # noqa: E731
    fake_results(tmp_path, {("noisy", "1shot"): {
        "uniform": (0.50, [base + noise() for _ in range(3)]),
        "ats": (0.55, [base + 0.03 + noise() for _ in range(3)]),
        "spl": (0.40, [base + 0.05 + noise() for _ in range(2)]),     # best test, worst val
        "focal": (0.45, [base - 0.01 + noise() for _ in range(2)]),
    }})
    return tmp_path


def test_cell_stats_paired_and_bns(results):
    from atslib.study import reproduction as R
    df = R.load_results(results)
    s = R.cell_stats(df, "noisy", "1shot").set_index("method")
    assert list(s.index) == ["uniform", "spl", "focal", "ats"]        # the paper's order
    assert s.loc["spl", "n"] == 2
    runs = df[(df.method == "ats")]
    assert s.loc["ats", "mean"] == pytest.approx(runs["test_mean"].mean())
    v = runs["test_mean"].to_numpy()
    assert s.loc["ats", "ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3))
    # BNS is the non-adaptive method with the best validation score, although spl has the best test
    assert R.bns(df, "noisy", "1shot") == "uniform"
    # primary: paired over seeds (the test means with the same seed)
    d, p, n = R.paired(df, "noisy", "1shot", "ats", "uniform")
    ma = np.array([df[(df.method == "ats") & (df.seed == i)]["test_mean"].iloc[0] for i in range(3)])
    mb = np.array([df[(df.method == "uniform") & (df.seed == i)]["test_mean"].iloc[0] for i in range(3)])
    assert n == 3 and d == pytest.approx((ma - mb).mean()) and p == pytest.approx(stats.ttest_rel(ma, mb).pvalue)
    # secondary: over the same meta-test tasks, conditional on the trained models
    d, p, n = R.paired_tasks(df, "noisy", "1shot", "ats", "uniform")
    a = np.mean([pd.read_csv(results / "noisy/1shot" / f"ats-s{i}/test_scores.csv")["acc"] for i in range(3)], 0)
    b = np.mean([pd.read_csv(results / "noisy/1shot" / f"uniform-s{i}/test_scores.csv")["acc"] for i in range(3)], 0)
    assert n == 3 and d == pytest.approx((a - b).mean()) and p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert d > 0.02 and p < 0.01
    lo, hi = R.boot_ci(df, "noisy", "1shot", "ats", "uniform")
    assert lo < d < hi
    _, _, n2 = R.paired(df, "noisy", "1shot", "ats", "spl")
    assert n2 == 2                                                    # only the seeds both methods ran


def test_a_variant_from_its_own_cell_is_paired_over_seeds_with_the_methods_of_another(results):
    from atslib.study import reproduction as R
    df = R.load_results(results)
    moved = R.as_method(df, "noisy", "1shot", "spl", into="1shot", name="spl-variant")
    assert (df.method == "spl").sum() == 2 and not (moved.method == "spl").any()       # df is not changed
    assert (moved.method == "spl-variant").sum() == 2
    assert R.paired(moved, "noisy", "1shot", "ats", "spl-variant") == R.paired(df, "noisy", "1shot", "ats", "spl")
    # from a cell of its own (same grid): the relabelled runs join the other cell's seeds
    df2 = df.copy()
    df2.loc[df2.method == "focal", "cell"] = "1shot-focal"
    assert R.runs(df2, "noisy", "1shot", "focal").empty
    joined = R.as_method(df2, "noisy", "1shot-focal", "focal", into="1shot", name="focal")
    assert R.paired(joined, "noisy", "1shot", "focal", "uniform") == R.paired(df, "noisy", "1shot", "focal", "uniform")


def test_tables_and_claims(results):
    from atslib.study import reproduction as R
    df = R.load_results(results)
    t = R.wide_table(df, {"1-shot": ("noisy", "1shot"), "5-shot": ("noisy", "5shot")})
    assert list(t["method"]) == ["uniform", "spl", "focal", "ats"]
    assert (t["5-shot"] == "–").all() and t.loc[1, "1-shot"].endswith("(n=2)")
    assert not t.loc[0, "1-shot"].endswith(")")                                 # uniform: 3 seeds
    t_n = R.wide_table(df, {"1-shot": ("noisy", "1shot")}, show_n=True)
    assert t_n.loc[0, "1-shot"].endswith("(n=3)") and t_n.loc[1, "1-shot"].endswith("(n=2)")
    v = R.versus(df, {"1-shot": ("noisy", "1shot"), "5-shot": ("noisy", "5shot")}, ("uniform", "spl", "gcp"))
    assert list(v["ATS −"]) == ["uniform", "spl"]                              # no gcp runs, no 5-shot runs
    from atslib.metrics import holm
    raw = [R.paired(df, "noisy", "1shot", "ats", m) for m in v["ATS −"]]
    for (_, r), (d, p, n), ph in zip(v.iterrows(), raw, holm([x[1] for x in raw])):
        assert r["seeds"] == n and r["points"] == f"{d * 100:+.2f}" and r["p (Holm)"] == f"{ph:.2g}"
        # the verdict rests on the Holm-adjusted p of the table's family
        assert r["verdict at 0.01"] == ("no difference shown" if ph >= 0.01 else "ATS better" if d > 0 else "ATS worse")
    assert R.versus(df, {"5-shot": ("noisy", "5shot")}, ("uniform",)).empty
    row = R.bns_row(df, {"1-shot": ("noisy", "1shot")})
    assert row["1-shot"].endswith("[uniform]")
    from atslib.study import claims as C
    cl = C.claims(df).set_index("claim")
    first = cl.loc["ATS beats every baseline under noise"]
    assert first["verdict"] == "pending"          # 5-shot, drug and the other baselines missing
    assert "vs BNS [uniform]" in first["ours"]
    assert (cl.drop(index="ATS beats every baseline under noise")["verdict"] == "pending").all()
    h = R.histories(df, "noisy", "1shot", ("uniform", "ats"))
    assert h["ats"]["noisy_mass"].iloc[-1] == pytest.approx(0.2) and len(h["uniform"]) == 20


@pytest.mark.parametrize("gain_08, seed_sd, verdict", [(0.004, 0.03, "does not hold"), (0.05, 0.002, "holds")])
def test_noise_ratio_claim_needs_a_significant_gain_not_just_a_rising_trend(tmp_path, gain_08, seed_sd, verdict):
    from atslib.study import claims as C
    from atslib.study import reproduction as R
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.7, 100)
    cells = {}
    spread = seed_sd * np.array([1.0, -1.0, 1.0, -1.0])                                # mean 0 over seeds
    for r, gain in zip(("0.2", "0.4", "0.6", "0.8"), (0.001, 0.002, 0.003, gain_08)):   # a rising trend
        offs = rng.normal(0, 0.02, 4)                                                   # each seed's start
        cells[("noise-ratio", f"r{r}")] = {"uniform": (0.5, [base + o for o in offs]),
                                           "ats": (0.5, [base + gain + o + e for o, e in zip(offs, spread)])}
    fake_results(tmp_path, cells)
    row = C.claims(R.load_results(tmp_path)).set_index("claim").loc["the gain over uniform is larger at high noise"]
    assert "slope +" in row["ours"] and row["verdict"] == verdict


def test_the_decisive_cells_count_in_the_first_claim(tmp_path):
    from atslib.study import claims as C
    from atslib.study import reproduction as R
    rng = np.random.default_rng(2)
    base = rng.uniform(0.3, 0.7, 100)
    offs = lambda: rng.normal(0, 0.002, 5)  # noqa: E731
    fake_results(tmp_path, {("decisive", "1shot"): {"uniform": (0.5, [base + o for o in offs()]),
                                                     "spl": (0.55, [base + 0.01 + o for o in offs()]),
                                                     "ats": (0.6, [base + 0.05 + o for o in offs()])}})
    row = C.claims(R.load_results(tmp_path)).set_index("claim").loc["ATS beats every baseline under noise"]
    assert re.search(r"decisive 1-shot 1000: vs uniform \+(4\.[89]|5\.[0-2])\d pts .*vs BNS \[spl\] \+(3\.[89]|4\.[0-2])", row["ours"])
    assert row["verdict"] == "pending"            # the 150-step cells, the drug cell and 5-shot have not run


def test_factor_separation_and_trend():
    from atslib.study import reproduction as R
    rng = np.random.default_rng(1)
    rows = []
    for step in range(10):
        noisy = np.arange(10) < 6
        rows.append(pd.DataFrame({"step": step, "seed": 0, "noisy": noisy, "prob": 0.1,
                                  "loss": rng.normal(0, 1, 10) + 3 * noisy, "sim_cos": rng.normal(0, 1, 10) - 3 * noisy}))
    sep = R.factor_separation(pd.concat(rows))
    assert sep["auc_loss"] > 0.9 and sep["auc_low_sim"] > 0.9
    assert R.trend([1, 2, 3], [2, 4, 6]) == pytest.approx(2.0)
    assert np.isnan(R.trend([1], [1]))
    json.dumps(sep)


def test_update_block_rewrites_only_between_the_markers(tmp_path):
    from atslib.study import claims as R
    doc = tmp_path / "R.md"
    doc.write_text(f"intro\n{R.START}\nold numbers\n{R.END}\noutro\n")
    progress = pd.DataFrame({"grid": ["noisy"], "runs": [4], "done": [3], "pending": [1], "CPU hours": [0.5]}
                            ).set_index("grid")
    text = R.report({"T": pd.DataFrame({"a": [1]})}, progress)
    assert "**3 of 4**" in text and "### T" in text
    assert R.update_block(doc, text)
    new = doc.read_text()
    assert new.startswith("intro\n") and new.endswith(f"{R.END}\noutro\n") and "old numbers" not in new
    assert R.update_block(doc, text) and doc.read_text() == new                 # idempotent
    plain = tmp_path / "P.md"
    plain.write_text("no markers")
    assert not R.update_block(plain, text) and plain.read_text() == "no markers"


def test_drug_claim_pairs_ats_with_rank_sim_loss_from_the_ablation_cell(tmp_path):
    """The molecules grid has no rank-sim-loss; the drug claim takes it from ablations/drug-eta4."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0.0, 0.3, 100)
    ats = [base + 0.01 + rng.normal(0, 0.02, 100) for _ in range(3)]
    fake_results(tmp_path, {
        ("molecules", "eta4"): {"uniform": (0.1, [base + rng.normal(0, 0.02, 100) for _ in range(3)]),
                                "ats": (0.2, ats)},
        ("ablations", "drug-eta4"): {"ats": (0.2, ats), "rank-sim-loss": (0.3, [a + 0.02 + rng.normal(0, 0.005, 100) for a in ats])}})
    from atslib.study import claims as C
    from atslib.study import reproduction as R
    first = C.claims(R.load_results(tmp_path)).set_index("claim").loc["ATS beats every baseline under noise"]
    drug = first["ours"].split("drug η=4:")[1]
    assert re.search(r"vs rank-sim-loss -0\.0(19|20|21) \(p=", drug) and "nan" not in drug
    # the significance table takes the same detour when told to, and leaves it empty otherwise
    df = R.load_results(tmp_path)
    setting = {"drug η=4": ("molecules", "eta4")}
    with_rank = R.significance(df, setting, C.RANK_CELL).iloc[0]
    assert with_rank["ATS-rank-sim-loss"] == pytest.approx(-0.02, abs=0.002) and with_rank["p seeds (rank-sim-loss)"] < 0.01
    assert with_rank["p tasks, cond. (rank-sim-loss)"] < 1e-6
    assert with_rank["CI lo (rank-sim-loss)"] < -0.015 and with_rank["CI hi (rank-sim-loss)"] < 0
    assert with_rank["ATS-uniform"] == pytest.approx(0.01, abs=0.01)
    assert np.isnan(R.significance(df, setting).iloc[0]["ATS-rank-sim-loss"])


def _study(rng, n_seeds, n_tasks=600, seed_sd=0.01, task_sd=0.15, effect=0.0):
    """Two methods' per-task scores (seeds, tasks) with a training effect per seed and task noise."""
    task = rng.normal(0.5, task_sd, n_tasks)
    a = np.stack([task + rng.normal(0, seed_sd) + effect + rng.normal(0, 0.03, n_tasks) for _ in range(n_seeds)])
    b = np.stack([task + rng.normal(0, seed_sd) + rng.normal(0, 0.03, n_tasks) for _ in range(n_seeds)])
    return a, b


def test_null_two_samplers_uniform_in_distribution_are_not_significant_over_seeds():
    """The seed-level test holds its level when training variance exists; the over-task test does not."""
    from atslib.metrics import hierarchical_bootstrap_ci, paired_t, seed_paired_t
    rng = np.random.default_rng(0)
    n_sim, seed_level, task_level, covered = 300, 0, 0, 0
    for i in range(n_sim):
        a, b = _study(rng, 5)
        seed_level += seed_paired_t(a.mean(1), b.mean(1))[1] < 0.01
        task_level += paired_t(a.mean(0), b.mean(0))[1] < 0.01
        if i < 40:
            lo, hi = hierarchical_bootstrap_ci(a, b, n_boot=300, seed=i)
            covered += lo <= 0 <= hi
    assert seed_level / n_sim <= 0.03                 # nominal 0.01
    assert task_level / n_sim > 0.3                   # blind to training variance: rejects a true null often
    assert covered >= 34                              # ~95% coverage of the true difference 0 (40 trials)


def test_seed_level_test_detects_a_real_difference_and_power_is_consistent():
    from atslib.metrics import detectable_difference, seed_paired_t
    rng = np.random.default_rng(1)
    mde = detectable_difference(0.01 * np.sqrt(2), 5)  # sd of a seed-level difference of two runs
    hits = sum(seed_paired_t(*(x.mean(1) for x in _study(rng, 5, effect=mde)))[1] < 0.01 for _ in range(300))
    assert 0.7 <= hits / 300 <= 0.92                  # power 0.8 at the detectable difference
    assert detectable_difference(0.01, 10) < detectable_difference(0.01, 5) < detectable_difference(0.01, 3)
    with pytest.raises(ValueError, match="shapes"):
        seed_paired_t([1.0, 2.0], [1.0])


def test_committed_null_check_random_phi_vs_uniform():
    """ats-random-phi samples uniformly in practice (entropy ~ log 10): over tasks it looked
    'significant' against uniform; over seeds it is not."""
    from atslib.study import reproduction as R
    df = R.load_results(ROOT / "results")
    u = df[(df.grid == "noisy") & (df.cell == "1shot") & (df.method == "uniform")]
    r = df[(df.grid == "ablations") & (df.cell == "1shot") & (df.method == "ats-random-phi")]
    if u.empty or r.empty:
        pytest.skip("committed runs not present")
    both = pd.concat([u, r]).assign(grid="null", cell="1shot")
    d, p_seeds, n = R.paired(both, "null", "1shot", "ats-random-phi", "uniform")
    _, p_tasks, _ = R.paired_tasks(both, "null", "1shot", "ats-random-phi", "uniform")
    assert n == 3 and p_tasks < 1e-4 and p_seeds > 0.01


def test_start_candidate_applied_exactly_to_runs_that_predate_it():
    """Committed noisy runs: a run whose best validation did not beat its clean-pretrained start
    keeps the start, whose validation and test are those of the --init run (same fixed tasks)."""
    from atslib.study import reproduction as R
    root = ROOT / "results"
    df, old = R.load_results(root), R.load_results(root, start_candidate=False)
    if df.empty:
        pytest.skip("committed runs not present")
    kept = df[df.kept_start]
    assert len(kept) > 0 and (kept.best_step == 0).all()
    for _, r in kept.iterrows():
        start = json.loads((Path(r.scores) / "summary.json").read_text())
        before = old[old.dir == r.dir].iloc[0]
        assert before.best_val <= start["best_val"] == r.best_val and r.test_mean == start["test_mean"]
        assert R.task_scores(r.scores).mean() == pytest.approx(r.test_mean, abs=1e-6)
    own = [d for d in df.dir if "validate_start" in json.loads((Path(d) / "config.json").read_text())["config"]]
    rest = df[~df.kept_start & ~df.dir.isin(own)].set_index("dir")
    same = old.set_index("dir").loc[rest.index]
    assert (rest.test_mean == same.test_mean).all() and (rest.best_val == same.best_val).all()


def test_a_run_compares_its_checkpoints_with_its_own_starts_score():
    """Runs that validated their start: the start's score is their --init run's best validation
    (the same model on the same tasks), and a trained checkpoint is kept only if some validation
    beat it. Committed runs that a shared per-process score misled (fixed 2026-12-04) are
    corrected: the one whose checkpoint its start beats keeps its start, with the start's test."""
    import csv

    from atslib.store import START_VAL_KEYS
    from atslib.study import reproduction as R
    root = ROOT / "results"
    df, raw = R.load_results(root), R.load_results(root, start_candidate=False).set_index("dir")
    if df.empty:
        pytest.skip("committed runs not present")
    checked = corrected = 0
    for _, r in df.iterrows():
        meta = json.loads((Path(r.dir) / "config.json").read_text())
        cfg = meta["config"]
        if not cfg.get("init") or not cfg.get("validate_start"):
            continue
        init = ROOT / cfg["init"]
        icfg = json.loads((init / "config.json").read_text())["config"]
        if any(icfg.get(k) != cfg.get(k) for k in START_VAL_KEYS):
            continue
        start = json.loads((init / "summary.json").read_text())
        vals = [float(h["val_acc"]) for h in csv.DictReader(open(Path(r.dir) / "history.csv")) if h.get("val_acc")]
        assert r.start_val == start["best_val"]
        kept = not (max(vals, default=-1.0) > start["best_val"])
        assert (r.best_step == 0) == kept, r.dir
        if kept:
            assert r.best_val == start["best_val"]
        if r.kept_start:                            # corrected to its start after the fact
            assert raw.loc[r.dir, "best_step"] > 0 and r.test_mean == start["test_mean"]
            corrected += 1
        else:
            assert r.test_mean == raw.loc[r.dir, "test_mean"]
        checked += 1
    assert checked > 100 and corrected >= 1


def test_auc_equals_the_mann_whitney_statistic():
    """AUC = U / (n_pos n_neg), ties counted 1/2 (scipy's Mann-Whitney U of the positives)."""
    from scipy.stats import mannwhitneyu

    from atslib.metrics import auc
    rng = np.random.default_rng(4)
    for _ in range(20):
        score = rng.integers(0, 6, 40).astype(float)          # many ties
        pos = rng.random(40) < 0.4
        if pos.all() or not pos.any():
            continue
        u = mannwhitneyu(score[pos], score[~pos]).statistic
        assert auc(score, pos) == pytest.approx(u / (pos.sum() * (~pos).sum()), abs=1e-12)
    assert np.isnan(auc([1.0, 2.0], [True, True]))


def test_report_command_writes_only_the_block_from_saved_tables(tmp_path):
    """REPRODUCTION.md is written by ``python -m atslib report`` alone, from the saved tables."""
    from atslib.__main__ import main
    from atslib.study.claims import END, REPORT_SECTIONS, START
    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame({"grid": ["noisy"], "runs": [3], "done": [2], "failed": [0], "pending": [1], "CPU hours": [0.5],
                  "GPU hours": [0.0]}).to_csv(tables / "07_progress.csv", index=False)
    title, name = REPORT_SECTIONS[0]
    pd.DataFrame({"claim": ["one"], "verdict": ["holds"]}).to_csv(tables / f"{name}.csv", index=False)
    doc = tmp_path / "doc.md"
    doc.write_text(f"intro\n{START}\nstale block\n{END}\noutro\n")
    assert main(["report", "--out", str(doc), "--tables", str(tables)]) == 0
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "stale block" not in text
    assert f"### {title}" in text and "holds" in text and "Runs finished: **2 of 3**" in text
    plain = tmp_path / "plain.md"
    plain.write_text("no markers")
    assert main(["report", "--out", str(plain), "--tables", str(tables)]) == 2 and plain.read_text() == "no markers"
    assert main(["report", "--out", str(doc), "--tables", str(tmp_path / "none")]) == 2


def test_report_writes_the_readme_findings_table_from_the_headline_table(tmp_path):
    from atslib.__main__ import main
    from atslib.study.claims import END, FINDINGS, START
    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame({"grid": ["noisy"], "runs": [3], "done": [3], "failed": [0], "pending": [0], "CPU hours": [0.5],
                  "GPU hours": [0.0]}).to_csv(tables / "07_progress.csv", index=False)
    pd.DataFrame({"question": ["Where does ATS win?"], "answer": ["here"], "the numbers (committed runs)": ["+4.58"]}
                 ).to_csv(tables / "07_headline.csv", index=False)
    doc, readme = tmp_path / "doc.md", tmp_path / "README.md"
    doc.write_text(f"{START}\n{END}\n")
    readme.write_text(f"# front\n{FINDINGS[0]}\nstale\n{FINDINGS[1]}\nrest\n")
    before = (ROOT / "README.md").read_text()
    assert main(["report", "--out", str(doc), "--tables", str(tables)]) == 0      # another --out: no README
    assert "stale" in readme.read_text() and (ROOT / "README.md").read_text() == before
    assert main(["report", "--out", str(doc), "--tables", str(tables), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "stale" not in text and "| Where does ATS win? | here" in text and text.endswith("rest\n")


def test_holm_against_a_hand_computation():
    from atslib.metrics import holm
    # sorted 0.01, 0.02, 0.04, 0.5 of m = 4: 4*0.01, 3*0.02, max(0.06, 2*0.04), max(0.08, 0.5)
    got = holm([0.04, 0.5, 0.01, float("nan"), 0.02])
    assert np.allclose(got[[2, 4, 0, 1]], [0.04, 0.06, 0.08, 0.5]) and np.isnan(got[3])
    assert np.allclose(holm([0.9, 0.8]), [1.0, 1.0])              # 2 * 0.8 capped at 1, and monotone
    assert (holm([0.3, 0.6, 0.7]) <= 1).all() and holm([]).size == 0


def test_a_cell_whose_pairs_end_at_their_start_is_not_testable(tmp_path):
    from atslib.study import reproduction as R
    rng = np.random.default_rng(3)
    base = rng.uniform(0.3, 0.7, 100)
    fake_results(tmp_path, {("noisy", "1shot"): {"uniform": (0.5, [base] * 4), "ats": (0.5, [base + 0.01] * 4)}})
    df = R.load_results(tmp_path)
    assert R.untestable(df, "noisy", "1shot", "ats", "uniform") is None
    df.loc[df.seed < 3, "kept_start"] = True              # 3 of 4 pairs are their start on both sides
    assert R.ties_at_start(df, "noisy", "1shot", "ats", "uniform") == (3, 4)
    assert R.untestable(df, "noisy", "1shot", "ats", "uniform") == "3 of 4 seed pairs end at their start"


def test_budget_primary_takes_the_fixed_rule_best_on_validation(tmp_path):
    from atslib.study import reproduction as R
    rng = np.random.default_rng(4)
    base = rng.uniform(0.3, 0.7, 100)
    n = R.BUDGET_SEEDS                         # 30: the plan's 20, extended by its interim look
    offs = rng.normal(0, 0.003, n)
    cell = {"uniform": (0.40, [base + o for o in offs]),
            "rank-sim-loss": (0.45, [base + 0.01 + o for o in offs]),          # best validation
            "rank-sim+loss": (0.42, [base + 0.03 + o for o in offs]),          # best test: never chosen on test
            "ats": (0.44, [base + 0.02 + o + e for o, e in zip(offs, rng.normal(0, 0.002, n))])}
    fake_results(tmp_path, {("budget-binding", "b16"): cell})
    df = R.load_results(tmp_path)
    r = R.budget_primary(df)
    assert r["complete"] and r["seeds"] == n and r["best_fixed"] == "rank-sim-loss"
    assert r["diff"] == pytest.approx(0.01, abs=0.002) and r["p"] < 0.01 and r["ci"][0] < r["diff"] < r["ci"][1]
    assert not R.budget_primary(df[df.seed < 20])["complete"]
    assert set(R.budget_primary(df[df.seed < 29])) == {"seeds", "complete"}   # blind: no interim difference
    t = R.pairwise(df, "budget-binding", "b16", ("uniform", "rank-sim-loss", "rank-sim+loss", "ats"))
    ok = t["p"].notna()                       # differences with no spread over seeds have no t-test
    assert len(t) == 6 and ok.sum() >= 3 and (t.loc[ok, "p (Holm)"] >= t.loc[ok, "p"]).all()


def test_equivalence_and_one_sided_tests_are_scipys():
    """claims.tost (two one-sided tests) and claims.below against scipy's one-sided t-tests."""
    from atslib.study import claims as C
    for d in ([0.1, -0.3, 0.25, 0.05, -0.1], [1.5, 0.4, 2.2, 0.9], [-2.0, -1.1, -0.2]):
        d = np.array(d)
        ref = max(stats.ttest_1samp(d, -1.0, alternative="greater").pvalue,
                  stats.ttest_1samp(d, 1.0, alternative="less").pvalue)
        assert C.tost(d, 1.0) == pytest.approx(ref, rel=1e-12)
        assert C.below(d, 1.37) == pytest.approx(stats.ttest_1samp(d, 1.37, alternative="less").pvalue, rel=1e-12)
    assert C.tost([0.1, -0.3, 0.25, 0.05, -0.1], 1.0) < 0.01 < C.tost([1.5, 0.4, 2.2, 0.9], 1.0)
    # a seed without a difference (NaN) is left out, never read as a rejection
    assert np.isnan(C.below([0.1, np.nan], 1.37)) and np.isnan(C.tost([0.1, np.nan], 1.0))
    assert C.below([0.1, 0.3, np.nan], 1.37) == pytest.approx(stats.ttest_1samp([0.1, 0.3], 1.37, alternative="less").pvalue)


def test_claim_one_adjusts_each_distinct_test_once():
    """Claim 1's Holm family: ATS against uniform, the best non-adaptive baseline and the ranking per
    noisy setting; where the best baseline is uniform that test is the same one and counts once."""
    from atslib.metrics import holm
    from atslib.study import claims as C
    from atslib.study import reproduction as R
    df = R.load_results(ROOT / "results")
    found, _ = C.claim1_family(df)
    if not found:
        pytest.skip("no committed runs")
    tests = {}
    for f in found:
        tests.update({(f["label"], "uniform"): f["pu"], (f["label"], f["b"]): f["pb"], (f["label"], "rank"): f["pr"]})
    ref = dict(zip(tests, holm(list(tests.values()))))
    assert len(tests) < 3 * len(found) or all(f["b"] != "uniform" for f in found)
    for f in found:
        assert f["hu"] == ref[(f["label"], "uniform")] and f["hr"] == ref[(f["label"], "rank")]
        assert f["hb"] == ref[(f["label"], f["b"])]
        if f["b"] == "uniform":
            assert f["hb"] == f["hu"] and f["pb"] == f["pu"]


def _pools(rng, seeds, slope_of_step, steps=80, size=10):
    """Pool records whose probability follows loss with a sign that depends on the step."""
    rows = []
    for s in seeds:
        for t in range(0, steps, 4):
            loss = rng.normal(size=size)
            logit = slope_of_step(t) * loss + rng.normal(0, 0.3, size)
            p = np.exp(logit) / np.exp(logit).sum()
            rows += [{"seed": s, "step": t, "task": i, "prob": p[i], "loss": loss[i], "sim_cos": rng.normal(),
                      "noisy": False} for i in range(size)]
    return pd.DataFrame(rows)


def test_preference_shift_tells_a_sign_change_from_a_steady_preference():
    from atslib.study import reproduction as R
    rng = np.random.default_rng(5)
    turn = R.preference_shift(_pools(rng, range(6), lambda t: 1.0 if t < 40 else -1.0))
    assert turn["changes_sign"] and turn["seeds"] == 6 and turn["seeds_flipped"] == 6
    assert turn["first"] > 0.5 and turn["last"] < -0.5 and turn["p_first"] < 0.01 and turn["p_last"] < 0.01
    steady = R.preference_shift(_pools(rng, range(6), lambda t: 1.0))
    assert not steady["changes_sign"] and steady["seeds_flipped"] == 0 and steady["first"] > 0 and steady["last"] > 0
    fading = R.preference_shift(_pools(rng, range(6), lambda t: 1.0 if t < 40 else 0.0))   # last part at chance
    assert not fading["changes_sign"] and fading["p_first"] < 0.01 and fading["p_shift"] < 0.01
    one = R.preference_shift(_pools(rng, [0], lambda t: 1.0))          # one seed: no test
    assert not one["changes_sign"] and np.isnan(one["p_first"])
    assert R.preference_shift(pd.DataFrame())["seeds"] == 0


@pytest.mark.parametrize("gain, sd, verdict", [(0.02, 0.003, "holds"), (-0.02, 0.003, "does not hold"),
                                               (0.001, 0.002, "does not hold"),        # a 1-point gain ruled out
                                               (0.004, 0.03, "inconclusive at this scale")])
def test_budget_claim_reads_the_primary_test_and_the_gain_it_was_powered_for(tmp_path, gain, sd, verdict):
    from atslib.study import claims as C
    from atslib.study import reproduction as R
    rng = np.random.default_rng(6)
    base = rng.uniform(0.3, 0.7, 100)
    n = R.BUDGET_SEEDS
    offs = rng.normal(0, 0.01, n)
    e = rng.normal(0, 1, n)
    e = sd * (e - e.mean()) / e.std(ddof=1)                 # ATS − uniform: exactly `gain` on average, sd `sd`
    cell = {"uniform": (0.45, [base + o for o in offs]),   # the best fixed rule on validation
            "rank-sim-loss": (0.40, [base - 0.01 + o for o in offs]),
            "rank-sim+loss": (0.41, [base - 0.02 + o for o in offs]),
            "ats": (0.44, [base + gain + o + x for o, x in zip(offs, e)])}
    fake_results(tmp_path, {("budget-binding", "b16"): cell})
    row = C.claims(R.load_results(tmp_path)).set_index("claim")
    row = row.loc[[c for c in row.index if c.startswith("with a binding class budget")][0]]
    assert row["verdict"] == verdict and "ATS − uniform (best fixed rule on validation)" in row["ours"]
    assert ("is ruled out" in row["ours"]) == (gain == 0.001)


def test_ablation_source_reads_the_decisive_runs_only_once_every_ablation_has_its_seeds(tmp_path):
    from atslib.study import reproduction as R
    rng = np.random.default_rng(7)
    base = rng.uniform(0.3, 0.7, 50)
    main = {m: (0.5, [base] * 10) for m in ("uniform", "ats", "rank-sim-loss")}          # seeds 0-9
    abl = {m: (0.5, [base] * 5) for m in ("ats-loss-only", "ats-sim-only", "ats-reweight")}
    fake_results(tmp_path, {("decisive", "1shot"): {**main, **abl, "ats-random-phi": (0.5, [base] * 4)}})
    df = R.load_results(tmp_path)
    assert R.ablation_source(df, 1)[0] == "short"                                      # one seed short
    with pytest.raises(ValueError, match="ats-random-phi 4"):
        R.ablation_source(df, 1, "decisive")
    with pytest.raises(ValueError, match="source 'long': use one of auto, decisive, short"):
        R.ablation_source(df, 1, "long")
    fake_results(tmp_path / "b", {("decisive", "1shot"): {**main, **abl, "ats-random-phi": (0.5, [base] * 5)}})
    full = R.load_results(tmp_path / "b")
    kind, cut = R.ablation_source(full, 1)
    assert kind == "decisive" and sorted(cut.seed.unique()) == [0, 1, 2, 3, 4] and len(cut) == 7 * 5
    assert R.ablation_source(full, 5)[0] == "short" and R.ablation_source(full, 1, "short")[1] is full


@pytest.mark.parametrize("gain, verdict", [(0.03, "holds"), (0.0, "inconclusive at this scale"), (-0.03, "does not hold")])
def test_ablation_claim_reads_the_1000_step_cell_only_when_every_ablation_is_in(tmp_path, gain, verdict):
    from atslib.study import claims as C
    from atslib.study import reproduction as R
    rng = np.random.default_rng(8)
    base = rng.uniform(0.3, 0.7, 60)
    offs = rng.normal(0, 0.01, 5)
    noise = lambda: rng.normal(0, 0.004 if gain else 0.02, 5)  # noqa: E731
    cell = {m: (0.5, [base + o + e for o, e in zip(offs, noise())])
            for m in ("uniform", "rank-sim-loss", "ats-loss-only", "ats-sim-only", "ats-reweight", "ats-random-phi")}
    cell["ats"] = (0.5, [base + gain + o + e for o, e in zip(offs, noise())])
    fake_results(tmp_path, {("decisive", "1shot"): cell})
    row = C.claims(R.load_results(tmp_path)).set_index("claim").loc[
        "both factors are needed (each single-factor ablation is below ATS)"]
    assert row["verdict"] == verdict and row["ours"].startswith("decisive 1-shot, 1000 steps")
    del cell["ats-random-phi"]                                # one ablation missing: pending, as in notebook 06
    fake_results(tmp_path / "b", {("decisive", "1shot"): cell})
    row = C.claims(R.load_results(tmp_path / "b")).set_index("claim").loc[
        "both factors are needed (each single-factor ablation is below ATS)"]
    assert row["verdict"] == "pending"
