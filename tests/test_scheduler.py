"""Exact Plackett-Luce log-probabilities, REINFORCE sign, the set context."""
import itertools
import math

import torch

from atslib.scheduler import (
    Baseline,
    SchedulerNet,
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
