"""Task-selection methods behind one protocol: ``select(ctx) -> Selection``.

``ctx`` (a ``context.StepContext``) gives the step's pool of P candidate tasks - a function of
(seed, step) alone, identical for every method - and lazily computed, cached quantities (the ATS
factors, the clean reward tasks of this step, look-ahead helpers). A method's own randomness comes
from ``ctx.gen``, a generator of its own (seed, step) stream. ``ctx.pool`` carries no noisy mask,
task kinds or clean labels (they are ``None``): no method can read them.

Baselines (our reading is stated where the papers leave room):
- ``uniform``: B pool tasks uniformly without replacement.
- ``uniform-val``: uniform, plus one extra meta-gradient step on the same V clean meta-val tasks
  that ATS consumes for its reward at that step - the control for ATS's use of validation data.
- ``spl`` (self-paced learning, Kumar et al. 2010): keep the easiest fraction of the pool by
  post-adaptation query loss, a fraction growing linearly from 0.3 to 1 over training, and draw B
  of those uniformly.
- ``focal`` (Lin et al. 2017): uniform tasks, query loss replaced by the focal loss (gamma 2).
- ``daml`` (difficulty-aware meta-learning, Li et al. 2020): uniform tasks, each task's query loss
  weighted by (1 - exp(-L_i))^2 (detached, normalised): harder tasks weigh more.
- ``paml`` and ``gcp``: see their classes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .scheduler import draw, standardize


@dataclass
class Selection:
    indices: torch.Tensor                   # (B,) pool indices used for the meta-update
    probs: torch.Tensor                     # (P,) sampling probabilities (or weights) over the pool
    score: torch.Tensor | None = None       # (P,) ranking score for the noise AUC (None: 0.5 by construction)
    weights: torch.Tensor | None = None     # (B,) task weights of the outer loss (None: equal)
    weight_fn: object = None                # callable(losses (B,)) -> weights, from detached losses
    focal_gamma: float = 0.0
    tasks: object = None                    # a TaskBatch replacing pool[indices] (gcp)
    extra_tasks: object = None              # clean tasks for an extra meta-step (uniform-val)
    update: bool = True                     # False during the scheduler's warm-up
    info: dict = field(default_factory=dict)


def uniform_pick(ctx) -> torch.Tensor:
    return torch.randperm(ctx.pool_size, generator=ctx.gen)[: ctx.cfg.meta_batch]


class Method:
    name = "base"
    trains_on_val = False

    def __init__(self, cfg, setup, **params):
        if params:
            raise TypeError(f"{type(self).__name__} takes no parameters, got {sorted(params)}")
        self.cfg = cfg

    def select(self, ctx) -> Selection:
        raise NotImplementedError

    def after_update(self, ctx, sel: Selection) -> None:
        """Called after the real meta-update (gcp updates its class-pair potentials here)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, d: dict) -> None:
        pass


class Uniform(Method):
    name = "uniform"

    def select(self, ctx):
        P = ctx.pool_size
        return Selection(uniform_pick(ctx), torch.full((P,), 1.0 / P))


class UniformVal(Uniform):
    name = "uniform-val"
    trains_on_val = True

    def select(self, ctx):
        sel = super().select(ctx)
        sel.extra_tasks = ctx.reward_tasks()
        return sel


class SelfPaced(Method):
    name = "spl"
    start_fraction = 0.3

    def select(self, ctx):
        loss = ctx.losses()
        P, B = ctx.pool_size, self.cfg.meta_batch
        keep = max(B, int(round(P * (self.start_fraction + (1 - self.start_fraction) * ctx.progress))))
        easy = torch.argsort(loss)[:keep]
        pick = easy[torch.randperm(keep, generator=ctx.gen)[:B]]
        probs = torch.zeros(P)
        probs[easy] = 1.0 / keep
        return Selection(pick, probs, score=-loss, info={"spl_keep": keep})


class Focal(Uniform):
    name = "focal"
    gamma = 2.0

    def select(self, ctx):
        sel = super().select(ctx)
        sel.focal_gamma = self.gamma
        return sel


