"""Episodes, label noise and budgets: shapes, invariants, determinism."""
import numpy as np
import torch

from atslib.tasks import EpisodeSampler, budget_classes, corrupt, stream


def test_episode_shapes_and_labels(images):
    s = EpisodeSampler(images, "train", 5, 2, 3)
    t = s.sample(4, stream(0, 0, "pool"))
    assert t.x_s.shape == (4, 10, 1, 28, 28) and t.x_q.shape == (4, 15, 1, 28, 28)
    assert t.y_s.shape == (4, 10) and t.y_q.shape == (4, 15)
    assert t.x_s.dtype == torch.float32 and 0 <= t.x_s.min() and t.x_s.max() <= 1
    for i in range(4):
        assert len(set(t.classes[i].tolist())) == 5
        assert set(t.classes[i].tolist()) <= set(images.classes("train").tolist())
        assert (torch.bincount(t.y_q[i], minlength=5) == 3).all()
    # support and query of a class never share a drawing
    assert not any((t.x_s[0][j] == t.x_q[0]).flatten(1).all(1).any() for j in range(10)
                   if t.x_s[0][j].sum() > 0)


def test_same_seed_same_tasks_other_seed_other_tasks(images):
    s = EpisodeSampler(images, "train", 5, 1, 5, noise_ratio=0.5)
    a, b = s.sample(3, stream(7, 3, "pool")), s.sample(3, stream(7, 3, "pool"))
    c = s.sample(3, stream(8, 3, "pool"))
    assert torch.equal(a.x_s, b.x_s) and torch.equal(a.y_s, b.y_s) and torch.equal(a.noisy, b.noisy)
    assert not torch.equal(a.x_s, c.x_s)


def test_noise_rates_and_clean_queries(images):
    s = EpisodeSampler(images, "train", 5, 5, 2, noise_ratio=0.6, flip_prob=0.8)
    t = s.sample(2000, stream(0, 0, "noise"))
    assert abs(t.noisy.float().mean().item() - 0.6) < 0.04
    flipped = (t.y_s != t.y_s_clean).float()
    assert flipped[~t.noisy].sum() == 0                      # clean tasks untouched
    assert abs(flipped[t.noisy].mean().item() - 0.8) < 0.02  # flip rate in noisy tasks
    labels = torch.arange(5).repeat_interleave(2)
    assert (t.y_q == labels).all()                           # queries always clean


def test_corrupt_always_picks_another_class_uniformly():
    y = torch.zeros(50000, dtype=torch.long)
    z = corrupt(y, 5, 1.0, stream(0, 0, "c"))
    assert (z != 0).all()
    freq = torch.bincount(z, minlength=5)[1:].float() / len(z)
    assert torch.allclose(freq, torch.full((4,), 0.25), atol=0.01)


def test_budget_is_a_fixed_subset(images):
    a = budget_classes(images, 16, seed=0)
    assert len(a) == 16 and set(a) <= set(images.classes("train"))
    assert np.array_equal(a, budget_classes(images, 16, seed=0))
    assert len(budget_classes(images, None)) == 64
    s = EpisodeSampler(images, "train", 5, 1, 1, classes=a)
    t = s.sample(50, stream(0, 0, "b"))
    assert set(t.classes.flatten().tolist()) <= set(a.tolist())
