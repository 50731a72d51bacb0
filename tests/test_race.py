"""The noise-ratio race at toy sizes: its model (atslib.display.race_model: plain data, tested without
widgets or matplotlib), its view (atslib.display.race) and LiveRun's progress reports."""
import shutil
import subprocess
import sys
import time

import pytest
from helpers import tiny_config

SMALL = dict(n_val_tasks=4, n_test_tasks=6, eval_every=1)


@pytest.fixture
def init(tmp_path):
    """A copy of the clean-pretrained start: a run from it may cache its start validation next to it."""
    from atslib.display import race_model
    d = tmp_path / "init"
    shutil.copytree(race_model.INIT, d)
    return str(d)


def test_race_model_imports_no_widgets_or_matplotlib():
    code = ("import sys, atslib.display.race_model; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'ipywidgets', 'IPython')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_two_step_race_of_two_methods_records_every_step(init):
    from atslib.display import race_model as M
    r = M.Race(0.6, 0.8, steps=2, methods=("uniform", "ats"), init=init, **SMALL).start()
    assert r.wait(120) and not r.errors, r.errors
    snap = r.snapshot()
    assert set(snap["methods"]) == {"uniform", "ats"} and snap["steps"] == 2 and snap["noise_ratio"] == 0.6
    for m, d in snap["methods"].items():
        h = d["history"]
        assert list(h["step"]) == [0, 1] and {"noisy_mass", "val_acc"} <= set(h.columns), (m, h.columns)
        assert h["noisy_mass"].between(0, 1).all()
        assert d["state"] == "done" and d["step"] == 2 and d["summary"]["n_test_tasks"] == 6
    pool = snap["methods"]["ats"]["pool"]   # ATS's current pool, for the scatter
    assert len(pool) == 10 and {"loss", "sim_cos", "prob", "noisy"} <= set(pool.columns)
    f = M.finals(snap)
    assert list(f["method"]) == ["uniform", "ats"] and f["test_mean"].between(0, 1).all() and (f["steps"] == 2).all()
    assert "±" in M.status_line(snap)


def test_race_model_stop_ends_racers_without_a_test(init):
    from atslib.display import race_model as M
    r = M.Race(0.6, 0.8, steps=500, methods=("uniform", "ats"), init=init, **SMALL).start()
    time.sleep(2)
    r.stop()
    assert r.wait(30) and r.finished
    snap = r.snapshot()
    assert all(d["state"] == "stopped" and d["summary"] is None and d["step"] < 500 for d in snap["methods"].values())
    assert M.finals(snap)["test_mean"].isna().all()
    assert "stopped" in M.status_line(snap) and r.stopped_at().startswith("uniform ")


def test_noise_ratio_grid_reads_the_committed_sweep():
    from atslib.display import race_model as M
    g = M.NoiseRatioGrid()
    assert g.ratios == sorted(g.ratios) and 0.6 in g.ratios
    at = g.at(0.6).set_index("method")
    assert {"uniform", "ats", "BNS"} <= set(at.index)
    assert at.loc["uniform", "vs_uniform"] == 0 and 0 <= at.loc["ats", "clean_share"] <= 1
    # uniform trains on clean tasks about as often as the pool holds them: 1 - noise ratio
    u = g.table[g.table.method == "uniform"]
    assert (abs(u["clean_share"] - (1 - u["ratio"])) < 0.1).all()
    pool = g.pool(0.6)
    assert pool["step"].nunique() == 1 and pool["seed"].nunique() == 1 and len(pool) == 10


def test_race_finishes_with_test_scores_and_draws(init):
    from atslib.display import race
    r = race.Race(0.6, 0.8, steps=2, methods=("uniform", "ats"), init=init, **SMALL).start()
    assert r.wait(120) and not r.errors, r.errors
    snap = r.snapshot()
    for m in ("uniform", "ats"):
        d = snap["methods"][m]
        assert d["state"] == "done" and d["summary"]["steps_done"] == 2 and d["summary"]["n_test_tasks"] == 6
    assert snap["methods"]["ats"]["pool"] is not None   # ATS's current pool for the scatter
    assert r.cfgs["ats"].init and r.cfgs["ats"].queries == r.cfgs["uniform"].queries == 5
    race.race_figure(snap)
    assert "±" in race.status_line(snap)


def test_race_stop_ends_every_racer_quickly(init):
    from atslib.display import race
    r = race.Race(0.6, 0.8, steps=500, methods=("uniform", "ats"), init=init, **SMALL).start()
    time.sleep(3)
    t0 = time.monotonic()
    r.stop()
    assert r.wait(30)
    assert time.monotonic() - t0 < 15
    snap = r.snapshot()
    assert all(d["state"] == "stopped" and d["summary"] is None for d in snap["methods"].values()), snap
    race.race_figure(snap)


def test_committed_race_loads():
    from atslib.display import race
    snap = race.load_race(race.RACE_DIR / "r0.6")
    assert set(snap["methods"]) == set(race.METHODS) and snap["noise_ratio"] == pytest.approx(0.6)
    assert all(d["summary"]["n_test_tasks"] == 600 for d in snap["methods"].values())


def test_live_run_reports_validation_and_test_without_changing_numbers():
    from atslib import meta_train
    from atslib.display.live import LiveRun
    cfg = tiny_config(steps=2, eval_every=1)
    seen = []
    live = LiveRun(cfg, on_phase=lambda *a: seen.append(a)).train()
    plain = meta_train(cfg)
    assert live.summary["test_mean"] == plain.summary["test_mean"]
    assert ("testing", cfg.n_test_tasks, cfg.n_test_tasks) in seen
    assert ("validating", cfg.n_val_tasks, cfg.n_val_tasks) in seen
    assert ("testing", 0, cfg.n_test_tasks) in seen
