"""Populations: R runs trained in lockstep in one process, their model maths batched across runs.

``train_population(cfgs, outs)`` builds one ordinary ``loop.Run`` per config - runs that differ in
seed and numeric settings (noise ratio, learning rates, temperatures, ...), with the same method
and the same shapes - and trains them all at once (``lockstep.Lockstep``): each run keeps its own
task stream, method state, optimizer, validation, checkpoint choice and NaN handling, writes its
own run directory and resumes from it, while the model-maths calls of all runs go through one
program over a leading run axis (``batched``). A run that fails stops alone; the others go on.

Why the seam is a substitution, made here. The core (``maml``, ``features``, ``step``, ``loop``)
is plain PyTorch and carries nothing of populations: no decorator, no ``ops`` table its calls are
looked up through (an indirection in every call a reader of the core would have to follow), no
"current executor" (a thread-local or ``contextvars`` variable in the core would be the same
concurrency machinery under another name). Instead, for the time of a population only,
``lockstep.substituted`` replaces the four model-maths functions of ``lockstep.SEAMS``
(``maml.evaluate``, ``features.pool_factors``, ``step.task_grad``, ``step.update``) and
``step.meta_step`` (a step counter that keeps the runs in phase) by wrappers, wherever an
``atslib`` module binds them, and puts the plain functions back after. The core reads top to
bottom as a single run; the whole mechanism - threads, waits, batching - lives in this wing, and
a single run never imports it. The price: a method module outside ``atslib`` that imported
``update`` by name gets its plain calls (the same numbers, not batched); one that calls
``step.update`` through the module is batched. ``tests/test_population.py`` checks that the
substitution reaches every binding inside ``atslib`` and is undone, and ``tests/test_layers.py``
that the core imports no threading machinery. How calls are served (one event per call, bounded
waits, batched maths under the callers' torch modes, every change to a run's state in its own
thread): ``lockstep``.

``group(configs)`` splits a list of configs into populations that can train together (the sweep's
``--executor population`` and ``train --seeds`` use it).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import batched  # noqa: F401 - registers the batched implementations
from ..config import Config, ConfigError
from ..loop import Run
from .lockstep import Lockstep

# what runs of one population may differ in: numbers that leave every tensor's shape alone
VARYING = ("seed", "init", "noise_ratio", "flip_prob", "noise_scale", "outer_lr", "scheduler_lr", "lookahead_lr",
           "temperature", "temperature_decay", "baseline_momentum", "budget_seed", "hard_ratio", "ood_ratio")


@dataclass
class Member:
    """One run of a population, after training: its ``Run`` (None if it could not be built) and,
    where it failed, the error."""
    run: Run | None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def compatible_key(cfg: Config) -> tuple:
    """Configs with the same key train together (everything but ``VARYING`` agrees)."""
    d = cfg.to_dict()
    return tuple(sorted((k, repr(v)) for k, v in d.items() if k not in VARYING))


def group(cfgs: list[Config], max_size: int | None = None) -> list[list[int]]:
    """Indices of ``cfgs`` grouped into populations of compatible runs (in order; at most ``max_size`` each)."""
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cfgs):
        groups.setdefault(compatible_key(c), []).append(i)
    out = []
    for ids in groups.values():
        size = max_size or len(ids)
        out.extend(ids[s:s + size] for s in range(0, len(ids), size))
    return out


def train_population(cfgs: list[Config], outs: list | None = None, resume: bool = False,
                     overwrite: bool = False, lockstep: Lockstep | None = None, prepare=None) -> list[Member]:
    """Train the runs of ``cfgs`` (into ``outs``, one directory each, or in memory) in lockstep
    (``lockstep``: a ``Lockstep`` to use, whose counters then tell which calls were batched;
    ``prepare(i, run)``: called for each run once built, returns its training callbacks)."""
    if not cfgs:
        raise ConfigError("a population needs at least one run")
    keys = {compatible_key(c) for c in cfgs}
    if len(keys) > 1:
        a, b = cfgs[0].to_dict(), next(c for c in cfgs if compatible_key(c) != compatible_key(cfgs[0])).to_dict()
        diff = sorted(k for k in a if a[k] != b[k] and k not in VARYING)
        raise ConfigError(f"population: options {diff} differ between runs; allowed to differ: {', '.join(VARYING)}")
    outs = outs if outs is not None else [None] * len(cfgs)
    members = []
    for c, o in zip(cfgs, outs):         # a run that cannot be built (say, a checkpoint of other options) fails alone
        try:
            members.append(Member(Run(c, o, resume=resume, overwrite=overwrite)))
        except Exception as e:           # noqa: BLE001
            members.append(Member(None, e))
    jobs = []
    for i, m in enumerate(members):
        if m.ok:
            callbacks = prepare(i, m.run) if prepare is not None else ()
            jobs.append(lambda run=m.run, cbs=callbacks: run.train(cbs))
    live = [m for m in members if m.ok]
    results = (lockstep or Lockstep()).run(jobs)
    for m, (ok, value) in zip(live, results):
        m.error = None if ok else value
    return members


__all__ = ["Member", "VARYING", "compatible_key", "group", "train_population"]
