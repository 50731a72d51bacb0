"""ATS (Yao et al., NeurIPS 2021) and its ablations as task-selection methods.

One ATS step (``ATS.step``), with the pool's factors computed once at theta:
1. logits = g(z(loss), z(sim), progress; phi); draw B tasks without replacement at T = 1 and keep
   the exact log-probability of the draw;
2. temporary meta-model theta~ = theta - lookahead_lr * meta-gradient on the drawn tasks;
3. reward R on V clean validation tasks drawn fresh from the meta-val classes: by default the
   *paired* difference R = L_val(theta) - L_val(theta~) on the same tasks (``reward="loss"``,
   ``reward_paired=True``), whose noise is far lower than that of L_val(theta~) alone (the tasks'
   own difficulty cancels); ``reward="acc"`` uses query accuracy instead;
4. phi <- Adam step on -(R - b) log P(draw; phi) (REINFORCE ascent). The baseline b: by default
   two draws per step scored on the same validation tasks, each the other's baseline
   (leave-one-out; ``draws_per_step``); with one draw, a moving average of past rewards
   (``scheduler.TaskScheduler``: phi, its Adam, the baselines and the advantage bound);
5. draw B tasks again with the updated phi at temperature max(T_min, decay^t);
6. theta's real update on them (reusing the look-aheads' per-task meta-gradients).

Ablations: ``ats-random-phi`` never trains phi; ``ats-loss-only`` / ``ats-sim-only`` feed one
factor; ``ats-reweight`` does not sample: the look-ahead uses all P tasks with weights w = softmax(g), and
phi is trained by back-propagating the validation loss of theta~(w) = theta - lr * sum_i w_i
grad L_i(theta) to phi (no draw, so no log-probability; the validation inner loop is first order).
The real update uses the top-B tasks by weight, renormalised (``reweight_update="top"``, the same
batch as every other method) or all P (``"all"``, the authors' variant).

Safeguards (``Config``): the look-ahead's meta-gradient is clipped to ``lookahead_max_norm``;
advantages are winsorised at ``adv_clip`` x their running scale, and at a step with one beyond
``adv_reject`` x (a look-ahead model diverged) phi does not update (``phi_skipped``), while theta's
update goes on; a non-finite reward stops or skips the step (``on_nonfinite``); the factors are
checked before phi sees them. ``warmup`` steps train phi while theta's updates are not applied
(the authors' warm-up).
``ats-cheap`` scores the pool from one gradient-free backbone pass on a query subsample (head-only
similarity) and runs steps 2-4 only every ``cheap_every`` steps.
"""
from __future__ import annotations

import torch

from . import maml
from .baselines import Method
from .guards import check_finite
from .scheduler import TaskScheduler, entropy
from .step import (
    Outcome,
    TaskGrads,
    bounded,
    factors_of,
    lookahead,
    params,
    update,
    update_from_grads,
    val_metric,
)
from .tasks import stream


