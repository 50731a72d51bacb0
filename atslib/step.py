"""One meta-iteration: ``meta_step(setup, state, step) -> (record, pool record)``.

A run's state (``State``) is theta (the model's parameters), theta's Adam, and the method, which
holds its own state (ATS: phi, phi's Adam, the reward baseline; SPL: nothing; GCP: its class-pair
potentials; PAML: its memory). ``meta_step``

1. draws the step's pool of P candidate tasks, a function of (seed, step) alone - the same for
   every method - and hands the method a view of it without the noisy mask (``StepInputs``);
2. calls the method's ``step(state, inputs)``, which selects tasks and updates theta itself,
   reading top to bottom, through the shared plain functions of this module;
3. records what the step did (``Outcome``) against the pool's truth, which no method sees.

Everything here is plain PyTorch. A population of runs (``atslib.population``) trains with this
very code: while it trains, it substitutes batched versions for the model maths (``task_grad``,
``update``, ``features.pool_factors``, ``maml.evaluate``) and a step counter around ``meta_step``
(``atslib.population.lockstep``); nothing here knows of it.

A NaN or inf in a factor, a reward or a meta-loss raises ``guards.NonFiniteError`` before the
parameters it would corrupt move; ``Config.on_nonfinite`` then stops the run or skips the step.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from . import maml
from .cheap import cheap_factors
from .features import Factors, pool_factors
from .guards import NonFiniteError, check_factors, check_finite
from .metrics import auc
from .registry import SPECS
from .setup import Setup
from .tasks import TaskBatch, stream


@dataclass
class State:
    """What a run carries from one step to the next (with the step counter, kept by ``loop.Run``)."""
    model: torch.nn.Module              # theta
    opt: torch.optim.Optimizer          # theta's Adam
    method: object                      # the task-selection method and its own state


@dataclass
class StepInputs:
    """What a method may use at one step: the pool without its noisy mask, task kinds or clean
    labels, and a generator of the method's own (seed, step) stream."""
    setup: Setup
    step: int
    pool: TaskBatch
    gen: torch.Generator
    composed_truth: TaskBatch | None = None     # set by ``compose`` (gcp), read by the records only
    oracle_truth: TaskBatch | None = None       # the pool's truth, given to an oracle method only (registry)

    @property
    def cfg(self):
        return self.setup.cfg

    @property
    def progress(self) -> float:
        return self.step / max(self.cfg.steps, 1)

    @property
    def pool_size(self) -> int:
        return len(self.pool)

    def reward_tasks(self) -> TaskBatch:
        """V fresh clean meta-val tasks of this step (ATS's reward, uniform-val's extra step)."""
        cfg = self.cfg
        return self.setup.val_sampler.sample(cfg.val_tasks, stream(cfg.seed, self.step, "reward")).to(self.setup.device)

    def compose(self, classes: torch.Tensor) -> TaskBatch:
        """Tasks of the given classes (T, N), built by the training sampler from this step's
        generator (noise included), handed back without their noisy mask."""
        full = self.setup.train_sampler.from_classes(classes, self.gen).to(self.setup.device)
        self.composed_truth = full.diagnostics()
        return full.hidden()


@dataclass
class Outcome:
    """What a method's step did, for the records."""
    indices: torch.Tensor                  # (B,) pool indices trained on (composed tasks: 0..B-1)
    probs: torch.Tensor                    # (P,) sampling probabilities (or weights) over the pool
    score: torch.Tensor | None = None      # (P,) ranking score for the noise AUC (None: 0.5 by construction)
    weights: torch.Tensor | None = None    # (B,) weights of the outer loss (None: equal)
    composed: bool = False                 # trained on tasks the method composed (gcp), not pool tasks
    factors: Factors | None = None         # the pool's factors, where the method computed them
    losses: torch.Tensor | None = None     # (B,) query losses of the update (None: no update this step)
    scores: torch.Tensor | None = None     # (B,) their accuracies
    info: dict = field(default_factory=dict)


# -- shared pieces ------------------------------------------------------------------------------
def params(model) -> dict:
    return dict(model.named_parameters())


