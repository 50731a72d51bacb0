"""The noise-ratio race (atslib.display.race) and LiveRun's progress reports, at toy sizes."""
import shutil
import time

import pytest
from helpers import tiny_config

SMALL = dict(n_val_tasks=4, n_test_tasks=6, eval_every=1)


@pytest.fixture
def init(tmp_path):
    """A copy of the clean-pretrained start: a run from it may cache its start validation next to it."""
    from atslib.display import race
    d = tmp_path / "init"
    shutil.copytree(race.INIT, d)
    return str(d)


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
