"""The baselines: task-selection methods with one protocol, ``step(state, inputs) -> Outcome``.

A method's step selects tasks from ``inputs.pool`` (the step's P candidate tasks, the same for every
method, without their noisy mask) and updates theta itself with ``step.update``; its own
randomness comes from ``inputs.gen``, a generator of its own (seed, step) stream. ATS and its variants
are in ``atslib.ats``; ``registry.SPECS`` names them all.

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
- ``rank-sim-loss``: no network, the top B of z(sim_cos) - z(loss) (Proposition 1 of the paper);
  ``rank-sim+loss`` the top B of z(sim_cos) + z(loss): hard and aligned tasks, the other sign.
- ``oracle-clean``: B of the pool's clean tasks, uniformly (all of them and uniform noisy ones when
  fewer than B are clean). It alone reads the hidden truth (``inputs.oracle_truth``): the ceiling of
  dropping noisy tasks, never a baseline.
- ``paml`` and ``gcp``: see their classes.
"""
from __future__ import annotations

import torch

from . import maml
from .scheduler import draw, standardize
from .step import Outcome, factors_of, params, pool_losses, update


def uniform_pick(inputs) -> torch.Tensor:
    return torch.randperm(inputs.pool_size, generator=inputs.gen)[: inputs.cfg.meta_batch]


def uniform_probs(inputs) -> torch.Tensor:
    return torch.full((inputs.pool_size,), 1.0 / inputs.pool_size)


class Method:
    name = "base"

    def __init__(self, cfg, setup, **params):
        if params:
            raise TypeError(f"{type(self).__name__} takes no parameters, got {sorted(params)}")
        self.cfg = cfg

    def step(self, state, inputs) -> Outcome:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, d: dict) -> None:
        pass


class Uniform(Method):
    name = "uniform"

    def step(self, state, inputs):
        idx = uniform_pick(inputs)
        losses, scores = update(state, inputs, inputs.pool[idx])
        return Outcome(idx, uniform_probs(inputs), losses=losses, scores=scores)


class UniformVal(Method):
    name = "uniform-val"

    def step(self, state, inputs):
        idx = uniform_pick(inputs)
        losses, scores = update(state, inputs, inputs.pool[idx])
        update(state, inputs, inputs.reward_tasks())                  # the extra step on clean meta-val tasks
        return Outcome(idx, uniform_probs(inputs), losses=losses, scores=scores)


class SelfPaced(Method):
    name = "spl"
    start_fraction = 0.3

    def step(self, state, inputs):
        loss = pool_losses(state, inputs)
        P, B = inputs.pool_size, self.cfg.meta_batch
        keep = max(B, int(round(P * (self.start_fraction + (1 - self.start_fraction) * inputs.progress))))
        easy = torch.argsort(loss)[:keep]
        pick = easy[torch.randperm(keep, generator=inputs.gen)[:B]]
        probs = torch.zeros(P)
        probs[easy] = 1.0 / keep
        losses, scores = update(state, inputs, inputs.pool[pick])
        return Outcome(pick, probs, score=-loss, losses=losses, scores=scores, info={"spl_keep": keep})


class Focal(Method):
    name = "focal"
    gamma = 2.0

    def step(self, state, inputs):
        idx = uniform_pick(inputs)
        losses, scores = update(state, inputs, inputs.pool[idx], focal_gamma=self.gamma)
        return Outcome(idx, uniform_probs(inputs), losses=losses, scores=scores)