def factors_of(state: State, inputs: StepInputs, cheap: bool = False) -> Factors:
    """Both ATS factors of every pool task at theta, checked finite (cheap: head-only, query subsample)."""
    cfg, model = inputs.cfg, state.model
    if cheap:
        fac = cheap_factors(model, params(model), inputs.pool, cfg.inner_steps, cfg.inner_lr, cfg.cheap_queries,
                          stream(cfg.seed, inputs.step, "cheap-subsample"))
    else:
        fac = pool_factors(model, params(model), inputs.pool, cfg.inner_steps, cfg.inner_lr, cfg.inner)
    return check_factors(inputs.step, fac)


def pool_losses(state: State, inputs: StepInputs) -> torch.Tensor:
    """Post-adaptation query loss of each pool task at theta (P,), cpu, no graph."""
    cfg = inputs.cfg
    return maml.evaluate(state.model, params(state.model), inputs.pool, cfg.inner_steps, cfg.inner_lr, cfg.inner)[0].cpu()


def val_metric(model, p: dict, tasks: TaskBatch, cfg) -> float:
    """The reward's metric of parameters ``p`` on ``tasks``: -loss (``reward="loss"``) or accuracy."""
    loss, score = maml.evaluate(model, p, tasks, cfg.inner_steps, cfg.inner_lr, cfg.inner)
    return float(-loss.mean()) if cfg.reward == "loss" else float(score.mean())


