"""Batched meta-losses and meta-gradients equal a plain per-task autograd loop."""
import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_model, tiny_tasks

from atslib import maml


def reference_losses(model, p, tasks, steps, lr, inner, first_order):
    """One task at a time, textbook MAML/ANIL with torch.autograd."""
    out = []
    for t in range(len(tasks)):
        fast = dict(p)
        adapt = list(model.head_keys) if inner == "anil" else list(p)
        for _ in range(steps):
            logits = model.head(fast, model.features(fast, tasks.x_s[t]))
            loss = F.cross_entropy(logits, tasks.y_s[t])
            grads = torch.autograd.grad(loss, [fast[k] for k in adapt], create_graph=not first_order)
            fast = dict(fast)
            for k, g in zip(adapt, grads):
                fast[k] = fast[k] - lr * g
        out.append(F.cross_entropy(model.head(fast, model.features(fast, tasks.x_q[t])), tasks.y_q[t]))
    return torch.stack(out)


@pytest.mark.parametrize("inner", ["anil", "maml"])
@pytest.mark.parametrize("first_order", [False, True])
def test_batched_equals_loop(images, inner, first_order):
    model = tiny_model(images)
    tasks = tiny_tasks(images, n=3)
    p = dict(model.named_parameters())
    ref = reference_losses(model, p, tasks, 2, 0.3, inner, first_order)
    g_ref = torch.autograd.grad(ref.mean(), list(p.values()))
    paths = [None] if inner == "anil" else [False, True]
    for batched in paths:
        losses, _ = maml.task_losses(model, p, tasks, 2, 0.3, inner, first_order, batched=batched)
        g = torch.autograd.grad(losses.mean(), list(p.values()))
        torch.testing.assert_close(losses, ref, rtol=1e-7, atol=1e-9)
        for a, b in zip(g, g_ref):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_second_order_differs_from_first(images):
    model = tiny_model(images)
    tasks = tiny_tasks(images, n=2)
    p = dict(model.named_parameters())
    g2 = torch.autograd.grad(maml.task_losses(model, p, tasks, 2, 0.5, "anil", False)[0].mean(), p["conv0.weight"])[0]
    g1 = torch.autograd.grad(maml.task_losses(model, p, tasks, 2, 0.5, "anil", True)[0].mean(), p["conv0.weight"])[0]
    assert not torch.allclose(g1, g2)


def test_evaluate_matches_task_losses(images):
    model = tiny_model(images)
    tasks = tiny_tasks(images, n=5)
    p = dict(model.named_parameters())
    l1, s1 = maml.task_losses(model, p, tasks, 3, 0.2)
    l2, s2 = maml.evaluate(model, p, tasks, 3, 0.2, chunk=2)
    torch.testing.assert_close(l1.detach(), l2)
    torch.testing.assert_close(s1, s2)
    assert ((s2 >= 0) & (s2 <= 1)).all()


def test_groupnorm_makes_batching_exact(images):
    """The backbone on many tasks at once equals the backbone on each task alone."""
    model = tiny_model(images)
    tasks = tiny_tasks(images, n=3)
    p = dict(model.named_parameters())
    f_s, _ = maml.anil_features(model, p, tasks.x_s, tasks.x_q)
    torch.testing.assert_close(f_s[1], model.features(p, tasks.x_s[1]))


@pytest.mark.parametrize("shape", [(3, 4, 28, 28), (2, 5, 7, 7), (1, 2, 3, 5), (2, 3, 2, 3)])
def test_nograd_max_pool_equals_max_pool2d(shape):
    import torch.nn.functional as F

    from atslib.models import max_pool2_nograd
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(max_pool2_nograd(x), F.max_pool2d(x, 2))


def test_features_without_grad_equal_features_with_grad(images):
    from helpers import tiny_model
    m = tiny_model(images, width=8, pools=3, dtype=torch.float32)
    p = dict(m.named_parameters())
    x = images.x[:12].float() / 255
    with_grad = m.features(p, x)
    assert with_grad.requires_grad
    with torch.no_grad():
        without = m.features(p, x)
    assert torch.equal(with_grad.detach(), without)
