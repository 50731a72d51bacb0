"""The two meta-model factors of ATS for a whole pool of candidate tasks, computed once per step.

For every task i of the pool, at the current meta-parameters theta and with no graph back to theta:
- ``loss``: the query loss after inner-loop adaptation, L(D_i^q; theta_i) (the paper's first factor);
- ``sim_dot``: the inner product <grad L(D_i^s; theta), grad L(D_i^q; theta)> at theta, with no
  adaptation (the paper's second factor); ``sim_cos`` the cosine of the same two gradients and
  ``layer_cos`` (P, L) one cosine per layer (a richer feature; names in ``layers``).

Two equal paths (``tests/test_features.py``): ``loop`` runs each task through autograd (fastest on
a CPU); ``batched`` takes per-task gradients for the whole pool in one program with
``torch.func.vmap(grad(...))`` over the task axis (no Python loop; the fast path on a GPU). In
both, the ANIL backbone features come out of the same forward pass as the gradients and are reused
for the post-adaptation loss, so the backbone runs once per image.

``task_factors`` computes the two factors the scheduler reads (``loss`` and ``sim_cos``) for *any*
functional model ``forward(params, x) -> outputs`` on plain tensors with a leading task axis: the
drop-in path for a researcher's own model (``examples/ats_anil.py``); on this library's models it
gives the numbers of ``pool_factors`` (``tests/test_example.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import maml
from .models import layer_of


@dataclass
class Factors:
    loss: torch.Tensor        # (P,) query loss after adaptation
    score: torch.Tensor       # (P,) query accuracy (or -MSE) after adaptation
    sim_dot: torch.Tensor     # (P,) <g_support, g_query> at theta
    sim_cos: torch.Tensor     # (P,) cosine of the same
    layer_cos: torch.Tensor   # (P, L) per-layer cosines
    layers: list[str]

    def cpu(self) -> "Factors":
        return Factors(*(getattr(self, k).detach().cpu() for k in ("loss", "score", "sim_dot", "sim_cos", "layer_cos")),
                       self.layers)


def _one_task_loss(model, p, x, y, m=None):
    f = model.features(p, x)
    mask = None if m is None else m.unsqueeze(0)
    return maml.task_loss(model.head(p, f).unsqueeze(0), y.unsqueeze(0), mask=mask).sum(), f


def _grads_loop(model, p, x, y, m=None):
    """Per-task gradients {name: (P, ...)} and features (P, n, d), one task at a time (m: (P, n) mask)."""
    keys = list(p)
    grads, feats = {k: [] for k in keys}, []
    for t in range(x.shape[0]):
        with torch.enable_grad():
            loss, f = _one_task_loss(model, p, x[t], y[t], None if m is None else m[t])
            g = torch.autograd.grad(loss, [p[k] for k in keys])
        for k, gk in zip(keys, g):
            grads[k].append(gk)
        feats.append(f.detach())
    return {k: torch.stack(v) for k, v in grads.items()}, torch.stack(feats)


def _grads_batched(model, p, x, y, m=None):
    from torch.func import grad, vmap

    fn = grad(lambda p_, x_, y_, m_: _one_task_loss(model, p_, x_, y_, m_), has_aux=True)
    g, f = vmap(fn, in_dims=(None, 0, 0, None if m is None else 0))(p, x, y, m)
    return g, f.detach()


def similarities(g_s: dict, g_q: dict):
    """(dot (P,), cosine (P,), per-layer cosine (P, L), layer names) of per-task gradients
    {name: (P, ...)} of the support and the query sets."""
    layers = sorted({layer_of(k) for k in g_s}, key=lambda s: (s == "head", s))
    g0 = next(iter(g_s.values()))
    dev = "cpu" if g0.device.type == "mps" else g0.device        # (mps has no float64)
    sums = torch.zeros(3, g0.shape[0], len(layers), dtype=torch.float64, device=dev)
    for k in g_s:                            # on the gradients' device, one transfer at the end
        j = layers.index(layer_of(k))
        a, b = (g[k].detach().flatten(1).to(dev, torch.float64) for g in (g_s, g_q))
        sums[:, :, j] += torch.stack([(a * b).sum(1), (a * a).sum(1), (b * b).sum(1)])
    dot_l, ns_l, nq_l = sums.cpu()
    eps = 1e-20
    dot = dot_l.sum(1)
    cos = dot / (ns_l.sum(1).sqrt() * nq_l.sum(1).sqrt() + eps)
    layer_cos = dot_l / (ns_l.sqrt() * nq_l.sqrt() + eps)
    real = torch.get_default_dtype()                 # summed in float64, returned in the run's dtype
    return dot.to(real), cos.to(real), layer_cos.to(real), layers


def pool_factors(model, p: dict, tasks, steps: int, lr: float, inner: str = "anil", path: str | None = None) -> Factors:
    """Both factors for every task in ``tasks``; ``path`` is "loop", "batched" or None (auto by device)."""
    if path is None:
        path = "batched" if tasks.x_s.is_cuda else "loop"
    if path not in ("loop", "batched"):
        raise ValueError(f"path {path!r}: allowed: loop, batched")
    pd = {k: v.detach() for k, v in p.items()}
    # torch.func.grad needs no requires_grad; a leaf that had it would make its gradients
    # differentiable (an outer graph kept alive for nothing)
    p = pd if path == "batched" else {k: v.detach().requires_grad_(True) for k, v in pd.items()}
    grads = _grads_batched if path == "batched" else _grads_loop
    g_s, f_s = grads(model, p, tasks.x_s, tasks.y_s, tasks.m_s)
    g_q, f_q = grads(model, p, tasks.x_q, tasks.y_q, tasks.m_q)
    dot, cos, layer_cos, layers = similarities(g_s, g_q)
    with torch.no_grad():
        if inner == "anil":
            out = maml.anil_outputs(model, pd, tasks, steps, lr, first_order=True, features=(f_s, f_q))
            loss, score = maml.task_loss(out, tasks.y_q, mask=tasks.m_q), maml.task_score(out, tasks.y_q, tasks.m_q)
        else:
            loss, score = maml.evaluate(model, pd, tasks, steps, lr, inner="maml")
    return Factors(loss.detach().cpu(), score.detach().cpu(), dot, cos, layer_cos, layers)


def _grads_of(forward, p: dict, x, y, loss_fn, keys) -> dict:
    """{name: gradient} of loss_fn(forward(p, x), y) w.r.t. ``p[name]`` for the names in ``keys``
    (zeros for a parameter the loss does not use); no graph is kept."""
    with torch.enable_grad():
        q = {k: v.detach().requires_grad_(True) if k in keys else v.detach() for k, v in p.items()}
        g = torch.autograd.grad(loss_fn(forward(q, x), y), [q[k] for k in keys], allow_unused=True)
    return {k: torch.zeros_like(q[k]) if gk is None else gk for k, gk in zip(keys, g)}


def _adapted(forward, p: dict, x_s, y_s, steps: int, lr: float, keys, loss_fn) -> dict:
    """``p`` after ``steps`` first-order SGD steps of size ``lr`` on one support set, only ``keys`` moving."""
    fast = dict(p)
    for _ in range(steps):
        g = _grads_of(forward, fast, x_s, y_s, loss_fn, keys)
        fast = {k: v - lr * g[k] if k in g else v for k, v in fast.items()}
    return fast


def task_factors(forward, params: dict, support, query, inner_steps: int, inner_lr: float, adapt=None,
                 loss_fn=F.cross_entropy) -> tuple[torch.Tensor, torch.Tensor]:
    """The scheduler's two factors of P tasks for any functional model: (loss (P,), sim (P,)).

    ``forward(params, x) -> outputs`` with ``params`` a {name: tensor} dict (theta_0); ``support`` =
    (x_s (P, Ns, ...), y_s (P, Ns)) and ``query`` = (x_q (P, Nq, ...), y_q (P, Nq)), tasks on the
    leading axis; ``loss_fn(outputs, y)`` is the mean loss of one task's examples (cross-entropy).
    ``adapt``: the names of the parameters the inner loop adapts - None for all of them (MAML), the
    head's names for ANIL (e.g. ("head.weight", "head.bias")); the others stay at theta_0.

    - ``loss``: the query loss after ``inner_steps`` SGD steps of size ``inner_lr`` on the support
      set (the adapted parameters only), first order and without a graph (a score, not a loss to train);
    - ``sim``: the cosine of the gradients of the support and of the query loss w.r.t. *all*
      parameters at theta_0, with no adaptation (the paper's similarity; ``sim_cos`` of ``pool_factors``).

    One task at a time with plain autograd, so any ``forward`` works; both come back on the CPU
    (where ``TaskScheduler`` lives), with no graph to ``params``.
    """
    (x_s, y_s), (x_q, y_q) = support, query
    p = {k: v.detach() for k, v in params.items()}
    keys = list(p)
    unknown = sorted(set(adapt or ()) - set(keys))
    if unknown:
        raise ValueError(f"adapt names {unknown} that are not parameters; allowed: {keys}")
    moving = keys if adapt is None else [k for k in keys if k in set(adapt)]
    g_s, g_q, losses = {k: [] for k in keys}, {k: [] for k in keys}, []
    for t in range(x_s.shape[0]):
        for g, x, y in ((g_s, x_s[t], y_s[t]), (g_q, x_q[t], y_q[t])):
            for k, gk in _grads_of(forward, p, x, y, loss_fn, keys).items():
                g[k].append(gk)
        fast = _adapted(forward, p, x_s[t], y_s[t], inner_steps, inner_lr, moving, loss_fn)
        with torch.no_grad():
            losses.append(loss_fn(forward(fast, x_q[t]), y_q[t]))
    _, cos, _, _ = similarities({k: torch.stack(v) for k, v in g_s.items()}, {k: torch.stack(v) for k, v in g_q.items()})
    return torch.stack(losses).detach().cpu(), cos
