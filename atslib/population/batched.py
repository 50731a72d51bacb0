"""The batchable model maths over a leading run axis: one program for R runs' parameters.

A population (``atslib.population``) stacks the R runs' parameters on a leading axis,
{name: (R, ...)}, and runs each waiting call of one kind for all runs at once:

- the backbone through ``torch.func.vmap`` over the run axis (a convolution with per-run weights
  becomes one grouped convolution, a linear layer one batched matrix product);
- ANIL's head adaptation for all runs' tasks at once (``maml.head_outputs`` on R x T head copies);
- gradients w.r.t. a stacked leaf, whose slice r is run r's gradient: runs share no term, so the
  gradient of the sum of the runs' losses is each run's own.

Registered here (``lockstep.register``): ``evaluate`` (no graph), ``pool_factors`` (both ATS
factors), ``task_grad`` (one task's meta-gradient per run) and ``update`` (theta's Adam step: the
main thread computes each run's gradient, and each run steps its own optimizer in its own thread,
``_update_finish``; a run whose loss is not finite gets its own ``NonFiniteError`` and does not
move). These functions only compute: none changes a run's state. Calls batch together when
their shapes and inner-loop settings agree; the MAML inner loop is not batched here (it runs run
by run, with the same numbers).
"""
from __future__ import annotations

import torch
from torch.func import vmap

from .. import maml
from ..features import Factors, similarities
from ..guards import NonFiniteError, check_finite
from ..models import ConvNet
from .lockstep import register
from ..tasks import TaskBatch

HEAD = ("head.weight", "head.bias")
FEATURES: str | None = None          # run_features' path for every population (None: by device)


def stacked(ps: list[dict], leaf: bool = True) -> dict:
    """{name: (R, ...)} of R parameter dicts; ``leaf``: a detached leaf that requires grad."""
    out = {k: torch.stack([p[k].detach() for p in ps]) for k in ps[0]}
    return {k: v.requires_grad_(True) for k, v in out.items()} if leaf else out


def run_features(model, P: dict, x: torch.Tensor, how: str | None = None) -> torch.Tensor:
    """Backbone features of each run's examples through its own parameters: x (R, n, ...) -> (R, n, d).

    ``how``: "vmap" (``torch.func.vmap`` over the run axis), "grouped" (the conv-4 written by hand
    as grouped convolutions over R x C channels) or "loop" (run by run). None picks by device
    (``BENCHMARKS.md``): on a CPU the loop is fastest (a grouped convolution is slower there than
    R plain ones: R = 16, forward and backward, loop 0.79 s, grouped 1.43 s, vmap 3.12 s), on a GPU
    one grouped program replaces R launches.
    """
    how = how or FEATURES
    if how is None:
        how = "loop" if x.device.type == "cpu" else ("grouped" if isinstance(model, ConvNet) else "vmap")
    if how == "vmap":
        return vmap(model.features)(P, x)
    if how == "grouped":
        return grouped_features(model, P, x)
    if how == "loop":
        return torch.stack([model.features({k: v[r] for k, v in P.items()}, x[r]) for r in range(x.shape[0])])
    raise ValueError(f"how={how!r}; allowed: vmap, grouped, loop")


def grouped_features(model: ConvNet, P: dict, x: torch.Tensor) -> torch.Tensor:
    """The conv-4 of R runs as one network of R x C channels in R groups (``ConvNet.features`` with
    ``runs=R``): x (R, n, C, H, W) -> (R, n, d)."""
    if not isinstance(model, ConvNet):
        raise ValueError(f"grouped features are for the conv-4, not {type(model).__name__}")
    R, n = x.shape[:2]
    h = x.transpose(0, 1).reshape(n, R * x.shape[2], *x.shape[3:])
    f = model.features({k: v.flatten(0, 1) for k, v in P.items() if not k.startswith("head.")}, h, runs=R)
    return f.reshape(n, R, -1).transpose(0, 1)


