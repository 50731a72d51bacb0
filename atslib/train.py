"""The meta-training loop shared by every method: ``meta_train(config, callbacks)``.

One iteration (``meta_step``) reads top to bottom: pool -> (factors) -> select -> (look-ahead ->
reward -> update phi -> select again, inside ATS) -> update theta -> record. Validation on fixed
clean meta-val tasks every ``eval_every`` steps picks the best checkpoint; the final test scores
600 fixed meta-test tasks (their seed is fixed and independent of the run seed, so every run is
scored on the same tasks and runs can be compared task by task).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from . import maml
from .config import Config
from .context import StepContext
from .data import check_task_shape, load_images
from .metrics import auc
from .models import build_model
from .tasks import EpisodeSampler, budget_classes, fixed_tasks, stream


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from .config import ConfigError
        raise ConfigError("--device 'cuda': no CUDA device is available here; allowed: auto, cpu")
    return torch.device(name)


@dataclass
class Setup:
    """Everything a run builds once: data, episode samplers, model, fixed evaluation tasks."""
    cfg: Config
    device: torch.device
    data: object
    model: torch.nn.Module
    train_sampler: EpisodeSampler
    val_sampler: EpisodeSampler
    test_sampler: EpisodeSampler
    train_classes: np.ndarray
    val_fixed: list | None = None
    hard_test_sampler: EpisodeSampler | None = None   # hard meta-test tasks (runs with hard_ratio > 0)


def build_setup(cfg: Config, check_data: bool = True) -> Setup:
    if cfg.dataset == "molecules":
        from .molecules import build_molecule_setup
        return build_molecule_setup(cfg)
    data = load_images(cfg.data)
    if check_data:
        check_task_shape(data, cfg.ways, cfg.shots, cfg.queries, cfg.budget_classes)
    device = resolve_device(cfg.device)
    classes = budget_classes(data, cfg.budget_classes, cfg.budget_seed)
    train = EpisodeSampler(data, "train", cfg.ways, cfg.shots, cfg.queries, cfg.noise_ratio, cfg.flip_prob, classes,
                           noise_on=cfg.noise_on, hard_ratio=cfg.hard_ratio, ood_ratio=cfg.ood_ratio,
                           ood_shift=cfg.ood_shift)
    val = EpisodeSampler(data, "val", cfg.ways, cfg.shots, cfg.queries)
    test = EpisodeSampler(data, "test", cfg.ways, cfg.shots, cfg.queries)
    hard_test = EpisodeSampler(data, "test", cfg.ways, cfg.shots, cfg.queries, hard_ratio=1.0) if cfg.hard_ratio else None
    model = build_model(tuple(data.x.shape[1:]), cfg.ways, cfg.width, cfg.pools,
                        generator=stream(cfg.seed, 0, "model-init")).to(device)
    return Setup(cfg, device, data, model, train, val, test, classes, hard_test_sampler=hard_test)


def val_tasks(setup: Setup) -> list:
    if setup.val_fixed is None:
        setup.val_fixed = [t.to(setup.device) for t in
                           fixed_tasks(setup.val_sampler, setup.cfg.n_val_tasks, setup.cfg.test_seed, "val")]
    return setup.val_fixed


def test_tasks(setup: Setup, hard: bool = False) -> list:
    """The fixed meta-test tasks (``hard``: the hard ones, from mutually confusable meta-test classes)."""
    if hard:
        return fixed_tasks(setup.hard_test_sampler, setup.cfg.n_test_tasks, setup.cfg.test_seed, "test-hard")
    return fixed_tasks(setup.test_sampler, setup.cfg.n_test_tasks, setup.cfg.test_seed, "test")


def evaluate_params(setup: Setup, tasks, steps: int | None = None):
    cfg = setup.cfg
    p = dict(setup.model.named_parameters())
    chunks = [t.to(setup.device) for t in tasks]
    return maml.evaluate(setup.model, p, chunks, steps or cfg.test_inner_steps, cfg.inner_lr, cfg.inner)


class NonFiniteError(RuntimeError):
    """A NaN or inf appeared in a loss, a factor or a reward."""


def check_finite(step: int, name: str, value) -> None:
    t = torch.as_tensor(value, dtype=torch.float64)
    if not torch.isfinite(t).all():
        raise NonFiniteError(f"step {step}: {name} is not finite ({t.flatten()[:4].tolist()}); the last good "
                             f"checkpoint is kept (--on-nonfinite skip skips such steps instead)")


def check_factors(step: int, f):
    """The pool's factors, after checking that each is finite (raises ``NonFiniteError``)."""
    for name in ("loss", "sim_dot", "sim_cos"):
        check_finite(step, f"factor {name}", getattr(f, name))
    return f


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
    # diagnostics (the noisy mask is read here, after selection, never by a method); "noisy" in the
    # records means bad: label-noisy or domain-shifted (TaskBatch.bad)
    noisy = tasks.bad.cpu()
    wts = (sel.weights.detach().cpu() if sel.weights is not None else torch.full((len(noisy),), 1.0 / len(noisy)))
    probs = sel.probs.detach().cpu().float()
    pool_noisy = ctx.pool.bad.cpu()
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
                    **({"kind": ctx.pool.kind.tolist()} if ctx.pool.kind is not None else {}),
                    "score": (sel.score if sel.score is not None else probs).float().tolist()}
    return rec, pool_rec


def init_from(setup: Setup, run_dir) -> None:
    """Start theta from another run's best checkpoint (``--init``)."""
    from .runs import load_torch, check_version
    from pathlib import Path
    check_version(Path(run_dir))
    setup.model.load_state_dict(load_torch(Path(run_dir) / "best.pt")["model"])


def copy_params(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def meta_train(cfg: Config, callbacks=(), out=None, resume: bool = False, overwrite: bool = False, stop=None):
    """Train with ``cfg.method``; write a run directory when ``out`` is given; return the ``Run``.

    ``callbacks``: callables ``cb(record, run)`` called after every step (a dashboard); one that
    returns True, or a set ``stop`` (``threading.Event``), ends training cleanly: the run is
    checkpointed, tested with its best parameters and its summary written.
    """
    from .loop import Run
    run = Run(cfg, out, resume=resume, overwrite=overwrite)
    return run.train(callbacks, stop)