def bounded(grads: list[torch.Tensor], max_norm: float) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(grads with their global L2 norm clipped to ``max_norm`` (0: unbounded), the norm before).

    Per-draw meta-gradients are heavy-tailed (molecules: usually a norm of 4-30, seen 1.2e5), and
    one plain SGD step along a spike sends the look-ahead model where the inner loop diverges.
    Clipping keeps the direction and bounds the step.
    """
    norm = torch.sqrt(sum((g.detach().double() ** 2).sum() for g in grads))
    if not max_norm:
        return grads, norm
    scale = torch.clamp(max_norm / (norm + 1e-12), max=1.0).to(grads[0].dtype)
    return [g * scale for g in grads], norm


def lookahead(model, grads: list[torch.Tensor], lr: float) -> dict:
    """The temporary meta-model theta~ = theta - lr * grads (detached)."""
    return {k: v.detach() - lr * g for (k, v), g in zip(params(model).items(), grads)}


def task_grad(model, p: dict, task: TaskBatch, cfg) -> tuple:
    """(meta-gradient of one task's query loss after adaptation w.r.t. ``p``, the loss, its accuracy)."""
    loss, score = maml.task_losses(model, p, task, cfg.inner_steps, cfg.inner_lr, cfg.inner, cfg.first_order)
    grads = torch.autograd.grad(loss.sum(), list(p.values()))
    return grads, loss.detach()[0], score[0]


class TaskGrads:
    """Per pool task, (meta-gradient of its query loss at theta, loss, accuracy), each computed once.

    A task drawn by several look-aheads and by the real update costs one forward/backward: all of
    them differentiate at the same theta (phi moves in between, theta does not).
    """

    def __init__(self, model, pool: TaskBatch, cfg):
        self.model, self.pool, self.cfg, self.cache = model, pool, cfg, {}

    def get(self, indices) -> list[tuple]:
        for i in (int(i) for i in indices):
            if i not in self.cache:
                self.cache[i] = task_grad(self.model, params(self.model), self.pool[[i]], self.cfg)
        return [self.cache[int(i)] for i in indices]

    def has_any(self, indices) -> bool:
        return any(int(i) in self.cache for i in indices)

    def mean(self, indices) -> list[torch.Tensor]:
        return [torch.stack(gs).mean(0) for gs in zip(*(g for g, _, _ in self.get(indices)))]


def update(state: State, inputs: StepInputs, tasks: TaskBatch, weights: torch.Tensor | None = None,
           weight_fn=None, focal_gamma: float = 0.0):
    """theta's real update: one Adam step on the (weighted, by default equally) mean query loss of
    ``tasks`` after inner-loop adaptation; returns (losses, accuracies), (B,) each."""
    cfg, model = inputs.cfg, state.model
    losses, scores = maml.task_losses(model, params(model), tasks, cfg.inner_steps, cfg.inner_lr, cfg.inner,
                                      cfg.first_order, focal_gamma=focal_gamma)
    check_finite(inputs.step, "meta-training query loss", losses.detach())
    w = weights if weights is not None else (
        weight_fn(losses) if weight_fn is not None else torch.full_like(losses, 1.0 / len(losses)))
    state.opt.zero_grad(set_to_none=True)
    (w.detach() * losses).sum().backward()
    state.opt.step()
    return losses, scores


def update_from_grads(state: State, inputs: StepInputs, grads: TaskGrads, indices):
    """theta's real update from the per-task meta-gradients a look-ahead already took (equal weights)."""
    per = grads.get(indices)
    losses, scores = torch.stack([l for _, l, _ in per]), torch.stack([s for _, _, s in per])
    check_finite(inputs.step, "meta-training query loss", losses)
    state.opt.zero_grad(set_to_none=True)
    for prm, g in zip(state.model.parameters(), grads.mean(indices)):
        prm.grad = g.clone()
    state.opt.step()
    return losses, scores


# -- the meta-iteration ---------------------------------------------------------------------------
def step_inputs(setup: Setup, step: int) -> tuple[StepInputs, TaskBatch]:
    """(what the method sees at ``step``, the pool's truth): the pool is a function of (seed, step)."""
    cfg = setup.cfg
    full = setup.train_sampler.sample(cfg.pool_size, stream(cfg.seed, step, "pool")).to(setup.device)
    truth = full.diagnostics()
    oracle = truth if SPECS[cfg.method].oracle else None
    return StepInputs(setup, step, full.hidden(), stream(cfg.seed, step, f"method/{cfg.method}"), oracle_truth=oracle), truth


def meta_step(setup: Setup, state: State, step: int) -> tuple[dict, dict | None]:
    """One meta-iteration; returns (history record, pool record or None)."""
    t0 = time.perf_counter()
    inputs, truth = step_inputs(setup, step)
    try:
        out = state.method.step(state, inputs)
    except NonFiniteError:
        if setup.cfg.on_nonfinite == "stop":
            raise
        return {"step": step, "skipped": 1, "seconds": time.perf_counter() - t0}, None
    return record(out, truth, inputs, time.perf_counter() - t0)


def record(out: Outcome, truth: TaskBatch, inputs: StepInputs, seconds: float) -> tuple[dict, dict | None]:
    """The step's history record and (every ``pool_log_every`` steps, where the method computed the
    pool's factors) its pool record. "noisy" means bad: label-noisy or domain-shifted (``TaskBatch.bad``)."""
    cfg, step = inputs.cfg, inputs.step
    rec = {"step": step}
    if out.losses is not None:
        rec.update(train_loss=float(out.losses.detach().mean()), train_acc=float(out.scores.mean()))
    trained = inputs.composed_truth if out.composed else truth[out.indices.cpu().tolist()]
    noisy = trained.bad.cpu()
    wts = out.weights.detach().cpu() if out.weights is not None else torch.full((len(noisy),), 1.0 / len(noisy))
    probs = out.probs.detach().cpu().to(torch.get_default_dtype())   # float32 runs: as computed
    pool_noisy = truth.bad.cpu()
    rec.update(clean_share=float((wts * (~noisy).float()).sum()), noisy_mass=float(probs[pool_noisy].sum()),
               pool_noisy=float(pool_noisy.float().mean()),
               auc=0.5 if out.score is None else auc(out.score.numpy(), ~pool_noisy.numpy()), seconds=seconds)
    rec.update({k: v for k, v in out.info.items() if isinstance(v, (int, float))})
    if step % cfg.pool_log_every or out.factors is None:
        return rec, None
    f = out.factors
    drawn = torch.zeros(len(probs), dtype=torch.bool)
    drawn[out.indices.cpu()] = True
    pool_rec = {"step": [step] * len(probs), "task": list(range(len(probs))), "prob": probs.tolist(),
                "noisy": pool_noisy.tolist(), "loss": f.loss.tolist(), "sim_dot": f.sim_dot.tolist(),
                "sim_cos": f.sim_cos.tolist(), "drawn": drawn.tolist(),
                "score": (out.score if out.score is not None else probs).to(probs.dtype).tolist(),
                **({"kind": truth.kind.tolist()} if truth.kind is not None else {})}
    return rec, pool_rec


__all__ = ["State", "StepInputs", "Outcome", "meta_step", "step_inputs", "record", "params", "factors_of", "pool_losses", "val_metric",
           "bounded", "lookahead", "TaskGrads", "task_grad", "update", "update_from_grads"]
