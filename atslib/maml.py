"""Gradient-based meta-learning as pure functions: inner adaptation, per-task query losses.

Two inner loops (Finn et al. 2017; Raghu et al. 2020):
- ANIL: only the linear head adapts. The backbone runs **once** over every support and query
  image of every task (one batch: GroupNorm makes that exact), and the head is adapted for all
  tasks at once with batched matrix products: the head is expanded to one copy per task, and the
  gradient of the summed task losses w.r.t. the copies is each task's own gradient.
- MAML: all parameters adapt. ``batched=True`` uses ``torch.func.vmap`` over the task axis with
  ``torch.func.grad`` inside (one program for all tasks, the fast path on a GPU); ``batched=False``
  loops over tasks with plain autograd (faster for convolutions on a CPU, where vmap becomes a
  grouped convolution). Both give the same numbers (``tests/test_maml.py``).

Second order by default; ``first_order`` treats inner gradients as constants. Classification
tasks have integer labels (cross-entropy, accuracy); regression tasks float labels (MSE, score
= -MSE). ``focal_gamma > 0`` swaps the query cross-entropy for the focal loss (Lin et al. 2017).
Padded tasks (``TaskBatch.m_s``/``m_q``, molecules) use masked means: padded rows add nothing to
any loss, gradient or score, so a padded task gives the numbers of the same task unpadded.
A population (``atslib.population``) batches ``evaluate``'s calls across runs by substituting its own
version while it trains; nothing here knows of it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def is_regression(y: torch.Tensor) -> bool:
    return y.is_floating_point()


def masked_mean(v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the last axis, counting only rows where ``mask`` is 1 (all rows when None)."""
    if mask is None:
        return v.mean(-1)
    return (v * mask).sum(-1) / mask.sum(-1)


def task_loss(out: torch.Tensor, y: torch.Tensor, focal_gamma: float = 0.0, mask=None) -> torch.Tensor:
    """Mean loss of each task. out (T, n, o), y (T, n), mask (T, n) or None -> (T,)."""
    if is_regression(y):
        return masked_mean((out.squeeze(-1) - y).pow(2), mask)
    logp = F.log_softmax(out, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)      # (T, n)
    if focal_gamma > 0:
        return masked_mean(-(1 - logp.exp()).pow(focal_gamma) * logp, mask)
    return -masked_mean(logp, mask)


def task_score(out: torch.Tensor, y: torch.Tensor, mask=None) -> torch.Tensor:
    """Accuracy (classification) or -MSE (regression) of each task, (T,)."""
    if is_regression(y):
        return -masked_mean((out.squeeze(-1) - y).pow(2), mask)
    return masked_mean((out.argmax(-1) == y).float(), mask)


def _linear(W, b, f):
    """Per-task linear head: W (T, o, d), b (T, o), f (T, n, d) -> (T, n, o)."""
    return torch.baddbmm(b.unsqueeze(1), f, W.transpose(1, 2))


def adapt_head(W, b, f_s, y_s, steps: int, lr: float, create_graph: bool, mask=None):
    """SGD on the per-task head copies. W (T, o, d), b (T, o); returns adapted (W, b)."""
    if not (W.requires_grad or b.requires_grad):
        W, b = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
    with torch.enable_grad():
        for _ in range(steps):
            loss = task_loss(_linear(W, b, f_s), y_s, mask=mask).sum()
            gW, gb = torch.autograd.grad(loss, (W, b), create_graph=create_graph)
            W, b = W - lr * gW, b - lr * gb
    return W, b


def anil_features(model, p: dict, x_s: torch.Tensor, x_q: torch.Tensor):
    """Backbone features of all support and query examples of all tasks in one pass."""
    T, ns, nq = x_s.shape[0], x_s.shape[1], x_q.shape[1]
    f = model.features(p, torch.cat([x_s.flatten(0, 1), x_q.flatten(0, 1)]))
    return f[: T * ns].view(T, ns, -1), f[T * ns:].view(T, nq, -1)


def anil_outputs(model, p, tasks, steps, lr, first_order=False, features=None):
    """Query outputs (T, nq, o) after adapting the head on each task's support set."""
    f_s, f_q = features if features is not None else anil_features(model, p, tasks.x_s, tasks.x_q)
    T = f_s.shape[0]
    W = p["head.weight"].expand(T, *p["head.weight"].shape)
    b = p["head.bias"].expand(T, *p["head.bias"].shape)
    return head_outputs(W, b, f_s, f_q, tasks.y_s, tasks.m_s, steps, lr, first_order)