class ATS(Method):
    name = "ats"
    # None, or hook(part, fn, *args) -> fn(*args): runs each part of ``step`` ("factors", "lookahead",
    # "validation", "update"), observing it (``study.bench.ats_parts`` times them); it changes no number
    part_hook = None

    def __init__(self, cfg, setup, factors=("loss", "sim"), train_phi: bool = True, zero_output: bool = True):
        """``factors``: the scheduler's inputs ("loss", "sim"); ``train_phi``: REINFORCE updates phi;
        ``zero_output``: phi starts exactly uniform (a random phi otherwise). The ablations of
        ``registry.SPECS`` are these parameters."""
        super().__init__(cfg, setup)
        # phi lives on the CPU whatever theta's device: a 2-layer MLP over P rows is dozens of tiny
        # kernels (and host syncs in the draw) on a GPU; its inputs, the factors, are already on the CPU
        self.sched = TaskScheduler(factors, cfg.scheduler_hidden, cfg.scheduler_lr,
                                   generator=stream(cfg.seed, 0, "scheduler-init"), momentum=cfg.baseline_momentum,
                                   adv_clip=cfg.adv_clip, adv_reject=cfg.adv_reject, zscore=cfg.zscore_factors,
                                   zero_output=zero_output, temperature=cfg.temperature,
                                   temperature_decay=cfg.temperature_decay)
        self.columns = self.sched.factors
        self.train_phi = train_phi

    # phi, its Adam, the reward baseline and the advantage bound live in the scheduler
    net = property(lambda self: self.sched.net)
    opt = property(lambda self: self.sched.opt)
    baseline = property(lambda self: self.sched.baseline)
    bound = property(lambda self: self.sched.bound)

    def step(self, state, inputs):
        """One iteration of the paper's Algorithm 1, top to bottom."""
        cfg = self.cfg
        fac = self._part("factors", self.factors, state, inputs)  # both factors of every pool task at theta
        feats = self.scheduler_inputs(fac)
        grads = TaskGrads(state.model, inputs.pool, cfg)                     # per-task meta-gradients, each taken once
        info = self.train_scheduler(state, inputs, feats, grads) if self.train_phi and self.should_train(inputs) else {}
        T = self.temperature(inputs.step)
        with torch.no_grad():                                           # the real draw, with the updated phi
            d = self.sched.draw_inputs(feats, cfg.meta_batch, inputs.progress, T, inputs.gen)
        out = Outcome(d.indices, d.probs.cpu(), score=d.logits.cpu(), factors=fac,
                      info={**info, "temperature": T, "entropy": entropy(d.probs)})
        if inputs.step >= cfg.warmup:                                        # theta's update (not during the warm-up)
            out.losses, out.scores = self._part("update", self.update_theta, state, inputs, d.indices, grads)
        return out

    def _part(self, part: str, fn, *args):
        return fn(*args) if self.part_hook is None else self.part_hook(part, fn, *args)

    # -- the pieces, in the order the step uses them ------------------------------------------
    def factors(self, state, inputs):
        return factors_of(state, inputs)

    def scheduler_inputs(self, fac) -> torch.Tensor:
        return self.sched.inputs(fac.loss, fac.sim_cos)

    def should_train(self, inputs) -> bool:
        return True

    def train_scheduler(self, state, inputs, feats, grads) -> dict:
        """Draws, look-aheads, rewards and one REINFORCE update of phi; returns scalars for the record.

        With ``draws_per_step`` k >= 2 the scheduler draws k times, builds k look-ahead models and
        scores them on the *same* validation tasks; each draw's advantage is its reward minus the
        mean reward of the other draws (leave-one-out baseline). Everything the draws share - the
        validation tasks' difficulty, the size of this step's gradients, the drift of rewards as
        theta trains - cancels. With k = 1 the baseline is the moving average of past rewards,
        which lags a reward that shrinks as theta improves: the advantage then keeps one sign for
        long stretches and REINFORCE locks in an arbitrary direction (measured: noise AUC 0.09).
        """
        cfg, k = self.cfg, self.cfg.draws_per_step
        draws = self.sched.draw_inputs(feats, cfg.meta_batch, inputs.progress, 1.0, inputs.gen, n=k)
        val = inputs.reward_tasks()
        looks = [self._part("lookahead", self.lookahead, state, grads, d.indices) for d in draws]
        rewards = [self._part("validation", self.score, state, theta_tilde, val) for theta_tilde, _ in looks]
        if k == 1 and cfg.reward_paired:          # R(theta~) - R(theta) on the same tasks (k >= 2: it cancels)
            rewards = [r - self._part("validation", self.score, state, params(state.model), val) for r in rewards]
        check_finite(inputs.step, "reward", rewards)                          # before phi moves
        up = self.sched.update(draws, rewards)                           # baselines, bound, REINFORCE
        info = {"reward": sum(rewards) / k, "advantage_raw": up["advantages_raw"][0],
                "lookahead_norm": float(torch.stack([n for _, n in looks]).max())}
        if up["skipped"]:   # an absurd advantage (a look-ahead model diverged): phi learns nothing from this step
            return {**info, "phi_skipped": 1}
        return {**info, "advantage": up["advantages"][0], "baseline": up["baseline"],
                "log_prob": float(draws[0].log_prob.detach())}

    def lookahead(self, state, grads, indices) -> tuple[dict, torch.Tensor]:
        """(theta~ = theta - lookahead_lr * the drawn tasks' clipped mean meta-gradient, its norm before clipping)."""
        g, norm = bounded(grads.mean(indices), self.cfg.lookahead_max_norm)
        return lookahead(state.model, g, self.cfg.lookahead_lr), norm

    def score(self, state, p, tasks) -> float:
        return val_metric(state.model, p, tasks, self.cfg)

    def temperature(self, step: int) -> float:
        return self.sched.temperature(step)

    def update_theta(self, state, inputs, indices, grads):
        """theta's update on the drawn tasks: from the look-aheads' per-task meta-gradients where
        they took any, else in one batched pass."""
        if grads.has_any(indices):
            return update_from_grads(state, inputs, grads, indices)
        return update(state, inputs, inputs.pool[indices])

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self):
        return self.sched.state_dict()          # keys "net", "opt", "baseline", "bound", as checkpoints hold them

    def load_state_dict(self, d):
        self.sched.load_state_dict(d)


