"""ATS (Yao et al., NeurIPS 2021) and its ablations as task-selection methods.

One ATS step (``ATS.select``), with the pool's factors computed once at theta:
1. logits = g(z(loss), z(sim), progress; phi); draw B tasks without replacement at T = 1 and keep
   the exact log-probability of the draw;
2. temporary meta-model theta~ = theta - lookahead_lr * meta-gradient on the drawn tasks;
3. reward R on V clean validation tasks drawn fresh from the meta-val classes: by default the
   *paired* difference R = L_val(theta) - L_val(theta~) on the same tasks (``reward="loss"``,
   ``reward_paired=True``), whose noise is far lower than that of L_val(theta~) alone (the tasks'
   own difficulty cancels); ``reward="acc"`` uses query accuracy instead;
4. phi <- Adam step on -(R - b) log P(draw; phi) (REINFORCE ascent). The baseline b: by default
   two draws per step scored on the same validation tasks, each the other's baseline
   (leave-one-out; ``draws_per_step``); with one draw, a moving average of past rewards;
5. draw B tasks again with the updated phi at temperature max(T_min, decay^t) for the real update.

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

from .baselines import Method, Selection
from .guards import check_factors, check_finite
from .scheduler import (
    AdvantageBound,
    Baseline,
    SchedulerNet,
    draw,
    entropy,
    reinforce_loss,
    standardize,
)
from .tasks import stream


class ATS(Method):
    name = "ats"

    def __init__(self, cfg, setup, factors=("loss", "sim"), train_phi: bool = True, zero_output: bool = True):
        """``factors``: the scheduler's inputs ("loss", "sim"); ``train_phi``: REINFORCE updates phi;
        ``zero_output``: phi starts exactly uniform (a random phi otherwise). The ablations of
        ``registry.SPECS`` are these parameters."""
        super().__init__(cfg, setup)
        bad = sorted(set(factors) - {"loss", "sim"})
        if bad or not factors:
            raise ValueError(f"ATS factors {tuple(factors)!r}; allowed: a non-empty subset of ('loss', 'sim')")
        self.columns = tuple(factors)
        self.net = SchedulerNet(len(self.columns), cfg.scheduler_hidden,
                                generator=stream(cfg.seed, 0, "scheduler-init"), zero_output=zero_output)
        # phi lives on the CPU whatever theta's device: a 2-layer MLP over P rows is dozens of tiny
        # kernels (and host syncs in the draw) on a GPU; its inputs, the factors, are already on the CPU
        self.device = torch.device("cpu")
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.scheduler_lr)
        self.baseline = Baseline(cfg.baseline_momentum)
        self.bound = AdvantageBound(cfg.adv_clip, cfg.adv_reject)
        self.train_phi = train_phi

    # -- pieces ------------------------------------------------------------------------
    def inputs(self, f) -> torch.Tensor:
        cols = {"loss": f.loss, "sim": f.sim_cos}
        z = standardize if self.cfg.zscore_factors else (lambda v: v)
        return torch.stack([z(cols[c]) for c in self.columns], 1).to(self.device)

    def temperature(self, step: int) -> float:
        return max(self.cfg.temperature, self.cfg.temperature_decay ** step)

    def factors(self, ctx):
        return ctx.factors()

    def train_scheduler(self, ctx, x) -> dict:
        """Steps 1-4: one REINFORCE update of phi; returns scalars for the record.

        With ``draws_per_step`` k >= 2 the scheduler draws k times, builds k look-ahead models and
        scores them on the *same* validation tasks; each draw's advantage is its reward minus the
        mean reward of the other draws (leave-one-out baseline). Everything the draws share - the
        validation tasks' difficulty, the size of this step's gradients, the drift of rewards as
        theta trains - cancels. With k = 1 the baseline is the moving average of past rewards,
        which lags a reward that shrinks as theta improves: the advantage then keeps one sign for
        long stretches and REINFORCE locks in an arbitrary direction (measured: noise AUC 0.09).
        """
        k = self.cfg.draws_per_step
        logits = self.net(x, ctx.progress)
        draws = [draw(logits, self.cfg.meta_batch, ctx.gen, 1.0) for _ in range(k)]
        # with k >= 2 the paired reference R(theta) cancels in every leave-one-out advantage: skip it
        score = ctx.val_metric if k >= 2 else ctx.reward
        rewards = [score(ctx.lookahead(d.indices)) for d in draws]
        check_finite(ctx.step, "reward", rewards)       # before phi moves
        if k == 1:
            advs = [rewards[0] - self.baseline.value if self.baseline.count else 0.0]
        else:
            total = sum(rewards)
            advs = [r - (total - r) / (k - 1) for r in rewards]
        raw, advs = advs, self.bound(advs)
        info = {"reward": sum(rewards) / k, "advantage_raw": raw[0], "lookahead_norm": ctx.lookahead_norm()}
        if advs is None:   # an absurd advantage (a look-ahead model diverged): phi learns nothing from this step
            return {**info, "phi_skipped": 1}
        self.baseline.update(rewards[0] if k == 1 else total / k)
        self.opt.zero_grad(set_to_none=True)
        loss = sum(reinforce_loss(d.log_prob, a) for d, a in zip(draws, advs)) / k
        loss.backward()
        self.opt.step()
        return {**info, "advantage": advs[0], "baseline": self.baseline.value,
                "log_prob": float(draws[0].log_prob.detach())}

    def select(self, ctx):
        x = self.inputs(check_factors(ctx.step, self.factors(ctx)))
        info = self.train_scheduler(ctx, x) if self.train_phi and self.should_train(ctx) else {}
        with torch.no_grad():
            logits = self.net(x, ctx.progress)
        T = self.temperature(ctx.step)
        d = draw(logits, self.cfg.meta_batch, ctx.gen, T)
        info.update(temperature=T, entropy=entropy(d.probs))
        return Selection(d.indices, d.probs.cpu(), score=logits.cpu(), update=ctx.step >= self.cfg.warmup, info=info)

    def should_train(self, ctx) -> bool:
        return True

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self):
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "baseline": self.baseline.state_dict(),
                "bound": self.bound.state_dict()}

    def load_state_dict(self, d):
        self.net.load_state_dict(d["net"])
        self.opt.load_state_dict(d["opt"])
        self.baseline.load_state_dict(d["baseline"])
        self.bound.load_state_dict(d.get("bound", {}))


class CheapATS(ATS):
    """ATS at a fraction of the cost: cheap factors every step, scheduler updates every k steps."""

    name = "ats-cheap"

    def factors(self, ctx):
        return ctx.factors(cheap=True)

    def should_train(self, ctx) -> bool:
        return ctx.step % self.cfg.cheap_every == 0


class ATSReweight(ATS):
    name = "ats-reweight"

    def select(self, ctx):
        x = self.inputs(check_factors(ctx.step, ctx.factors()))
        info = {}
        w = torch.softmax(self.net(x, ctx.progress), 0)                    # (P,), cpu
        val_loss = ctx.val_loss_differentiable(ctx.lookahead_weighted(w.to(ctx.device)))
        check_finite(ctx.step, "validation loss of the weighted look-ahead", val_loss.detach())  # before phi moves
        grads = torch.autograd.grad(val_loss, list(self.net.parameters()))
        check_finite(ctx.step, "scheduler gradient", torch.cat([g.flatten() for g in grads]).detach())
        self.opt.zero_grad(set_to_none=True)
        for prm, g in zip(self.net.parameters(), grads):
            prm.grad = g
        self.opt.step()
        info["val_loss"] = float(val_loss.detach())
        with torch.no_grad():
            logits = self.net(x, ctx.progress)
            w = torch.softmax(logits, 0)
        info["entropy"] = entropy(w)
        info["lookahead_norm"] = ctx.lookahead_norm()
        if self.cfg.reweight_update == "all":                            # every pool task, weighted
            idx, wts = torch.arange(ctx.pool_size), w
        else:                                                            # B tasks, as every other method
            idx = torch.topk(w, self.cfg.meta_batch).indices
            wts = w[idx] / w[idx].sum()
        return Selection(idx, w, score=logits, weights=wts.to(ctx.device),
                         update=ctx.step >= self.cfg.warmup, info=info)