def head_outputs(W, b, f_s, f_q, y_s, m_s, steps, lr, first_order=False):
    """Query outputs (T, nq, o) of per-task heads W (T, o, d), b (T, o) adapted on the support
    features f_s (T, ns, d) - the part of ANIL after the backbone."""
    create_graph = not first_order and torch.is_grad_enabled() and (W.requires_grad or f_s.requires_grad)
    W, b = adapt_head(W, b, f_s, y_s, steps, lr, create_graph, m_s)
    if not torch.is_grad_enabled():
        W, b = W.detach(), b.detach()
    return _linear(W, b, f_q)


def _maml_inner(model, p, x_s, y_s, steps, lr, first_order, m_s=None):
    """One task, plain autograd: adapted parameter dict (``m_s`` (n,) support mask or None)."""
    fast = dict(p)
    create_graph = not first_order and torch.is_grad_enabled()
    with torch.enable_grad():
        if not any(v.requires_grad for v in fast.values()):
            fast = {k: v.detach().requires_grad_(True) for k, v in fast.items()}
        for _ in range(steps):
            out = model.head(fast, model.features(fast, x_s)).unsqueeze(0)
            loss = task_loss(out, y_s.unsqueeze(0), mask=None if m_s is None else m_s.unsqueeze(0)).sum()
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph)
            fast = {k: v - lr * g for (k, v), g in zip(fast.items(), grads)}
    return fast


def maml_outputs_loop(model, p, tasks, steps, lr, first_order=False):
    outs = []
    for t in range(len(tasks)):
        fast = _maml_inner(model, p, tasks.x_s[t], tasks.y_s[t], steps, lr, first_order,
                           None if tasks.m_s is None else tasks.m_s[t])
        outs.append(model.head(fast, model.features(fast, tasks.x_q[t])))
    return torch.stack(outs)


def maml_outputs_vmap(model, p, tasks, steps, lr, first_order=False):
    from torch.func import grad, vmap

    def one(p, x_s, y_s, x_q, m_s):
        def inner_loss(fp):
            return task_loss(model.head(fp, model.features(fp, x_s)).unsqueeze(0), y_s.unsqueeze(0),
                             mask=None if m_s is None else m_s.unsqueeze(0)).sum()

        fast = p
        for _ in range(steps):
            g = grad(inner_loss)(fast)
            if first_order:
                g = {k: v.detach() for k, v in g.items()}
            fast = {k: fast[k] - lr * g[k] for k in fast}
        return model.head(fast, model.features(fast, x_q))

    m_dim = None if tasks.m_s is None else 0
    return vmap(one, in_dims=(None, 0, 0, 0, m_dim))(p, tasks.x_s, tasks.y_s, tasks.x_q, tasks.m_s)


def query_outputs(model, p, tasks, steps, lr, inner="anil", first_order=False, batched=None):
    """Query outputs (T, nq, o) after ``steps`` inner SGD steps of size ``lr`` on each support set.

    ``batched=None`` picks the faster MAML path for the device (vmap on CUDA, loop on CPU).
    """
    if inner == "anil":
        return anil_outputs(model, p, tasks, steps, lr, first_order)
    if batched is None:
        batched = tasks.x_s.is_cuda
    fn = maml_outputs_vmap if batched else maml_outputs_loop
    return fn(model, p, tasks, steps, lr, first_order)


def task_losses(model, p, tasks, steps, lr, inner="anil", first_order=False, batched=None, focal_gamma=0.0):
    """(losses (T,), scores (T,)) on the query sets after adaptation; differentiable w.r.t. ``p``."""
    out = query_outputs(model, p, tasks, steps, lr, inner, first_order, batched)
    return task_loss(out, tasks.y_q, focal_gamma, tasks.m_q), task_score(out.detach(), tasks.y_q, tasks.m_q)


def evaluate(model, p, task_chunks, steps, lr, inner="anil", chunk: int = 50):
    """Per-task (loss, score) with no graph to ``p``; ``task_chunks`` is a TaskBatch or a list of them."""
    if not isinstance(task_chunks, (list, tuple)):
        task_chunks = [task_chunks]
    p = {k: v.detach() for k, v in p.items()}
    losses, scores = [], []
    for tasks in task_chunks:
        for s in range(0, len(tasks), chunk):
            part = tasks[list(range(s, min(s + chunk, len(tasks))))]
            if inner == "anil":
                with torch.no_grad():
                    out = anil_outputs(model, p, part, steps, lr, first_order=True)
            else:
                out = maml_outputs_loop(model, p, part, steps, lr, first_order=True).detach()
            losses.append(task_loss(out, part.y_q, mask=part.m_q))
            scores.append(task_score(out, part.y_q, part.m_q))
    return torch.cat(losses), torch.cat(scores)
