"""The neural task scheduler of ATS, exact without-replacement sampling, REINFORCE.

``SchedulerNet`` maps each pool task's factors (and training progress) to one logit. Each task is
encoded on its own, then sees a *set context*: the mean encoding of the **other** tasks of the pool
(leave-one-out), so a task's probability depends on how it compares with its competitors. The
authors' release sums its context over the feature axis instead of the task axis, so no task ever
sees another; we pool over tasks, as the paper's description intends.

``draw`` samples B distinct tasks from softmax(logits / T) sequentially (Plackett-Luce, via the
Gumbel-top-k trick) and returns the **exact** log-probability of the ordered draw,
log P = sum_k [s_{i_k} - logsumexp(s over the tasks not drawn before step k)], s = logits / T.
(The release scores a without-replacement draw as if it were B independent draws.) Nothing is
stored on any object: the call returns indices, log-probability and probabilities.

REINFORCE (Williams 1992): the scheduler ascends E[R] with the surrogate loss
-(R - b) * log P(draw; phi). The baseline ``b`` depends on how many draws a step scores
(``TaskScheduler.update``): with two or more (``Config.draws_per_step=2``, the default) each draw's
baseline is the mean reward of the *other* draws of the same step (leave-one-out); only with a
single draw per step is it the moving average of past rewards (``Baseline``). Advantages are then
bounded on a running scale (``AdvantageBound``).

``TaskScheduler`` bundles these pieces - phi, its Adam, the draw, the baseline, the bound and the
REINFORCE step - for any training loop (``examples/ats_anil.py``); ``atslib.ats.ATS`` uses it.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


class SchedulerNet(nn.Module):
    """g(factors, progress; phi) -> logits (P,). ``n_in`` = factor columns (progress is added).

    The output layer starts at zero, so a fresh scheduler is exactly uniform: a random initial
    ranking would otherwise be amplified by the real draw's low temperature before REINFORCE has
    had time to correct it (``zero_output=False`` keeps a random one, for ``ats-random-phi``).
    """

    def __init__(self, n_in: int, hidden: int = 32, generator: torch.Generator | None = None,
                 zero_output: bool = True):
        super().__init__()
        self.encode = nn.Sequential(nn.Linear(n_in + 1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.score = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        if generator is not None:
            with torch.no_grad():
                for prm in self.parameters():
                    prm.copy_((torch.rand(prm.shape, generator=generator) * 2 - 1) / max(1, prm.shape[-1]) ** 0.5)
        if zero_output:  # start exactly uniform: no arbitrary initial preference to unlearn
            with torch.no_grad():
                self.score[-1].weight.zero_()
                self.score[-1].bias.zero_()

    def forward(self, x: torch.Tensor, progress: float) -> torch.Tensor:
        """x (P, n_in) -> logits (P,)."""
        P = x.shape[0]
        h = self.encode(torch.cat([x, x.new_full((P, 1), progress)], 1))          # (P, H)
        ctx = (h.sum(0, keepdim=True) - h) / max(P - 1, 1)                          # mean of the others
        return self.score(torch.cat([h, ctx], 1)).squeeze(1)


@dataclass
class Draw:
    indices: torch.Tensor     # (B,) in draw order
    log_prob: torch.Tensor    # () exact log-probability of the ordered draw (differentiable)
    probs: torch.Tensor       # (P,) softmax(logits / T)
    logits: torch.Tensor | None = None   # (P,) the scores before the temperature (set by ``TaskScheduler``)


def plackett_luce_log_prob(logits: torch.Tensor, indices: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log P(indices drawn in this order without replacement) under softmax(logits / T)."""
    s = logits / temperature
    taken = torch.zeros_like(s, dtype=torch.bool)
    logp = s.new_zeros(())
    for i in indices.tolist():
        remaining = s.masked_fill(taken, float("-inf"))
        logp = logp + s[i] - torch.logsumexp(remaining, 0)
        taken = taken.clone()
        taken[i] = True
    return logp


