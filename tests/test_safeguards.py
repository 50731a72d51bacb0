"""Numeric safeguards of the scheduler's training and the starting model as a checkpoint candidate.

The committed failure case: molecules, noise scale 6, ATS seed 1. With the look-ahead as a plain
SGD step (the options as they were) its validation loss overflows at step 18; with the bounded
look-ahead and winsorised advantages it trains on with finite, bounded rewards and a small
scheduler optimizer state.
"""
import dataclasses
import math

import pytest
import torch
from helpers import tiny_config

from atslib import Config, meta_train
from atslib.config import LEGACY, ConfigError
from atslib.guards import NonFiniteError
from atslib.scheduler import AdvantageBound

MOL_ETA6_S1 = Config(method="ats", dataset="molecules", noise_scale=6.0, seed=1, steps=24, eval_every=12,
                     lookahead_lr=0.01, checkpoint_every=100, n_val_tasks=20)


def test_the_committed_failure_case_fails_without_the_safeguards():
    with pytest.raises(NonFiniteError, match="step 18: reward is not finite"):
        meta_train(MOL_ETA6_S1.replace(**{k: v for k, v in LEGACY.items() if k != "validate_start"}))


def test_the_committed_failure_case_runs_past_step_18_with_bounded_rewards():
    run = meta_train(MOL_ETA6_S1)
    h = run.history_frame()
    assert run.step == 24 and "skipped" not in h
    assert h["reward"].map(math.isfinite).all()
    assert h["lookahead_norm"].max() > 1e3                        # the spike is there ...
    raw, adv = h["advantage_raw"].abs(), h["advantage"].abs()
    assert (adv <= raw + 1e-12).all() and (adv < raw - 1e-9).any()  # ... and some advantages were winsorised
    assert adv.max() < 1.0
    state = run.method.opt.state
    for s in state.values():                                      # phi's Adam moments stay finite and small
        assert torch.isfinite(s["exp_avg_sq"]).all() and float(s["exp_avg_sq"].max()) < 1.0
    for prm in run.method.net.parameters():
        assert torch.isfinite(prm).all()


def test_advantage_bound_winsorises_on_a_running_scale_and_rejects_absurd_values():
    b = AdvantageBound(clip=5.0, reject=1000.0, window=10, min_count=3)
    assert b([1e9, -1e9]) == [1e9, -1e9]               # no scale yet: only finiteness applies
    b.history = []
    for a in ([1.0, -1.0], [2.0, -2.0]):
        assert b(a) == a
    assert b.scale() == pytest.approx(1.5)
    assert b([10.0, -10.0]) == [7.5, -7.5]             # clipped at 5 x median |adv|
    assert b([2e4, -2e4]) is None                      # beyond 1000 x: an outlier, not recorded
    assert len(b.history) == 6
    c = AdvantageBound(clip=5.0, reject=1000.0)
    c.load_state_dict(b.state_dict())
    assert c.history == b.history
    off = AdvantageBound(clip=0.0, reject=0.0, min_count=1)
    off([1.0])
    assert off([1e30]) == [1e30]


def test_lookahead_gradient_is_clipped_to_its_max_norm():
    from atslib.step import bounded
    g = [torch.full((3,), 4.0), torch.full((2, 2), 3.0)]
    clipped, norm = bounded(g, 0.5)
    assert float(torch.sqrt(sum((c ** 2).sum() for c in clipped))) == pytest.approx(0.5, rel=1e-5)
    assert torch.allclose(clipped[0] / clipped[0].norm(), g[0] / g[0].norm())   # direction kept
    assert float(norm) == pytest.approx(math.sqrt(3 * 16 + 4 * 9))
    small = [torch.full((3,), 0.01)]
    assert torch.equal(bounded(small, 0.5)[0][0], small[0])                    # below the bound: untouched
    assert bounded(g, 0.0)[0] is g                                             # 0: unbounded


def _scheduler_step(method, **kw):
    """A fresh method's first step, to be called, and phi's parameters before it."""
    from atslib import step as S
    from atslib.datasets import build_setup
    from atslib.methods import make_method
    cfg = tiny_config(method=method, noise_ratio=0.5, on_nonfinite="skip", **kw)
    setup = build_setup(cfg)
    m = make_method(cfg, setup)
    state = S.State(setup.model, torch.optim.Adam(setup.model.parameters()), m)
    return m, (lambda: m.step(state, S.step_inputs(setup, 0)[0])), [p.detach().clone() for p in m.net.parameters()]


@pytest.mark.parametrize("method", ["ats", "ats-reweight"])
def test_a_nonfinite_factor_stops_before_phi_moves(method, monkeypatch):
    from atslib import step as S
    m, first_step, before = _scheduler_step(method, zscore_factors=False)
    real = S.pool_factors

    def poisoned(*a, **k):
        f = real(*a, **k)
        f.loss[1] = float("inf")
        return f
    monkeypatch.setattr(S, "pool_factors", poisoned)
    with pytest.raises(NonFiniteError, match="factor loss"):
        first_step()
    assert all(torch.equal(a, b) for a, b in zip(before, m.net.parameters()))
    assert all(torch.isfinite(p).all() for p in m.net.parameters())


