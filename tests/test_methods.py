"""Every method trains a few steps; the scheduler learns to avoid noisy tasks on an easy case."""
import time

import pandas as pd
import pytest

from atslib import METHODS, meta_train
from atslib.config import SCHEDULED
from helpers import tiny_config


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs(method, tmp_path):
    cfg = tiny_config(method=method, noise_ratio=0.5)
    run = meta_train(cfg, out=tmp_path / method)
    s = run.summary
    assert s["steps_done"] == 4 and 0 <= s["test_mean"] <= 1 and s["n_test_tasks"] == 10
    h = pd.read_csv(tmp_path / method / "history.csv")
    assert len(h) == 4 and h["clean_share"].between(0, 1).all()
    if method in SCHEDULED:
        assert "noise_auc" in s and (tmp_path / method / "pool.csv.gz").is_file()
        pools = pd.read_csv(tmp_path / method / "pool.csv.gz")
        assert {"prob", "noisy", "loss", "sim_dot", "sim_cos", "drawn"} <= set(pools.columns)
        assert pools.groupby("step")["drawn"].sum().eq(4 if method == "ats-reweight" else 2).all()


def test_same_pool_stream_for_every_method():
    from atslib.context import StepContext
    from atslib.train import build_setup
    a = StepContext(build_setup(tiny_config(method="uniform", noise_ratio=0.5)), 3).pool
    b = StepContext(build_setup(tiny_config(method="ats", noise_ratio=0.5)), 3).pool
    assert (a.x_s == b.x_s).all() and (a.y_s == b.y_s).all() and (a.noisy == b.noisy).all()


def test_ats_learns_to_avoid_noisy_tasks():
    """Easy synthetic case: noisy tasks have random support labels (flip 1.0) at noise ratio 0.6."""
    cfg = tiny_config(method="ats", noise_ratio=0.6, flip_prob=1.0, steps=60, pool_size=8, meta_batch=2,
                      val_tasks=2, queries=5, eval_every=60, n_val_tasks=10, n_test_tasks=10,
                      checkpoint_every=1000, shots=1)
    t0 = time.time()
    run = meta_train(cfg)
    assert time.time() - t0 < 60
    assert run.summary["noise_auc"] > 0.8, run.summary