def draw(logits: torch.Tensor, k: int, generator: torch.Generator, temperature: float = 1.0) -> Draw:
    """Sample ``k`` distinct indices from softmax(logits / T), with the draw's exact log-probability."""
    if not 1 <= k <= logits.shape[0]:
        raise ValueError(f"cannot draw {k} of {logits.shape[0]} tasks")
    s = (logits / temperature).detach().double().cpu()
    u = torch.rand(s.shape, generator=generator, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
    keys = s - torch.log(-torch.log(u))                    # Gumbel-top-k == sequential PL sampling
    # finite keys even for -inf logits: they sort last and are drawn only when nothing else is left
    keys = torch.nan_to_num(keys, nan=-1e300, neginf=-1e300)
    idx = torch.topk(keys, k).indices.to(logits.device)
    return Draw(idx, plackett_luce_log_prob(logits, idx, temperature), F.softmax(logits.detach() / temperature, 0))


def entropy(probs: torch.Tensor) -> float:
    p = probs.clamp_min(1e-30)
    return float(-(p * p.log()).sum())


def standardize(x: torch.Tensor) -> torch.Tensor:
    """z-score within the pool (0 when the pool has no spread)."""
    sd = x.std(unbiased=False)
    return (x - x.mean()) / sd if sd > 1e-12 else torch.zeros_like(x)


class Baseline:
    """Moving average of rewards: b <- m b + (1 - m) R (the first reward initialises it)."""

    def __init__(self, momentum: float = 0.9):
        self.momentum, self.value, self.count = momentum, 0.0, 0

    def advantage(self, reward: float) -> float:
        """R - b with the current b (0 before the first reward); b does not change."""
        return reward - self.value if self.count else 0.0

    def update(self, reward: float) -> float:
        """Return the advantage R - b (b before this reward), then fold R into b."""
        adv = self.advantage(reward)
        self.value = reward if self.count == 0 else self.momentum * self.value + (1 - self.momentum) * reward
        self.count += 1
        return adv

    def state_dict(self):
        return {"value": self.value, "count": self.count}

    def load_state_dict(self, d):
        self.value, self.count = float(d["value"]), int(d["count"])


class AdvantageBound:
    """Winsorise advantages on a running scale; flag the absurd ones.

    The scale is the median |advantage| of the last ``window`` finite ones (robust to the spikes it
    guards against). An advantage beyond ``clip`` x scale is cut to that bound; one beyond
    ``reject`` x scale is reported as an outlier (``None``): the caller learns nothing from it.
    Until ``min_count`` advantages were seen the scale is unknown and only the finiteness check
    applies. ``clip = 0`` / ``reject = 0`` turn a bound off.
    """

    def __init__(self, clip: float = 5.0, reject: float = 1e6, window: int = 100, min_count: int = 5):
        self.clip, self.reject, self.window, self.min_count = clip, reject, window, min_count
        self.history: list[float] = []

    def scale(self) -> float | None:
        nz = [h for h in self.history if h > 0]
        return float(statistics.median(nz)) if len(nz) >= self.min_count else None

    def __call__(self, advantages: list[float]) -> list[float] | None:
        """Bounded advantages, or None when one is an outlier (nothing is recorded then)."""
        s = self.scale()
        if s is not None and self.reject and any(abs(a) > self.reject * s for a in advantages):
            return None
        self.history = (self.history + [abs(float(a)) for a in advantages])[-self.window:]
        if s is None or not self.clip:
            return list(advantages)
        c = self.clip * s
        return [max(-c, min(c, float(a))) for a in advantages]

    def state_dict(self):
        return {"history": list(self.history)}

    def load_state_dict(self, d):
        self.history = [float(h) for h in d.get("history", [])]


def reinforce_loss(log_prob: torch.Tensor, advantage: float) -> torch.Tensor:
    """Surrogate whose gradient *descent* is REINFORCE *ascent* on the reward."""
    return -advantage * log_prob


FACTORS = ("loss", "sim")     # the scheduler's possible inputs: post-adaptation query loss, gradient similarity


class TaskScheduler:
    """ATS's adaptive task scheduler as a drop-in piece of any meta-training loop.

    It holds phi (``SchedulerNet``), phi's Adam, the moving-average ``Baseline`` and the
    ``AdvantageBound``; the defaults are those of ``atslib.Config``. One step of a loop::

        loss, sim = task_factors(...)                              # (P,) each, the pool at theta
        draws = sched.draw(loss, sim, B, progress=t / T, n=2)       # two draws, one pass of phi
        rewards = [...]                                            # one per draw, higher = better
        sched.update(draws, rewards)                               # REINFORCE on phi
        with torch.no_grad():                                      # the batch theta trains on
            batch = sched.draw(loss, sim, B, t / T, sched.temperature(t)).indices

    ``factors``: the inputs used, a non-empty subset of ("loss", "sim") in column order;
    ``generator`` seeds phi's initial weights and serves the draws that pass none; ``zscore``
    standardises each factor within the pool; ``zero_output``: phi starts exactly uniform;
    ``temperature``/``temperature_decay``: the real draw's temperature max(T, decay**step).
    phi lives on the CPU: the factors are moved there (and to phi's dtype) before it sees them.
    """

    def __init__(self, factors=FACTORS, hidden: int = 32, lr: float = 1e-3, generator: torch.Generator | None = None,
                 momentum: float = 0.9, adv_clip: float = 5.0, adv_reject: float = 1e6, zscore: bool = True,
                 zero_output: bool = True, temperature: float = 0.1, temperature_decay: float = 0.99):
        bad = sorted(set(factors) - set(FACTORS))
        if bad or not factors:
            raise ValueError(f"ATS factors {tuple(factors)!r}; allowed: a non-empty subset of {FACTORS!r}")
        self.factors, self.generator, self.zscore = tuple(factors), generator, zscore
        self.floor, self.decay = temperature, temperature_decay
        self.net = SchedulerNet(len(self.factors), hidden, generator=generator, zero_output=zero_output)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.baseline = Baseline(momentum)
        self.bound = AdvantageBound(adv_clip, adv_reject)

    # -- drawing ------------------------------------------------------------------------
    def inputs(self, loss: torch.Tensor | None, sim: torch.Tensor | None = None) -> torch.Tensor:
        """phi's input matrix (P, len(factors)) from the pool's factors (P,) each, z-scored within
        the pool unless ``zscore=False``; a factor not in ``factors`` may be None."""
        cols = {"loss": loss, "sim": sim}
        ref = next(self.net.parameters())
        z = standardize if self.zscore else (lambda v: v)
        out = []
        for c in self.factors:
            if cols[c] is None:
                raise ValueError(f"the scheduler's factors are {self.factors!r}: {c!r} is needed, got None")
            out.append(z(torch.as_tensor(cols[c]).detach().to(ref.device, ref.dtype)))
        return torch.stack(out, 1)

    def draw(self, loss: torch.Tensor | None, sim: torch.Tensor | None, k: int, progress: float = 0.0,
             temperature: float = 1.0, generator: torch.Generator | None = None, n: int | None = None):
        """Draw ``k`` distinct pool tasks from softmax(g(factors, progress; phi) / T).

        Returns a ``Draw`` (indices (k,), exact log-probability differentiable w.r.t. phi, probs
        (P,), logits (P,)); with ``n``, a list of ``n`` independent draws from one pass of phi (the
        draws a step scores against each other). ``progress`` is t / T in [0, 1]."""
        return self.draw_inputs(self.inputs(loss, sim), k, progress, temperature, generator, n)

    def draw_inputs(self, x: torch.Tensor, k: int, progress: float = 0.0, temperature: float = 1.0,
                    generator: torch.Generator | None = None, n: int | None = None):
        """``draw`` from a ready input matrix x (P, len(factors)), e.g. ``inputs(loss, sim)`` kept for a step."""
        logits = self.net(x, progress)
        g = generator if generator is not None else self.generator
        draws = []
        for _ in range(1 if n is None else n):
            d = draw(logits, k, g, temperature)
            d.logits = logits
            draws.append(d)
        return draws[0] if n is None else draws

    def temperature(self, step: int) -> float:
        """The real draw's temperature at ``step``: max(T, decay**step)."""
        return max(self.floor, self.decay ** step)

    # -- learning -----------------------------------------------------------------------
    def advantages(self, rewards: list[float]) -> list[float]:
        """Raw advantages: with k >= 2 rewards, each minus the mean of the others (leave-one-out);
        with one, minus the moving average of past rewards (0 at the first)."""
        k = len(rewards)
        if k == 1:
            return [self.baseline.advantage(rewards[0])]
        total = sum(rewards)
        return [r - (total - r) / (k - 1) for r in rewards]

    def update(self, draws: list[Draw], rewards: list[float]) -> dict:
        """One REINFORCE step on phi: Adam on mean_i -(A_i) log P(draw_i; phi).

        ``draws``: the draws of this step (their log-probabilities still attached to phi's graph),
        ``rewards``: one float each, higher is better (a tensor is read as its detached value: no
        gradient ever flows from a reward into the caller's model). The advantages A (``advantages``) are bounded
        by ``AdvantageBound``; when one is absurd phi does not move and nothing is recorded
        (``skipped``). Otherwise the baseline folds in the mean reward (with k >= 2 it is only kept
        for the records). Returns {"advantages" (bounded; None when skipped), "advantages_raw",
        "baseline", "skipped"}."""
        if isinstance(draws, Draw):
            draws = [draws]
        if len(draws) != len(rewards) or not draws:
            raise ValueError(f"{len(draws)} draws and {len(rewards)} rewards: one reward per draw, at least one")
        rewards = [float(r.detach()) if torch.is_tensor(r) else r for r in rewards]
        k = len(draws)
        raw = self.advantages(rewards)
        advs = self.bound(raw)
        if advs is None:      # an absurd advantage (a look-ahead model diverged): phi learns nothing
            return {"advantages": None, "advantages_raw": raw, "baseline": self.baseline.value, "skipped": True}
        self.baseline.update(rewards[0] if k == 1 else sum(rewards) / k)
        self.opt.zero_grad(set_to_none=True)
        loss = sum(reinforce_loss(d.log_prob, a) for d, a in zip(draws, advs)) / k
        loss.backward()
        self.opt.step()
        return {"advantages": advs, "advantages_raw": raw, "baseline": self.baseline.value, "skipped": False}

    # -- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "baseline": self.baseline.state_dict(),
                "bound": self.bound.state_dict()}

    def load_state_dict(self, d: dict) -> None:
        self.net.load_state_dict(d["net"])
        self.opt.load_state_dict(d["opt"])
        self.baseline.load_state_dict(d["baseline"])
        self.bound.load_state_dict(d.get("bound", {}))     # checkpoints written before the bound existed
