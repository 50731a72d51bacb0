"""Cheap factors for ``ats-cheap``: one gradient-free backbone pass over a query subsample.

The full factors need a forward and backward pass through the backbone for every support and
query example of the pool. Here the backbone runs once, without a graph, over the support set
and ``queries`` examples per class of each query set; the similarity is the cosine between the
support and query gradients of the *head* only (closed form from the features), and the loss is
the subsampled query loss after head adaptation (ANIL). On a conv net that removes the backward
pass and most of the forward pass.
"""
from __future__ import annotations

import torch

from . import maml
from .features import Factors, similarities
from .tasks import TaskBatch


def subsample_queries(tasks: TaskBatch, per_class: int, g: torch.Generator) -> TaskBatch:
    """Keep ``per_class`` query examples of each class (the same positions for every task)."""
    ways = tasks.ways
    nq = tasks.y_q.shape[1] // ways
    if per_class >= nq:
        return tasks
    keep = torch.randperm(nq, generator=g)[:per_class]
    idx = (torch.arange(ways).unsqueeze(1) * nq + keep.unsqueeze(0)).flatten().to(tasks.y_q.device)
    return TaskBatch(tasks.x_s, tasks.y_s, tasks.x_q[:, idx], tasks.y_q[:, idx], tasks.noisy, tasks.y_s_clean,
                     tasks.classes, kind=tasks.kind)


def _head_grads(model, p, f, y, mask=None):
    """Per-task gradient of the mean loss w.r.t. the head, f (T, n, d) -> {name: (T, ...)}."""
    T = f.shape[0]
    W = p["head.weight"].detach().expand(T, *p["head.weight"].shape).clone().requires_grad_(True)
    b = p["head.bias"].detach().expand(T, *p["head.bias"].shape).clone().requires_grad_(True)
    with torch.enable_grad():
        loss = maml.task_loss(torch.baddbmm(b.unsqueeze(1), f, W.transpose(1, 2)), y, mask=mask).sum()
        gW, gb = torch.autograd.grad(loss, (W, b))
    return {"head.weight": gW, "head.bias": gb}


def cheap_factors(model, p: dict, tasks: TaskBatch, steps: int, lr: float, queries: int, g) -> Factors:
    if tasks.y_s.is_floating_point():
        per_class_tasks = tasks  # regression: no classes to subsample by
    else:
        per_class_tasks = subsample_queries(tasks, queries, g)
    p = {k: v.detach() for k, v in p.items()}
    with torch.no_grad():
        f_s, f_q = maml.anil_features(model, p, per_class_tasks.x_s, per_class_tasks.x_q)
    t = per_class_tasks
    dot, cos, layer_cos, layers = similarities(_head_grads(model, p, f_s, t.y_s, t.m_s),
                                                _head_grads(model, p, f_q, t.y_q, t.m_q))
    with torch.no_grad():
        out = maml.anil_outputs(model, p, per_class_tasks, steps, lr, first_order=True, features=(f_s, f_q))
    return Factors(maml.task_loss(out, t.y_q, mask=t.m_q).cpu(), maml.task_score(out, t.y_q, t.m_q).cpu(),
                   dot, cos, layer_cos, layers)