class CheapATS(ATS):
    """ATS at a fraction of the cost: cheap factors every step, scheduler updates every k steps."""

    name = "ats-cheap"

    def factors(self, state, inputs):
        return factors_of(state, inputs, cheap=True)

    def should_train(self, inputs) -> bool:
        return inputs.step % self.cfg.cheap_every == 0


class ATSReweight(ATS):
    """No draw: phi's weights over the whole pool enter a differentiable look-ahead."""

    name = "ats-reweight"

    def step(self, state, inputs):
        cfg, model = self.cfg, state.model
        fac = self._part("factors", self.factors, state, inputs)
        feats = self.scheduler_inputs(fac)
        w = torch.softmax(self.net(feats, inputs.progress), 0)                       # (P,), cpu
        theta_tilde, norm = self.weighted_lookahead(state, inputs, w.to(inputs.setup.device))
        val_loss = maml.task_losses(model, theta_tilde, inputs.reward_tasks(), cfg.inner_steps, cfg.inner_lr, cfg.inner,
                                    first_order=True)[0].mean()
        check_finite(inputs.step, "validation loss of the weighted look-ahead", val_loss.detach())   # before phi moves
        grads = torch.autograd.grad(val_loss, list(self.net.parameters()))
        check_finite(inputs.step, "scheduler gradient", torch.cat([g.flatten() for g in grads]).detach())
        self.opt.zero_grad(set_to_none=True)
        for prm, g in zip(self.net.parameters(), grads):
            prm.grad = g
        self.opt.step()
        with torch.no_grad():
            logits = self.net(feats, inputs.progress)
            w = torch.softmax(logits, 0)
        if cfg.reweight_update == "all":                                 # every pool task, weighted
            idx, wts = torch.arange(inputs.pool_size), w
        else:                                                            # B tasks, as every other method
            idx = torch.topk(w, cfg.meta_batch).indices
            wts = w[idx] / w[idx].sum()
        wts = wts.to(inputs.setup.device)
        out = Outcome(idx, w, score=logits, weights=wts, factors=fac,
                      info={"val_loss": float(val_loss.detach()), "entropy": entropy(w), "lookahead_norm": float(norm)})
        if inputs.step >= cfg.warmup:
            out.losses, out.scores = update(state, inputs, inputs.pool[idx], weights=wts)
        return out

    def weighted_lookahead(self, state, inputs, w: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """theta~(w) = theta - lr * grad sum_i w_i L_i, differentiable w.r.t. the weights ``w`` (P,).

        The validation loss of theta~(w) is taken with a first-order inner loop (its adaptation
        gradients are constants w.r.t. theta~): a second-order inner loop inside a graph that is
        itself a meta-gradient would cost a third derivative. A deviation from exact hypergradients.
        """
        cfg, p = self.cfg, params(state.model)
        losses, _ = maml.task_losses(state.model, p, inputs.pool, cfg.inner_steps, cfg.inner_lr, cfg.inner, cfg.first_order)
        grads, norm = bounded(torch.autograd.grad((w * losses).sum(), list(p.values()), create_graph=True),
                              cfg.lookahead_max_norm)
        return {k: v.detach() - cfg.lookahead_lr * g for (k, v), g in zip(p.items(), grads)}, norm


__all__ = ["ATS", "CheapATS", "ATSReweight"]