def test_ats_reweight_stops_on_a_nonfinite_validation_loss_before_phi_moves(monkeypatch):
    from atslib import maml
    m, first_step, before = _scheduler_step("ats-reweight")
    real = maml.task_losses

    def overflowing(*a, **k):
        losses = real(*a, **k)
        return (losses[0] * float("inf"),) + tuple(losses[1:])
    monkeypatch.setattr(maml, "task_losses", overflowing)
    with pytest.raises(NonFiniteError, match="validation loss of the weighted look-ahead"):
        first_step()
    assert all(torch.equal(a, b) for a, b in zip(before, m.net.parameters()))
    assert all(torch.isfinite(p).all() for p in m.net.parameters())


def test_the_starting_model_is_a_checkpoint_candidate(tmp_path):
    """A run that only makes its start worse (a huge outer learning rate) keeps the start."""
    meta_train(tiny_config(method="uniform", steps=6), out=tmp_path / "start")
    cfg = tiny_config(method="uniform", noise_ratio=1.0, outer_lr=0.5, init=str(tmp_path / "start"))
    bad = meta_train(cfg, out=tmp_path / "bad")
    assert bad.summary["best_step"] == 0
    assert bad.summary["start_val"] == bad.summary["best_val"]
    assert bad.summary["start_val"] >= max(h["val_acc"] for h in bad.history if "val_acc" in h)
    # the start's validation is computed once per start checkpoint and kept next to it
    assert (tmp_path / "start" / "start_val.json").is_file()
    # tested with the start's own parameters: the same test tasks give the same scores as the start run's best
    import pandas as pd
    assert pd.read_csv(tmp_path / "bad" / "test_scores.csv")["acc"].equals(
        pd.read_csv(tmp_path / "start" / "test_scores.csv")["acc"])
    legacy = meta_train(dataclasses.replace(cfg, validate_start=False), out=tmp_path / "legacy")
    assert legacy.summary["best_step"] > 0 and legacy.summary["start_val"] is None


def test_each_start_has_its_own_validation_in_one_process(tmp_path):
    """Two runs in one process from two different starts (as a sweep's seeds are) each get their
    own start's validation - the start's best validation score, on the same tasks - not the first's."""
    starts = [meta_train(tiny_config(method="uniform", steps=steps, seed=s), out=tmp_path / f"start{s}")
              for s, steps in ((0, 6), (1, 2))]
    assert starts[0].summary["best_val"] != starts[1].summary["best_val"]
    for s, start in enumerate(starts):
        run = meta_train(tiny_config(method="uniform", steps=2, seed=s, init=str(tmp_path / f"start{s}")),
                         out=tmp_path / f"run{s}")
        assert run.summary["start_val"] == start.summary["best_val"]


def test_scheduler_warmup_trains_phi_while_theta_stays():
    """The authors' warm-up: during the first W steps phi learns from its look-aheads, theta's
    updates are not applied; afterwards both move."""
    cfg = tiny_config(method="ats", noise_ratio=0.5, warmup=3, steps=5, eval_every=5)
    from atslib.loop import Run
    run = Run(cfg)
    theta0 = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    phi0 = [p.detach().clone() for p in run.method.net.parameters()]
    cfg_steps = []

    def watch(rec, r):
        same = all(torch.equal(theta0[k], v) for k, v in r.model.state_dict().items())
        moved = any(not torch.equal(a, b) for a, b in zip(phi0, r.method.net.parameters()))
        cfg_steps.append((rec["step"], same, "train_loss" in rec, moved))

    run.train(callbacks=[watch])
    assert [s for s, same, _, _ in cfg_steps if same] == [0, 1, 2]          # theta fixed during the warm-up
    assert [s for s, _, upd, _ in cfg_steps if upd] == [3, 4]
    assert cfg_steps[2][3]                                                  # ... while phi has learnt


def test_an_absurd_advantage_skips_phis_update_and_training_goes_on():
    """A finite advantage far beyond the running scale (a look-ahead model whose validation loss
    exploded): phi learns nothing from that step, theta's update and the run go on."""
    from atslib.datasets import build_setup
    from atslib.methods import make_method
    from atslib.step import State, step_inputs
    cfg = tiny_config(method="ats", noise_ratio=0.5, adv_reject=10.0)
    setup = build_setup(cfg)
    m = make_method(cfg, setup)
    m.bound.history = [1e-12] * 10                  # a tiny running scale: every advantage is absurd
    before = [p.detach().clone() for p in m.net.parameters()]
    theta = [p.detach().clone() for p in setup.model.parameters()]
    out = m.step(State(setup.model, torch.optim.Adam(setup.model.parameters()), m), step_inputs(setup, 0)[0])
    assert out.info["phi_skipped"] == 1 and "advantage" not in out.info and math.isfinite(out.info["reward"])
    assert all(torch.equal(a, b) for a, b in zip(before, m.net.parameters()))
    assert m.bound.history == [1e-12] * 10 and m.baseline.count == 0
    assert out.losses is not None and len(out.indices) == cfg.meta_batch      # the real update still happens
    assert any(not torch.equal(a, b) for a, b in zip(theta, setup.model.parameters()))


def test_saved_configs_read_under_current_names():
    """A config saved before an option existed or was renamed reads as the run ran: legacy values for
    the safeguards it predates, ``pools`` under its new name ``max_pools``."""

    old = {k: v for k, v in Config(method="ats").to_dict().items() if k not in LEGACY and k != "max_pools"}
    old["pools"] = 4
    cfg = Config.from_saved(old)
    assert cfg.max_pools == 4 and cfg.lookahead_max_norm == 0.0 and cfg.validate_start is False
    with pytest.raises(ConfigError, match="unknown option"):
        Config.from_dict({"pools": 4})
