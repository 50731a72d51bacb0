"""Every method trains a few steps; the scheduler learns to avoid noisy tasks on an easy case."""

import pandas as pd
import pytest
import torch
from helpers import tiny_config

from atslib import METHODS, meta_train
from atslib.config import SCHEDULED


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
        assert pools.groupby("step")["drawn"].sum().eq(2).all()       # every method updates on B = 2 tasks


def test_ats_reweight_updates_on_top_b_by_default_and_on_the_pool_as_an_option(tmp_path):
    from atslib.ats import ATSReweight
    from atslib.datasets import build_setup
    from atslib.step import State, step_inputs
    for mode, n in (("top", 2), ("all", 4)):
        cfg = tiny_config(method="ats-reweight", noise_ratio=0.5, reweight_update=mode)
        setup = build_setup(cfg)
        m = ATSReweight(cfg, setup)
        out = m.step(State(setup.model, torch.optim.Adam(setup.model.parameters()), m), step_inputs(setup, 0)[0])
        assert len(out.indices) == n and len(out.weights) == n and len(out.losses) == n
        assert torch.isclose(out.weights.sum(), torch.tensor(1.0))
        if mode == "top":   # the B largest weights, renormalised
            assert set(out.indices.tolist()) == set(torch.topk(out.probs, 2).indices.tolist())
            assert torch.allclose(out.weights, out.probs[out.indices] / out.probs[out.indices].sum())


def test_same_pool_stream_for_every_method():
    from atslib.datasets import build_setup
    from atslib.step import step_inputs
    (a, ta), (b, tb) = (step_inputs(build_setup(tiny_config(method=m, noise_ratio=0.5)), 3) for m in ("uniform", "ats"))
    assert (a.pool.x_s == b.pool.x_s).all() and (a.pool.y_s == b.pool.y_s).all()
    assert (ta.noisy == tb.noisy).all()


def test_no_method_can_read_the_noisy_mask(tmp_path):
    """Methods see a pool without the noisy mask, the task kinds and the clean labels; a method
    that reached for them would fail (every method runs in test_every_method_runs / the golden
    records), and the records still score against the truth."""
    from atslib.baselines import Uniform
    from atslib.datasets import build_setup
    from atslib.step import State, meta_step, step_inputs, update
    setup = build_setup(tiny_config(method="uniform", noise_ratio=0.5))
    x, truth = step_inputs(setup, 0)
    assert x.pool.noisy is None and x.pool.kind is None and x.pool.y_s_clean is None
    assert truth.noisy is not None and truth.x_s is None          # the truth carries no images

    class Peeking(Uniform):
        def step(self, state, x):
            clean = (~x.pool.noisy).nonzero().flatten()
            return update(state, x, x.pool[clean[:2]])

    opt = torch.optim.Adam(setup.model.parameters())
    with pytest.raises(TypeError):
        meta_step(setup, State(setup.model, opt, Peeking(setup.cfg, setup)), 0)
    rec, _ = meta_step(setup, State(setup.model, opt, Uniform(setup.cfg, setup)), 0)
    assert 0 <= rec["pool_noisy"] <= 1 and "noisy_mass" in rec


def test_ats_learns_to_avoid_noisy_tasks():
    """Easy case at the real model scale: 40 steps, pool 6, noise ratio 0.6 (flip 0.8).

    (At toy scale - 8 channels, 5 queries - a one-step look-ahead on a noisy task can lower the
    validation loss *more* than one on a clean task early in training, and REINFORCE then
    rightly learns to prefer noisy tasks; the reward is informative once the model is real.)
    """
    cfg = tiny_config(method="ats", noise_ratio=0.6, flip_prob=0.8, steps=40, pool_size=6, meta_batch=2,
                      val_tasks=4, queries=15, width=32, eval_every=1000, n_val_tasks=10, n_test_tasks=10,
                      checkpoint_every=1000)
    run = meta_train(cfg)      # (its cost is a benchmark's business, not a test's: make bench)
    assert run.summary["noise_auc"] > 0.8, run.summary


def test_shared_per_task_meta_gradients_equal_the_batched_meta_gradient():
    """The look-ahead and the real update reuse per-task meta-gradients; their mean must be the
    gradient of the mean query loss computed in one batched pass."""
    from helpers import tiny_config

    from atslib import maml
    from atslib.datasets import build_setup
    from atslib.step import TaskGrads, step_inputs
    cfg = tiny_config(method="ats", noise_ratio=0.5)
    setup = build_setup(cfg)
    pool = step_inputs(setup, 0)[0].pool
    grads = TaskGrads(setup.model, pool, cfg)
    idx = torch.tensor([0, 2, 3])
    assert not grads.has_any(idx)
    shared = grads.mean(idx)
    assert grads.has_any(torch.tensor([2])) and not grads.has_any(torch.tensor([1]))
    p = dict(setup.model.named_parameters())
    losses, _ = maml.task_losses(setup.model, p, pool[idx], cfg.inner_steps, cfg.inner_lr, cfg.inner,
                                 cfg.first_order)
    batched = torch.autograd.grad(losses.mean(), list(p.values()))
    for a, b in zip(shared, batched):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method,sign", [("rank-sim-loss", -1.0), ("rank-sim+loss", 1.0)])
def test_the_fixed_ranking_takes_the_top_b_of_its_sign(method, sign, tmp_path):
    from atslib.scheduler import standardize
    run = meta_train(tiny_config(method=method, noise_ratio=0.5), out=tmp_path / method)
    pools = run.pool_frame()
    assert len(pools)
    for _, p in pools.groupby("step"):
        want = standardize(torch.tensor(p["sim_cos"].values)) + sign * standardize(torch.tensor(p["loss"].values))
        assert torch.allclose(torch.tensor(p["score"].values), want.to(torch.float64), atol=1e-5)
        top = set(torch.topk(torch.tensor(p["score"].values), 2).indices.tolist())
        assert set(p["task"].values[p["drawn"].astype(bool).values]) == {int(p["task"].values[i]) for i in top}


def test_the_oracle_trains_only_on_clean_tasks_when_the_pool_has_enough(tmp_path):
    from atslib.registry import ORACLES, label
    assert ORACLES == ("oracle-clean",) and label("oracle-clean") == "oracle-clean (oracle)"
    cfg = tiny_config(method="oracle-clean", noise_ratio=0.5)
    h = pd.DataFrame(meta_train(cfg, out=tmp_path / "o").history)
    n_clean = ((1 - h["pool_noisy"]) * cfg.pool_size).round()
    enough = n_clean >= cfg.meta_batch
    assert enough.any() and (h.loc[enough, "clean_share"] == 1.0).all()
    assert (h.loc[~enough, "clean_share"] == n_clean[~enough] / cfg.meta_batch).all()
