"""One meta-iteration shared by every method: ``meta_step(setup, method, opt, step)``.

It reads top to bottom: pool -> (factors) -> select -> (look-ahead -> reward -> update phi ->
select again, inside ATS) -> update theta -> record. The loop around it (validation, checkpoint
selection, resume, the test) is ``loop.Run``; ``loop.meta_train`` runs one.
"""
from __future__ import annotations

import time

import torch

from . import maml
from .context import StepContext
from .guards import NonFiniteError, check_factors, check_finite
from .metrics import auc
from .setup import Setup


def outer_losses(setup: Setup, ctx, sel, tasks):
    """Query losses of the selected tasks for the real meta-update: (losses, scores, shared).

    With equal weights on pool tasks of which a look-ahead already differentiated some (ATS), the
    per-task meta-gradients of ``ctx.task_grads`` are reused (``shared``); otherwise one batched
    forward whose graph ``apply_update`` differentiates.
    """
    cfg = setup.cfg
    shared = (sel.tasks is None and sel.weights is None and sel.weight_fn is None and sel.focal_gamma == 0
              and ctx.has_task_grads(sel.indices))
    if shared:
        per = ctx.task_grads(sel.indices)
        return torch.stack([l for _, l, _ in per]), torch.stack([s for _, _, s in per]), True
    p = dict(setup.model.named_parameters())
    losses, scores = maml.task_losses(setup.model, p, tasks, cfg.inner_steps, cfg.inner_lr, cfg.inner,
                                      cfg.first_order, focal_gamma=sel.focal_gamma)
    return losses, scores, False


def apply_update(setup: Setup, opt, ctx, sel, losses, shared: bool) -> None:
    """One Adam step of theta on the (weighted) mean query loss of the selected tasks."""
    opt.zero_grad(set_to_none=True)
    if shared:
        for prm, g in zip(setup.model.parameters(), ctx.mean_task_grad(sel.indices)):
            prm.grad = g.clone()
    else:
        w = sel.weights if sel.weights is not None else (
            sel.weight_fn(losses) if sel.weight_fn is not None else torch.full_like(losses, 1.0 / len(losses)))
        (w.detach() * losses).sum().backward()
    opt.step()


def meta_step(setup: Setup, method, opt, step: int) -> tuple[dict, dict | None]:
    """One meta-iteration; returns (history record, pool record or None).

    A NaN/inf in a factor, a reward or the meta-loss raises ``NonFiniteError`` before theta moves
    (``cfg.on_nonfinite == "skip"``: the step is skipped and recorded with ``skipped = 1``).
    """
    cfg, model = setup.cfg, setup.model
    t0 = time.perf_counter()
    ctx = StepContext(setup, step)
    try:
        sel = method.select(ctx)
        f = ctx.cached_factors()
        if f is not None:
            check_factors(step, f)
        if "reward" in sel.info:
            check_finite(step, "reward", sel.info["reward"])
    except NonFiniteError:
        if cfg.on_nonfinite == "stop":
            raise
        return {"step": step, "skipped": 1, "seconds": time.perf_counter() - t0}, None
    t_select = time.perf_counter() - t0
    tasks = sel.tasks if sel.tasks is not None else ctx.pool[sel.indices]
    rec = {"step": step}
    if sel.update:
        losses, scores, shared = outer_losses(setup, ctx, sel, tasks)
        if not torch.isfinite(losses).all():
            if cfg.on_nonfinite == "stop":
                check_finite(step, "meta-training query loss", losses.detach())
            return {"step": step, "skipped": 1, "seconds": time.perf_counter() - t0}, None
        apply_update(setup, opt, ctx, sel, losses, shared)
        if sel.extra_tasks is not None:
            opt.zero_grad(set_to_none=True)
            maml.task_losses(model, dict(model.named_parameters()), sel.extra_tasks, cfg.inner_steps,
                             cfg.inner_lr, cfg.inner, cfg.first_order)[0].mean().backward()
            opt.step()
        method.after_update(ctx, sel)
        rec.update(train_loss=float(losses.detach().mean()), train_acc=float(scores.mean()))
    # diagnostics: the noisy mask is read here, after selection, never by a method (ctx.pool has none);
    # "noisy" in the records means bad: label-noisy or domain-shifted (TaskBatch.bad)
    truth = ctx.composed_truth if sel.tasks is not None else ctx.truth[sel.indices.cpu().tolist()]
    noisy = truth.bad.cpu()
    wts = (sel.weights.detach().cpu() if sel.weights is not None else torch.full((len(noisy),), 1.0 / len(noisy)))
    probs = sel.probs.detach().cpu().float()
    pool_noisy = ctx.truth.bad.cpu()
    rec.update(clean_share=float((wts * (~noisy).float()).sum()), noisy_mass=float(probs[pool_noisy].sum()),
               pool_noisy=float(pool_noisy.float().mean()),
               auc=0.5 if sel.score is None else auc(sel.score.numpy(), ~pool_noisy.numpy()),
               seconds=time.perf_counter() - t0, select_seconds=t_select)
    rec.update({k: v for k, v in sel.info.items() if not k.startswith("_") and isinstance(v, (int, float))})
    pool_rec = None
    if step % cfg.pool_log_every == 0 and ctx.has_factors():
        f = ctx.cached_factors()
        drawn = torch.zeros(len(probs), dtype=torch.bool)
        drawn[sel.indices.cpu()] = True
        pool_rec = {"step": [step] * len(probs), "task": list(range(len(probs))), "prob": probs.tolist(),
                    "noisy": pool_noisy.tolist(), "loss": f.loss.tolist(), "sim_dot": f.sim_dot.tolist(),
                    "sim_cos": f.sim_cos.tolist(), "drawn": drawn.tolist(),
                    **({"kind": ctx.truth.kind.tolist()} if ctx.truth.kind is not None else {}),
                    "score": (sel.score if sel.score is not None else probs).float().tolist()}
    return rec, pool_rec