def head_copies(P: dict, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each run's head repeated for its T tasks: (R*T, o, d), (R*T, o), run-major."""
    return tuple(P[k].unsqueeze(1).expand(P[k].shape[0], T, *P[k].shape[1:]).reshape(-1, *P[k].shape[1:])
                 for k in HEAD)


def outputs(model, P: dict, parts: list[TaskBatch], steps: int, lr: float, first_order: bool = False):
    """ANIL query outputs (R*T, nq, o) of run r's parameters on run r's tasks ``parts[r]`` (T each)."""
    R, T = len(parts), len(parts[0])
    ns = parts[0].x_s.shape[1]
    x = torch.stack([torch.cat([t.x_s.flatten(0, 1), t.x_q.flatten(0, 1)]) for t in parts])
    f = run_features(model, P, x)                                      # (R, T*(ns+nq), d)
    f_s = f[:, : T * ns].reshape(R * T, ns, -1)
    f_q = f[:, T * ns:].reshape(R * T, -1, f.shape[-1])
    W, b = head_copies(P, T)
    return maml.head_outputs(W, b, f_s, f_q, torch.cat([t.y_s for t in parts]), _cat_mask([t.m_s for t in parts]),
                             steps, lr, first_order)


def _cat_mask(masks):
    return None if masks[0] is None else torch.cat(masks)


def _sig(t: TaskBatch) -> tuple:
    """What tasks of different runs must share to batch: shapes, label type, padding, device."""
    return (len(t), tuple(t.x_s.shape), tuple(t.x_q.shape), t.y_s.dtype, t.m_s is None, t.m_q is None,
            str(t.x_s.device))


def _model_sig(model, p: dict) -> tuple:
    return (type(model).__name__, getattr(model, "groups", None), getattr(model, "pools", None),
            tuple((k, tuple(v.shape)) for k, v in p.items()))


def _chunks(tasks) -> list:
    return list(tasks) if isinstance(tasks, (list, tuple)) else [tasks]


# -- evaluate: per-task (loss, score), no graph ---------------------------------------------------
def _evaluate_key(req):
    a = req.arguments
    if a["inner"] != "anil":
        return None
    return (_model_sig(a["model"], a["p"]), a["steps"], a["lr"], a["chunk"], tuple(_sig(c) for c in _chunks(a["task_chunks"])))


def _evaluate(reqs):
    a = [r.arguments for r in reqs]
    model, steps, lr = a[0]["model"], a[0]["steps"], a[0]["lr"]
    P = stacked([x["p"] for x in a], leaf=False)
    lists = [_chunks(x["task_chunks"]) for x in a]
    R = len(a)
    size = max(1, a[0]["chunk"] * 4 // R)          # about 4 single-run chunks of tasks per program
    losses, scores = [[] for _ in a], [[] for _ in a]
    for c in range(len(lists[0])):
        n = len(lists[0][c])
        for s in range(0, n, size):
            idx = list(range(s, min(s + size, n)))
            parts = [lst[c][idx] for lst in lists]
            with torch.no_grad():
                out = outputs(model, P, parts, steps, lr, first_order=True)
            y, m = torch.cat([t.y_q for t in parts]), _cat_mask([t.m_q for t in parts])
            lo, sc = maml.task_loss(out, y, mask=m).view(R, -1), maml.task_score(out, y, m).view(R, -1)
            for r in range(R):
                losses[r].append(lo[r])
                scores[r].append(sc[r])
    return [(torch.cat(lo), torch.cat(sc)) for lo, sc in zip(losses, scores)]


# -- pool factors: per-task support and query gradients at theta, post-adaptation loss ------------
def _factors_key(req):
    a = req.arguments
    if a["inner"] != "anil":
        return None
    return (_model_sig(a["model"], a["p"]), a["steps"], a["lr"], _sig(a["tasks"]))


def _per_task_grads(model, P: dict, pools: list[TaskBatch], side: str):
    """Per run, {name: (T, ...)} gradients of each task's ``side`` ("s"/"q") loss at theta, no
    adaptation; and the features (R, T, n, d)."""
    grads, feats = {k: [] for k in P}, []
    for t in range(len(pools[0])):
        x = torch.stack([getattr(p, f"x_{side}")[t] for p in pools])            # (R, n, ...)
        y = torch.stack([getattr(p, f"y_{side}")[t] for p in pools])
        m = getattr(pools[0], f"m_{side}")
        m = None if m is None else torch.stack([getattr(p, f"m_{side}")[t] for p in pools])
        with torch.enable_grad():
            f = run_features(model, P, x)                                           # (R, n, d)
            out = maml._linear(P["head.weight"], P["head.bias"], f)                 # (R, n, o)
            g = torch.autograd.grad(maml.task_loss(out, y, mask=m).sum(), list(P.values()))
        for k, gk in zip(P, g):
            grads[k].append(gk)
        feats.append(f.detach())
    R = len(pools)
    per_run = [{k: torch.stack([gt[r] for gt in v]) for k, v in grads.items()} for r in range(R)]
    return per_run, torch.stack(feats, 1)


def _pool_factors(reqs):
    a = [r.arguments for r in reqs]
    model, steps, lr = a[0]["model"], a[0]["steps"], a[0]["lr"]
    pools = [x["tasks"] for x in a]
    P = stacked([x["p"] for x in a])
    g_s, f_s = _per_task_grads(model, P, pools, "s")
    g_q, f_q = _per_task_grads(model, P, pools, "q")
    R, T = f_s.shape[:2]
    with torch.no_grad():
        W, b = head_copies({k: v.detach() for k, v in P.items()}, T)
        out = maml.head_outputs(W, b, f_s.flatten(0, 1), f_q.flatten(0, 1), torch.cat([p.y_s for p in pools]),
                                _cat_mask([p.m_s for p in pools]), steps, lr, first_order=True)
        y, m = torch.cat([p.y_q for p in pools]), _cat_mask([p.m_q for p in pools])
        loss, score = maml.task_loss(out, y, mask=m).view(R, T), maml.task_score(out, y, m).view(R, T)
    results = []
    for r in range(R):
        dot, cos, layer_cos, layers = similarities(g_s[r], g_q[r])
        results.append(Factors(loss[r].cpu(), score[r].cpu(), dot, cos, layer_cos, layers))
    return results


# -- task_grad: one task's meta-gradient per run --------------------------------------------------
def _cfg_key(cfg) -> tuple:
    return (cfg.inner, cfg.inner_steps, cfg.inner_lr, cfg.first_order)


def _task_grad_key(req):
    a = req.arguments
    if a["cfg"].inner != "anil":
        return None
    return (_model_sig(a["model"], a["p"]), _cfg_key(a["cfg"]), _sig(a["task"]))


def _task_grad(reqs):
    a = [r.arguments for r in reqs]
    model, cfg = a[0]["model"], a[0]["cfg"]
    P = stacked([x["p"] for x in a])
    parts = [x["task"] for x in a]
    out = outputs(model, P, parts, cfg.inner_steps, cfg.inner_lr, cfg.first_order)
    y, m = torch.cat([t.y_q for t in parts]), _cat_mask([t.m_q for t in parts])
    loss = maml.task_loss(out, y, mask=m)                                   # (R,) one task per run
    score = maml.task_score(out.detach(), y, m)
    g = torch.autograd.grad(loss.sum(), list(P.values()))
    return [(tuple(gk[r] for gk in g), loss.detach()[r], score[r]) for r in range(len(a))]


# -- update: theta's Adam step on each run's tasks ------------------------------------------------
def _update_key(req):
    a = req.arguments
    state, inputs = a["state"], a["inputs"]           # step.update's arguments, by name
    if inputs.cfg.inner != "anil" or a["weights"] is not None:
        return None
    return (_model_sig(state.model, dict(state.model.named_parameters())), _cfg_key(inputs.cfg), _sig(a["tasks"]), a["focal_gamma"],
            a["weight_fn"])


def _update(reqs):
    a = [r.arguments for r in reqs]
    cfg = a[0]["inputs"].cfg
    models = [x["state"].model for x in a]
    P = stacked([dict(m.named_parameters()) for m in models])
    parts = [x["tasks"] for x in a]
    R, B = len(parts), len(parts[0])
    out = outputs(models[0], P, parts, cfg.inner_steps, cfg.inner_lr, cfg.first_order)
    y, m = torch.cat([t.y_q for t in parts]), _cat_mask([t.m_q for t in parts])
    losses = maml.task_loss(out, y, a[0]["focal_gamma"], m).view(R, B)
    scores = maml.task_score(out.detach(), y, m).view(R, B)
    results, ok, total = [None] * R, [], 0.0
    for r, x in enumerate(a):
        try:
            check_finite(x["inputs"].step, "meta-training query loss", losses[r].detach())
        except NonFiniteError as e:
            results[r] = e
            continue
        wf = x["weight_fn"]
        w = wf(losses[r]) if wf is not None else torch.full_like(losses[r], 1.0 / B)
        total = total + (w.detach() * losses[r]).sum()
        ok.append(r)
    if ok:
        g = torch.autograd.grad(total, list(P.values()))
        for r in ok:
            results[r] = (losses[r], scores[r], tuple(gk[r].clone() for gk in g))
    return results


def _update_finish(req, result):
    """In the run's own thread: its Adam steps on its gradient (as ``step.update`` would)."""
    losses, scores, grads = result
    state = req.arguments["state"]
    state.opt.zero_grad(set_to_none=True)
    for prm, g in zip(state.model.parameters(), grads):
        prm.grad = g
    state.opt.step()
    return losses, scores


register("evaluate", _evaluate_key, _evaluate)
register("pool_factors", _factors_key, _pool_factors)
register("task_grad", _task_grad_key, _task_grad)
register("update", _update_key, _update, _update_finish)

__all__ = ["stacked", "run_features", "head_copies", "outputs"]
