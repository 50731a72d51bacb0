"""Every method trains a few steps; the scheduler learns to avoid noisy tasks on an easy case."""
import time

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
    from atslib.context import StepContext
    from atslib.datasets import build_setup
    for mode, n in (("top", 2), ("all", 4)):
        cfg = tiny_config(method="ats-reweight", noise_ratio=0.5, reweight_update=mode)
        setup = build_setup(cfg)
        sel = ATSReweight(cfg, setup).select(StepContext(setup, 0))
        assert len(sel.indices) == n and len(sel.weights) == n
        assert torch.isclose(sel.weights.sum(), torch.tensor(1.0))
        if mode == "top":   # the B largest weights, renormalised
            assert set(sel.indices.tolist()) == set(torch.topk(sel.probs, 2).indices.tolist())
            assert torch.allclose(sel.weights, sel.probs[sel.indices] / sel.probs[sel.indices].sum())


def test_same_pool_stream_for_every_method():
    from atslib.context import StepContext
    from atslib.datasets import build_setup
    a = StepContext(build_setup(tiny_config(method="uniform", noise_ratio=0.5)), 3)
    b = StepContext(build_setup(tiny_config(method="ats", noise_ratio=0.5)), 3)
    assert (a.pool.x_s == b.pool.x_s).all() and (a.pool.y_s == b.pool.y_s).all()
    assert (a.truth.noisy == b.truth.noisy).all()


def test_no_method_can_read_the_noisy_mask(tmp_path):
    """Methods see a pool without the noisy mask, the task kinds and the clean labels; a method
    that reached for them would fail (every method runs in test_every_method_runs / the golden
    records), and the records still score against the truth."""
    from atslib.baselines import Selection, Uniform
    from atslib.context import StepContext
    from atslib.datasets import build_setup
    from atslib.step import meta_step
    setup = build_setup(tiny_config(method="uniform", noise_ratio=0.5))
    ctx = StepContext(setup, 0)
    assert ctx.pool.noisy is None and ctx.pool.kind is None and ctx.pool.y_s_clean is None
    assert ctx.truth.noisy is not None and ctx.truth.x_s is None          # the truth carries no images

    class Peeking(Uniform):
        def select(self, ctx):
            clean = (~ctx.pool.noisy).nonzero().flatten()
            return Selection(clean[:2], torch.full((ctx.pool_size,), 0.1))

    opt = torch.optim.Adam(setup.model.parameters())
    with pytest.raises(TypeError):
        meta_step(setup, Peeking(setup.cfg, setup), opt, 0)
    rec, _ = meta_step(setup, Uniform(setup.cfg, setup), opt, 0)
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
    t0 = time.process_time()
    run = meta_train(cfg)
    assert time.process_time() - t0 < 60          # CPU seconds (wall time depends on the machine's load)
    assert run.summary["noise_auc"] > 0.8, run.summary


def test_shared_per_task_meta_gradients_equal_the_batched_meta_gradient():
    """The look-ahead and the real update reuse per-task meta-gradients; their mean must be the
    gradient of the mean query loss computed in one batched pass."""
    from helpers import tiny_config

    from atslib import maml
    from atslib.context import StepContext
    from atslib.datasets import build_setup
    cfg = tiny_config(method="ats", noise_ratio=0.5)
    setup = build_setup(cfg)
    ctx = StepContext(setup, 0)
    idx = torch.tensor([0, 2, 3])
    assert not ctx.has_task_grads(idx)
    shared = ctx.mean_task_grad(idx)
    assert ctx.has_task_grads(torch.tensor([2])) and not ctx.has_task_grads(torch.tensor([1]))
    p = dict(setup.model.named_parameters())
    losses, _ = maml.task_losses(setup.model, p, ctx.pool[idx], cfg.inner_steps, cfg.inner_lr, cfg.inner,
                                 cfg.first_order)
    batched = torch.autograd.grad(losses.mean(), list(p.values()))
    for a, b in zip(shared, batched):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
