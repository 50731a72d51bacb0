"""The two ATS factors against a plain per-task autograd computation; loop == batched path."""
import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_model, tiny_tasks

from atslib import maml
from atslib.features import pool_factors


def reference(model, p, tasks, steps, lr):
    loss, dot, cos = [], [], []
    params = {k: v.detach().requires_grad_(True) for k, v in p.items()}
    for t in range(len(tasks)):
        ls = F.cross_entropy(model.head(params, model.features(params, tasks.x_s[t])), tasks.y_s[t])
        lq = F.cross_entropy(model.head(params, model.features(params, tasks.x_q[t])), tasks.y_q[t])
        gs = torch.cat([g.flatten() for g in torch.autograd.grad(ls, list(params.values()))])
        gq = torch.cat([g.flatten() for g in torch.autograd.grad(lq, list(params.values()))])
        dot.append(gs @ gq)
        cos.append(gs @ gq / (gs.norm() * gq.norm()))
        # ANIL adaptation by hand
        W, b = params["head.weight"].detach().clone(), params["head.bias"].detach().clone()
        fs = model.features(params, tasks.x_s[t]).detach()
        for _ in range(steps):
            W.requires_grad_(True); b.requires_grad_(True)
            gW, gb = torch.autograd.grad(F.cross_entropy(fs @ W.T + b, tasks.y_s[t]), (W, b))
            W, b = (W - lr * gW).detach(), (b - lr * gb).detach()
        fq = model.features(params, tasks.x_q[t]).detach()
        loss.append(F.cross_entropy(fq @ W.T + b, tasks.y_q[t]))
    return torch.stack(loss).detach(), torch.stack(dot).detach(), torch.stack(cos).detach()


@pytest.mark.parametrize("path", ["loop", "batched"])
def test_factors_match_reference(images, path):
    model = tiny_model(images)
    tasks = tiny_tasks(images, n=4, noise_ratio=0.5)
    p = dict(model.named_parameters())
    f = pool_factors(model, p, tasks, 3, 0.2, "anil", path=path)
    loss, dot, cos = reference(model, p, tasks, 3, 0.2)
    torch.testing.assert_close(f.loss.double(), loss.double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(f.sim_dot.double(), dot.double(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(f.sim_cos.double(), cos.double(), rtol=1e-5, atol=1e-6)
    assert f.layer_cos.shape == (4, 5) and f.layers[-1] == "head"
    assert ((f.layer_cos >= -1 - 1e-6) & (f.layer_cos <= 1 + 1e-6)).all()


@pytest.mark.parametrize("path", ["loop", "batched"])
def test_factors_leave_no_graph(images, path):
    model = tiny_model(images)
    tasks = tiny_tasks(images, n=2)
    f = pool_factors(model, dict(model.named_parameters()), tasks, 2, 0.1, path=path)
    assert not any(t.requires_grad for t in (f.loss, f.sim_dot, f.sim_cos))
    assert all(p.grad is None for p in model.parameters())


def test_maml_factors_loss(images):
    model = tiny_model(images)
    tasks = tiny_tasks(images, n=2)
    p = dict(model.named_parameters())
    f = pool_factors(model, p, tasks, 2, 0.1, "maml")
    ref, _ = maml.evaluate(model, p, tasks, 2, 0.1, "maml")
    torch.testing.assert_close(f.loss, ref.cpu())
