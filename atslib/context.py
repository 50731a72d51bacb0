"""``StepContext``: what a task-selection method may use at one meta-iteration.

Everything is computed lazily and cached, so a quantity asked for by several consumers in the
same step (the scheduler, a baseline, the pool record) is computed once: the pool's factors, its
gradient-free embeddings, the step's clean reward tasks and their score at theta (the paired
reward's reference). The pool and every generator are functions of (seed, step) alone.
"""
from __future__ import annotations

import torch

from . import maml
from .cheap import cheap_factors
from .features import Factors, pool_factors
from .tasks import stream


class StepContext:
    def __init__(self, setup, step: int):
        cfg = setup.cfg
        self.setup, self.cfg, self.step = setup, cfg, step
        self.model, self.device = setup.model, setup.device
        self.progress = step / max(cfg.steps, 1)
        full = setup.train_sampler.sample(cfg.pool_size, stream(cfg.seed, step, "pool")).to(setup.device)
        self.pool = full.hidden()                 # what methods see: no noisy mask, kinds or clean labels
        self.truth = full.diagnostics()           # what the records score against, read after selection
        self.composed_truth = None                # the same for tasks a method composed (gcp)
        self.pool_size = cfg.pool_size
        self.gen = stream(cfg.seed, step, f"method/{cfg.method}")
        self._cache: dict = {}

    def params(self) -> dict:
        return dict(self.model.named_parameters())

    def _cached(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    # -- pool quantities ----------------------------------------------------------------
    def has_factors(self) -> bool:
        return "factors" in self._cache or "factors_cheap" in self._cache

    def cached_factors(self) -> Factors | None:
        """The factors some consumer already computed this step (full ones first), else None."""
        return self._cache.get("factors", self._cache.get("factors_cheap"))

    def factors(self, cheap: bool = False) -> Factors:
        """Both factors at theta for the whole pool (cheap: head-only, query subsample)."""
        cfg = self.cfg
        if cheap:
            return self._cached("factors_cheap", lambda: cheap_factors(
                self.model, self.params(), self.pool, cfg.inner_steps, cfg.inner_lr, cfg.cheap_queries,
                stream(cfg.seed, self.step, "cheap-subsample")))
        return self._cached("factors", lambda: pool_factors(
            self.model, self.params(), self.pool, cfg.inner_steps, cfg.inner_lr, cfg.inner))

    def losses(self) -> torch.Tensor:
        """Post-adaptation query loss of each pool task (P,), cpu."""
        if "factors" in self._cache:
            return self._cache["factors"].loss
        return self._cached("losses", lambda: maml.evaluate(
            self.model, self.params(), self.pool, self.cfg.inner_steps, self.cfg.inner_lr, self.cfg.inner)[0].cpu())

    def embeddings(self) -> torch.Tensor:
        """Mean backbone feature of each pool task's examples (P, d), cpu."""
        def fn():
            p = {k: v.detach() for k, v in self.params().items()}
            with torch.no_grad():
                f_s, f_q = maml.anil_features(self.model, p, self.pool.x_s, self.pool.x_q)
            f = torch.cat([f_s, f_q], 1)                                   # (P, n, d)
            if self.pool.m_s is None:
                return f.mean(1).cpu()
            m = torch.cat([self.pool.m_s, self.pool.m_q], 1).unsqueeze(-1)  # padded tasks: masked mean
            return ((f * m).sum(1) / m.sum(1)).cpu()
        return self._cached("embeddings", fn)

    # -- validation and look-ahead --------------------------------------------------------
    def reward_tasks(self):
        """V fresh clean meta-val tasks of this step (ATS's reward; uniform-val's extra step)."""
        return self._cached("reward_tasks", lambda: self.setup.val_sampler.sample(
            self.cfg.val_tasks, stream(self.cfg.seed, self.step, "reward")).to(self.device))

    def _val_metric(self, p: dict) -> float:
        loss, score = maml.evaluate(self.model, p, self.reward_tasks(), self.cfg.inner_steps,
                                    self.cfg.inner_lr, self.cfg.inner)
        return float(-loss.mean()) if self.cfg.reward == "loss" else float(score.mean())

    def reward(self, theta_tilde: dict) -> float:
        """R(theta~), minus R(theta) on the same tasks when the reward is paired."""
        r = self._val_metric(theta_tilde)
        if self.cfg.reward_paired:
            r -= self._cached("reward_ref", lambda: self._val_metric(self.params()))
        return r

    def task_grads(self, indices) -> list[tuple]:
        """Per pool task: (meta-gradient of its query loss at theta, loss, score), each computed once.

        A task drawn by several look-aheads and by the real update costs one forward/backward: the
        look-ahead and the real update both differentiate at theta (phi moves in between, theta
        does not), so their per-task meta-gradients are the same tensors.
        """
        cache = self._cache.setdefault("task_grads", {})
        cfg, p = self.cfg, self.params()
        for i in (int(i) for i in indices):
            if i not in cache:
                loss, score = maml.task_losses(self.model, p, self.pool[[i]], cfg.inner_steps, cfg.inner_lr,
                                               cfg.inner, cfg.first_order)
                grads = torch.autograd.grad(loss.sum(), list(p.values()))
                cache[i] = (grads, loss.detach()[0], score[0])
        return [cache[int(i)] for i in indices]

    def has_task_grads(self, indices) -> bool:
        cache = self._cache.get("task_grads", {})
        return any(int(i) in cache for i in indices)

    def mean_task_grad(self, indices) -> list[torch.Tensor]:
        per = [g for g, _, _ in self.task_grads(indices)]
        return [torch.stack(gs).mean(0) for gs in zip(*per)]

    def bounded(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """The look-ahead's meta-gradient with its global L2 norm clipped to ``lookahead_max_norm``.

        Per-draw meta-gradients are heavy-tailed (molecules: usually a norm of 4-30, seen 1.2e5),
        and one plain SGD step along a spike sends theta~ where the inner loop diverges. Clipping
        keeps the direction and bounds the step; the norm before clipping is recorded.
        """
        norm = torch.sqrt(sum((g.detach().double() ** 2).sum() for g in grads))
        self._cache.setdefault("lookahead_norms", []).append(norm)
        limit = self.cfg.lookahead_max_norm
        if not limit:
            return grads
        scale = torch.clamp(limit / (norm + 1e-12), max=1.0).to(grads[0].dtype)
        return [g * scale for g in grads]

    def lookahead_norm(self) -> float | None:
        """Largest look-ahead meta-gradient norm of this step (before clipping), or None."""
        norms = self._cache.get("lookahead_norms")
        return float(torch.stack(norms).max()) if norms else None

    def lookahead(self, indices) -> dict:
        """theta~ = theta - lookahead_lr * (clipped) meta-gradient on pool[indices] (detached)."""
        cfg, p = self.cfg, self.params()
        grads = self.bounded(self.mean_task_grad(indices))
        return {k: v.detach() - cfg.lookahead_lr * g for (k, v), g in zip(p.items(), grads)}

    def val_metric(self, p: dict) -> float:
        """R(p) on this step's reward tasks, unpaired."""
        return self._val_metric(p)

    def lookahead_weighted(self, w: torch.Tensor) -> dict:
        """theta~(w) = theta - lr * grad sum_i w_i L_i, differentiable w.r.t. the weights ``w`` (P,)."""
        cfg, p = self.cfg, self.params()
        losses, _ = maml.task_losses(self.model, p, self.pool, cfg.inner_steps, cfg.inner_lr, cfg.inner,
                                     cfg.first_order)
        grads = self.bounded(torch.autograd.grad((w * losses).sum(), list(p.values()), create_graph=True))
        return {k: v.detach() - cfg.lookahead_lr * g for (k, v), g in zip(p.items(), grads)}

    def val_loss_differentiable(self, theta_tilde: dict) -> torch.Tensor:
        """Mean validation query loss at theta~(w), differentiable w.r.t. w through theta~.

        The inner loop on the validation tasks is first order (its adaptation gradients are
        constants w.r.t. theta~): a second-order inner loop inside a graph that is itself a
        meta-gradient would cost a third derivative. This is a deviation from exact hypergradients.
        """
        cfg = self.cfg
        losses, _ = maml.task_losses(self.model, theta_tilde, self.reward_tasks(), cfg.inner_steps,
                                     cfg.inner_lr, cfg.inner, first_order=True)
        return losses.mean()

    # -- for gcp ----------------------------------------------------------------------------
    def compose(self, classes: torch.Tensor, gen) -> object:
        """Tasks of the given classes (T, N), built by the training sampler from ``gen`` (noise included),
        without their noisy mask (kept in ``composed_truth`` for the records)."""
        full = self.setup.train_sampler.from_classes(classes, gen).to(self.device)
        self.composed_truth = full.diagnostics()
        return full.hidden()

    def adapted_query_probs(self, tasks) -> torch.Tensor:
        cfg = self.cfg
        p = {k: v.detach() for k, v in self.params().items()}
        with torch.no_grad():
            out = (maml.anil_outputs(self.model, p, tasks, cfg.inner_steps, cfg.inner_lr, True) if cfg.inner == "anil"
                   else maml.maml_outputs_loop(self.model, p, tasks, cfg.inner_steps, cfg.inner_lr, True).detach())
        return torch.softmax(out, -1).cpu()