def daml_weights(losses: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    w = (1 - torch.exp(-losses.detach())).pow(gamma)
    return w / w.sum().clamp_min(1e-12)


class DAML(Method):
    name = "daml"

    def step(self, state, inputs):
        idx = uniform_pick(inputs)
        losses, scores = update(state, inputs, inputs.pool[idx], weight_fn=daml_weights)
        return Outcome(idx, uniform_probs(inputs), losses=losses, scores=scores)


class RankSimLoss(Method):
    """No network: rank the pool by z(sim_cos) - z(loss) and take the top B.

    Proposition 1 of the paper: the meta-loss under a scheduler improves when probabilities are
    positively correlated with the gradient similarity and negatively with the loss. The cosine is
    used rather than the raw inner product because its scale does not drift with the gradient norm.
    ``loss_sign=+1`` (``rank-sim+loss``) ranks by z(sim_cos) + z(loss) instead: the hard, aligned
    tasks the paper finds useful under a limited budget.
    """

    name = "rank-sim-loss"

    def __init__(self, cfg, setup, loss_sign: float = -1.0):
        super().__init__(cfg, setup)
        self.loss_sign = float(loss_sign)

    def step(self, state, inputs):
        fac = factors_of(state, inputs)
        score = standardize(fac.sim_cos) + self.loss_sign * standardize(fac.loss)
        idx = torch.topk(score, self.cfg.meta_batch).indices
        probs = torch.zeros(inputs.pool_size)
        probs[idx] = 1.0 / self.cfg.meta_batch
        idx = idx.to(inputs.setup.device)
        losses, scores = update(state, inputs, inputs.pool[idx])
        return Outcome(idx, probs, score=score, factors=fac, losses=losses, scores=scores)


class OracleClean(Method):
    """B of the pool's clean tasks, uniformly: the ceiling of a scheduler that drops noisy tasks."""

    name = "oracle-clean"

    def step(self, state, inputs):
        bad = inputs.oracle_truth.bad.cpu()
        clean, noisy = torch.nonzero(~bad).flatten(), torch.nonzero(bad).flatten()
        B = self.cfg.meta_batch
        pick = clean[torch.randperm(len(clean), generator=inputs.gen)[:B]]
        if len(pick) < B:                                   # fewer than B clean tasks in the pool
            pick = torch.cat([pick, noisy[torch.randperm(len(noisy), generator=inputs.gen)[: B - len(pick)]]])
        probs = torch.zeros(inputs.pool_size)
        if len(clean):
            probs[clean] = 1.0 / len(clean)
        else:
            probs[pick] = 1.0 / B
        idx = pick.to(inputs.setup.device)
        losses, scores = update(state, inputs, inputs.pool[idx])
        return Outcome(idx, probs, losses=losses, scores=scores)


def embeddings(model, pool) -> torch.Tensor:
    """Mean backbone feature of each task's examples (P, d), cpu (padded tasks: a masked mean)."""
    p = {k: v.detach() for k, v in params(model).items()}
    with torch.no_grad():
        f_s, f_q = maml.anil_features(model, p, pool.x_s, pool.x_q)
    f = torch.cat([f_s, f_q], 1)                                   # (P, n, d)
    if pool.m_s is None:
        return f.mean(1).cpu()
    m = torch.cat([pool.m_s, pool.m_q], 1).unsqueeze(-1)
    return ((f * m).sum(1) / m.sum(1)).cpu()


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

    def step(self, state, inputs):
        emb = embeddings(state.model, inputs.pool)                      # (P, d) cpu
        if self.bank is None or len(self.bank) == 0:
            novelty = torch.zeros(len(emb))
        else:
            novelty = torch.cdist(emb, self.bank).min(1).values
        d = draw(self.beta * standardize(novelty), self.cfg.meta_batch, inputs.gen)
        chosen = emb[d.indices.cpu()]
        self.bank = chosen if self.bank is None else torch.cat([self.bank, chosen])[-self.memory:]
        losses, scores = update(state, inputs, inputs.pool[d.indices])
        return Outcome(d.indices, d.probs.cpu(), score=novelty, losses=losses, scores=scores)

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

    def step(self, state, inputs):
        B = self.cfg.meta_batch
        local = torch.stack([self._compose(inputs.gen) for _ in range(B)])        # (B, N) local class ids
        tasks = inputs.compose(self.classes[local])
        losses, scores = update(state, inputs, tasks)
        self._learn_confusions(state, tasks, local)
        return Outcome(torch.arange(B), uniform_probs(inputs), composed=True, losses=losses, scores=scores)

    def _learn_confusions(self, state, tasks, local) -> None:
        """C's update from the adapted query predictions of the tasks just trained on."""
        cfg, N = self.cfg, self.cfg.ways
        p = {k: v.detach() for k, v in params(state.model).items()}
        with torch.no_grad():
            out = (maml.anil_outputs(state.model, p, tasks, cfg.inner_steps, cfg.inner_lr, True) if cfg.inner == "anil"
                   else maml.maml_outputs_loop(state.model, p, tasks, cfg.inner_steps, cfg.inner_lr, True).detach())
        probs = torch.softmax(out, -1).cpu()                                 # (B, N*Q, N)
        y = tasks.y_q.cpu()
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


__all__ = ["Method", "Uniform", "UniformVal", "SelfPaced", "Focal", "DAML", "RankSimLoss", "PAML", "GCP", "daml_weights",
           "uniform_pick", "uniform_probs", "embeddings"]
