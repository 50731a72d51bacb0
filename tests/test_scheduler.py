"""Exact Plackett-Luce log-probabilities, REINFORCE sign, the set context; the drop-in TaskScheduler."""
import copy
import itertools
import math

import pytest
import torch

from atslib.scheduler import (
    Baseline,
    SchedulerNet,
    TaskScheduler,
    draw,
    plackett_luce_log_prob,
    reinforce_loss,
)
from atslib.tasks import stream


def test_plackett_luce_enumeration_sums_to_one():
    logits = torch.tensor([0.3, -1.2, 2.0, 0.5])
    for T in (1.0, 0.5):
        total = 0.0
        p = torch.softmax(logits / T, 0)
        for i, j in itertools.permutations(range(4), 2):
            lp = plackett_luce_log_prob(logits, torch.tensor([i, j]), T)
            expected = p[i] * p[j] / (1 - p[i])          # sequentially renormalised
            assert math.isclose(lp.exp().item(), expected.item(), rel_tol=1e-6)
            total += lp.exp().item()
        assert math.isclose(total, 1.0, rel_tol=1e-6)


def test_draw_frequencies_match_probabilities():
    logits = torch.tensor([1.0, 0.0, -0.5, 0.7])
    g = stream(0, 0, "freq")
    counts = {}
    n = 20000
    for _ in range(n):
        d = draw(logits, 2, g)
        key = tuple(d.indices.tolist())
        counts[key] = counts.get(key, 0) + 1
    for key, c in counts.items():
        p = plackett_luce_log_prob(logits, torch.tensor(key)).exp().item()
        assert abs(c / n - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-3
    assert len(counts) == 12


def test_draw_is_without_replacement_and_valid_under_extreme_logits():
    logits = torch.tensor([1e4, -1e4, 0.0, float("-inf"), 3.0])
    d = draw(logits, 3, stream(0, 0, "x"), temperature=0.1)
    assert len(set(d.indices.tolist())) == 3
    assert torch.isfinite(d.log_prob) and torch.isfinite(d.probs).all()
    assert math.isclose(d.probs.sum().item(), 1.0, rel_tol=1e-6)


def test_reinforce_gradient_has_the_right_sign():
    """Rewarding draws of task 0 must raise its probability."""
    torch.manual_seed(0)
    net = SchedulerNet(2, 8, generator=stream(0, 0, "n"))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    x = torch.randn(5, 2)
    g = stream(1, 0, "draws")
    p0 = torch.softmax(net(x, 0.0), 0)[0].item()
    base = Baseline(0.9)
    for _ in range(150):
        d = draw(net(x, 0.0), 1, g)
        adv = base.update(1.0 if d.indices[0].item() == 0 else 0.0)
        opt.zero_grad()
        reinforce_loss(d.log_prob, adv).backward()
        opt.step()
    assert torch.softmax(net(x, 0.0), 0)[0].item() > max(0.6, p0 + 0.3)


def test_set_context_sees_other_tasks():
    """Changing task 2's factors changes task 0's logit (the context pools over tasks)."""
    net = SchedulerNet(2, 8, generator=stream(0, 0, "n"), zero_output=False)
    x = torch.randn(4, 2)
    y = x.clone()
    y[2] += 3.0
    assert not torch.allclose(net(x, 0.5)[0], net(y, 0.5)[0])
    # and is permutation-equivariant
    perm = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(net(x[perm], 0.5), net(x, 0.5)[perm])


def test_fresh_scheduler_is_uniform():
    net = SchedulerNet(2, 8, generator=stream(0, 0, "n"))
    p = torch.softmax(net(torch.randn(6, 2), 0.3), 0)
    torch.testing.assert_close(p, torch.full((6,), 1 / 6))


# -- TaskScheduler: the drop-in scheduler (``atslib.ats.ATS`` runs on it) ------------------------
def _pool(seed=0, P=6):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(P, generator=g), torch.rand(P, generator=g) * 2 - 1


def test_task_scheduler_defaults_are_the_configs():
    from atslib import Config
    cfg, s = Config(), TaskScheduler()
    assert s.factors == ("loss", "sim") and s.zscore == cfg.zscore_factors
    assert s.net.encode[0].out_features == cfg.scheduler_hidden and s.opt.param_groups[0]["lr"] == cfg.scheduler_lr
    assert s.baseline.momentum == cfg.baseline_momentum
    assert (s.bound.clip, s.bound.reject) == (cfg.adv_clip, cfg.adv_reject)
    assert s.temperature(0) == 1.0 and s.temperature(10 ** 4) == cfg.temperature
    assert s.temperature(3) == max(cfg.temperature, cfg.temperature_decay ** 3)


def test_task_scheduler_draws_are_seeded_and_exact():
    loss, sim = _pool()
    a, b = (TaskScheduler(generator=torch.Generator().manual_seed(5), zero_output=False) for _ in range(2))
    da, db = a.draw(loss, sim, 3, progress=0.5, n=2), b.draw(loss, sim, 3, progress=0.5, n=2)
    assert [d.indices.tolist() for d in da] == [d.indices.tolist() for d in db]      # its own generator
    assert da[0].logits is da[1].logits                                             # one pass of phi
    d = da[0]
    assert d.indices.shape == (3,) and d.probs.shape == (6,) and d.log_prob.requires_grad
    torch.testing.assert_close(d.log_prob, plackett_luce_log_prob(d.logits, d.indices))
    torch.testing.assert_close(d.logits, a.net(a.inputs(loss, sim), 0.5))
    x = torch.stack([(loss - loss.mean()) / loss.std(unbiased=False), (sim - sim.mean()) / sim.std(unbiased=False)], 1)
    torch.testing.assert_close(a.inputs(loss, sim), x)
    assert TaskScheduler(factors=("sim",)).draw(None, sim, 2).indices.shape == (2,)
    with pytest.raises(ValueError, match="'loss' is needed"):
        TaskScheduler().draw(None, sim, 2)
    with pytest.raises(ValueError, match="ATS factors"):
        TaskScheduler(factors=("loss", "acc"))


def test_leave_one_out_update_is_the_hand_written_reinforce_step():
    loss, sim = _pool(1)
    s = TaskScheduler(generator=torch.Generator().manual_seed(2), zero_output=False)
    ref = copy.deepcopy(s)
    draws = s.draw(loss, sim, 2, progress=0.3, n=2)
    out = s.update(draws, [0.5, 0.2])
    assert out["skipped"] is False and out["advantages"] == pytest.approx([0.3, -0.3])
    assert s.baseline.value == pytest.approx(0.35) and s.baseline.count == 1    # the mean reward, for the records
    logits = ref.net(ref.inputs(loss, sim), 0.3)
    lps = [plackett_luce_log_prob(logits, d.indices) for d in draws]
    ref.opt.zero_grad()
    (-(0.3 * lps[0] - 0.3 * lps[1]) / 2).backward()
    ref.opt.step()
    for p, q in zip(s.net.parameters(), ref.net.parameters()):
        torch.testing.assert_close(p, q)


def test_tensor_rewards_from_the_callers_graph_move_only_phi():
    """A researcher's val_loss may return a tensor still on their model's graph: the update reads its
    value, leaves their model's gradients alone, and steps phi exactly as with the floats."""
    loss, sim = _pool(1)
    w = torch.ones(3, requires_grad=True)                     # stands in for the caller's model
    a = TaskScheduler(generator=torch.Generator().manual_seed(2), zero_output=False)
    b = copy.deepcopy(a)
    da, db = a.draw(loss, sim, 2, progress=0.3, n=2), b.draw(loss, sim, 2, progress=0.3, n=2)
    ra = [(w * 0.5).sum() / 3, (w * 0.2).sum() / 3]
    out = a.update(da, ra)
    ref = b.update(db, [float(r.detach()) for r in ra])
    assert w.grad is None and all(isinstance(x, float) for x in out["advantages"])
    assert out["advantages"] == ref["advantages"]
    for p, q in zip(a.net.parameters(), b.net.parameters()):
        assert torch.equal(p, q)


def test_one_draw_uses_the_moving_average_baseline():
    loss, sim = _pool(2)
    s = TaskScheduler(generator=torch.Generator().manual_seed(3), momentum=0.5)
    phi0 = [p.detach().clone() for p in s.net.parameters()]
    assert s.update(s.draw(loss, sim, 2), [1.0])["advantages"] == [0.0]          # the first reward: no baseline yet
    assert all(torch.equal(a, b) for a, b in zip(phi0, s.net.parameters()))
    out = s.update([s.draw(loss, sim, 2)], [3.0])
    assert out["advantages"] == [2.0] and out["baseline"] == pytest.approx(2.0)
    assert any(not torch.equal(a, b) for a, b in zip(phi0, s.net.parameters()))
    with pytest.raises(ValueError, match="one reward per draw"):
        s.update(s.draw(loss, sim, 2, n=2), [1.0])


def test_an_absurd_advantage_leaves_phi_and_the_baseline_alone():
    loss, sim = _pool(3)
    s = TaskScheduler(generator=torch.Generator().manual_seed(4), adv_reject=10.0)
    s.bound.history = [1e-6] * 10
    phi0 = [p.detach().clone() for p in s.net.parameters()]
    out = s.update(s.draw(loss, sim, 2, n=2), [1.0, 0.0])
    assert out["skipped"] is True and out["advantages"] is None and out["advantages_raw"] == [1.0, -1.0]
    assert all(torch.equal(a, b) for a, b in zip(phi0, s.net.parameters()))
    assert s.baseline.count == 0 and s.bound.history == [1e-6] * 10


def test_task_scheduler_state_dict_keeps_the_checkpoint_keys():
    """``ATS.state_dict`` is the scheduler's: checkpoints hold "net", "opt", "baseline", "bound"
    (runs saved before the bound existed lack "bound" and still load)."""
    loss, sim = _pool(4)
    s = TaskScheduler(generator=torch.Generator().manual_seed(6))
    for _ in range(3):
        s.update(s.draw(loss, sim, 2, n=2), [float(torch.rand(())), float(torch.rand(()))])
    d = copy.deepcopy(s.state_dict())
    assert list(d) == ["net", "opt", "baseline", "bound"]
    t = TaskScheduler(generator=torch.Generator().manual_seed(99))
    t.load_state_dict(d)
    assert t.baseline.state_dict() == s.baseline.state_dict() and t.bound.history == s.bound.history
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert s.draw(loss, sim, 3, 0.5, generator=g1).indices.tolist() == t.draw(loss, sim, 3, 0.5, generator=g2).indices.tolist()
    torch.testing.assert_close(s.draw(loss, sim, 3, 0.5).probs, t.draw(loss, sim, 3, 0.5).probs)
    old = {k: v for k, v in d.items() if k != "bound"}
    u = TaskScheduler()
    u.load_state_dict(old)
    assert u.bound.history == []