def daml_weights(losses: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    w = (1 - torch.exp(-losses.detach())).pow(gamma)
    return w / w.sum().clamp_min(1e-12)


class DAML(Uniform):
    name = "daml"

    def select(self, ctx):
        sel = super().select(ctx)
        sel.weight_fn = daml_weights
        return sel


class PAML(Method):
    """Probabilistic active meta-learning (Kaddour et al. 2020), our reading.

    PAML embeds tasks in a learned latent space and prefers tasks far from those already learnt.
    We embed a task by the mean backbone feature of its support and query examples (the
    meta-model's own representation stands in for PAML's variational task encoder), keep the
    embeddings of the last ``memory`` trained tasks, score each pool task by its distance to the
    nearest remembered one (novelty), and draw B tasks from softmax(beta * z(novelty)).
    """

    name = "paml"
    memory, beta = 50, 3.0

    def __init__(self, cfg, setup):
        super().__init__(cfg, setup)
        self.bank = None

    def select(self, ctx):
        emb = ctx.embeddings()                                    # (P, d) cpu
        if self.bank is None or len(self.bank) == 0:
            novelty = torch.zeros(len(emb))
        else:
            novelty = torch.cdist(emb, self.bank).min(1).values
        d = draw(self.beta * standardize(novelty), self.cfg.meta_batch, ctx.gen)
        chosen = emb[d.indices.cpu()]
        self.bank = chosen if self.bank is None else torch.cat([self.bank, chosen])[-self.memory:]
        return Selection(d.indices, d.probs.cpu(), score=novelty)

    def state_dict(self):
        return {"bank": self.bank}

    def load_state_dict(self, d):
        self.bank = d.get("bank")


class GCP(Method):
    """Greedy class-pair sampling (Liu et al. 2020, "Adaptive task sampling for meta-learning").

    A potential C[i, j] >= 0 per pair of meta-train classes measures how often the meta-model
    confuses them. A task is composed greedily: the first two classes with probability
    proportional to C[i, j], then each further class c with probability proportional to the
    product of C[c, chosen] over the classes chosen so far. After each meta-update, C is updated on
    the trained tasks from the adapted query predictions: C[i, j] <- (1 - rho) C[i, j] +
    rho * mean p(j | x) over query images x of class i (symmetrised; rho = 0.5, floor 1e-3).
    The ``B`` tasks are built from the chosen classes by the training sampler with the method's own
    stream: images, which tasks are noisy (at the run's noise ratio) and their label flips - the
    same noise rate as every other method's pool, and no look at the pool's noisy mask.
    """

    name = "gcp"
    rho, floor = 0.5, 1e-3

    def __init__(self, cfg, setup):
        super().__init__(cfg, setup)
        self.classes = torch.as_tensor(setup.train_classes)       # dataset ids of meta-train classes
        n = len(self.classes)
        self.C = torch.ones(n, n) - torch.eye(n)

    def _compose(self, g) -> torch.Tensor:
        ways, n = self.cfg.ways, len(self.classes)
        flat = torch.multinomial(self.C.flatten(), 1, generator=g).item()
        chosen = [flat // n, flat % n]
        while len(chosen) < ways:
            w = torch.prod(self.C[chosen], 0)
            w[chosen] = 0
            w = w if w.sum() > 0 else torch.ones(n).index_fill_(0, torch.tensor(chosen), 0.0)
            chosen.append(torch.multinomial(w / w.sum(), 1, generator=g).item())
        return torch.tensor(chosen)

    def select(self, ctx):
        B = self.cfg.meta_batch
        local = torch.stack([self._compose(ctx.gen) for _ in range(B)])        # (B, N) local ids
        tasks = ctx.compose(self.classes[local], ctx.gen)
        P = ctx.pool_size
        return Selection(torch.arange(B), torch.full((P,), 1.0 / P), tasks=tasks, info={"_local": local})

    def after_update(self, ctx, sel):
        probs = ctx.adapted_query_probs(sel.tasks)                  # (B, N*Q, N)
        local = sel.info.pop("_local")
        N = self.cfg.ways
        y = sel.tasks.y_q.cpu()
        for b in range(len(local)):
            conf = torch.zeros(N, N)
            conf.index_add_(0, y[b], probs[b])
            conf = conf / torch.bincount(y[b], minlength=N).clamp_min(1).unsqueeze(1)
            conf = 0.5 * (conf + conf.T)
            ii, jj = torch.meshgrid(local[b], local[b], indexing="ij")
            off = ~torch.eye(N, dtype=torch.bool)
            self.C[ii[off], jj[off]] = ((1 - self.rho) * self.C[ii[off], jj[off]] + self.rho * conf[off]).clamp_min(self.floor)

    def state_dict(self):
        return {"C": self.C}

    def load_state_dict(self, d):
        self.C = d["C"]


class RankSimLoss(Method):
    """No network: rank the pool by z(sim_cos) - z(loss) and take the top B.

    Proposition 1 of the paper: the meta-loss under a scheduler improves when probabilities are
    positively correlated with the gradient similarity and negatively with the loss. The cosine is
    used rather than the raw inner product because its scale does not drift with the gradient norm.
    """

    name = "rank-sim-loss"

    def select(self, ctx):
        f = ctx.factors()
        score = standardize(f.sim_cos) - standardize(f.loss)
        idx = torch.topk(score, self.cfg.meta_batch).indices
        probs = torch.zeros(ctx.pool_size)
        probs[idx] = 1.0 / self.cfg.meta_batch
        return Selection(idx.to(ctx.device), probs, score=score)
