"""One frozen, documented configuration for a training run (cleanrl-style).

Every field has a docstring-like comment; ``Config.from_dict`` builds one from papermill
parameters or a saved ``config.json`` and ``Config.validate`` turns bad values into a
``ConfigError`` that names the field, the value and what is allowed (the CLI prints that
one line and exits with code 2).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from .registry import METHODS, SCHEDULED, SPECS
from .store import LEGACY, RENAMED, upgrade_config  # noqa: F401 - LEGACY, RENAMED: re-exported

DATASETS = ("quickdraw", "molecules")


NOISE_ON = ("support", "query", "both")     # labels a noisy task corrupts
SHIFTS = ("rot90", "invert", "thicken")      # shifted domains of out-of-distribution tasks

# ``LEGACY`` (values that runs saved before an option existed ran with) and ``RENAMED`` (fields
# renamed since runs were saved) live with the rest of the legacy readers in ``store``.


class ConfigError(ValueError):
    """A bad option value; ``str(err)`` is the one line shown to the user."""


@dataclass(frozen=True)
class Config:
    # --- what to run -------------------------------------------------------------------
    method: str = "uniform"          # task-selection method, one of METHODS
    dataset: str = "quickdraw"       # "quickdraw" (images, any npz of that schema) or "molecules"
    data: str | None = None          # path of the data npz; None = the committed default file
    seed: int = 0                    # run seed: initial weights and the task stream
    steps: int = 1000                # outer (meta) iterations, warm-up included
    device: str = "auto"             # "auto" (cuda when available), "cpu" or "cuda"
    # --- tasks ------------------------------------------------------------------------
    ways: int = 5                    # classes per task (N)
    shots: int = 1                   # support examples per class (K)
    queries: int = 15                # query examples per class (Q)
    noise_ratio: float = 0.0         # fraction of meta-training tasks whose support labels are corrupted
    flip_prob: float = 0.8           # in a noisy task, chance that a support label is replaced by another class
    noise_on: str = "support"        # labels a noisy task corrupts: "support" (the paper), "query" (the authors' ATS loader), "both"
    hard_ratio: float = 0.0          # fraction of meta-train tasks built from mutually confusable classes (clean; tasks.confusion)
    ood_ratio: float = 0.0           # fraction of meta-train tasks from a shifted domain (clean labels; images moved by ood_shift)
    ood_shift: str = "rot90"         # the shifted domain: "rot90" (rotated 90 degrees), "invert" or "thicken" (3x3 dilation)
    noise_scale: float = 0.0         # molecules: support labels get + noise_scale * N(0, 1)
    max_support: int = 50            # molecules: support = half of an assay's molecules, at most this many
    max_query: int = 100             # molecules: query = the rest of the assay, at most this many
    budget_classes: int | None = None  # keep this many meta-train classes (None = all of them)
    budget_seed: int = 0             # which classes a budget keeps (fixed across run seeds)
    # --- meta-learner -----------------------------------------------------------------
    inner: str = "anil"              # "anil" (head adapts) or "maml" (all parameters adapt)
    first_order: bool = False        # drop second-order terms of the meta-gradient
    inner_lr: float = 0.1            # inner-loop SGD step (0.01 barely moves a 288-d head; see docs/choices.md)
    inner_steps: int = 5             # inner steps in meta-training
    test_inner_steps: int = 10       # inner steps at validation / test time
    outer_lr: float = 1e-3           # Adam learning rate of the meta-parameters
    width: int = 32                  # conv channels (images) / MLP hidden units (molecules: this default means 500)
    max_pools: int = 3               # 2x2 max-pool layers in the conv-4 (3 on 28 px -> 288-d embedding, 4 -> 32-d)
    # --- pool and scheduler -----------------------------------------------------------
    meta_batch: int = 2              # tasks per meta-update (B)
    pool_size: int = 10              # candidate tasks scored per iteration (P >= B)
    val_tasks: int = 4               # fresh clean meta-val tasks per reward (V)
    warmup: int = 0                  # first steps train only phi, theta's updates are not applied (the authors' warm-up)
    temperature: float = 0.1         # the FLOOR T of the real draw's temperature max(T, decay**t) (CLI name fixed)
    temperature_decay: float = 0.99  # decay of the real draw's temperature per step
    scheduler_lr: float = 1e-3       # Adam learning rate of the scheduler network
    scheduler_hidden: int = 32       # hidden units of the scheduler network
    lookahead_lr: float = 0.1        # SGD step of the temporary meta-model used for the reward
    # Safeguards of the scheduler's training (measured in REPRODUCTION.md, "Bounded look-ahead"): look-ahead
    # meta-gradient norms are ~3.7 (median) / 7.3 (p90) on images, ~12 / 25 on molecules, spikes up to 1.2e5
    lookahead_max_norm: float = 10.0  # clip the look-ahead's meta-gradient to this global L2 norm (0 = unbounded)
    adv_clip: float = 5.0            # winsorise REINFORCE advantages at +-adv_clip x their running scale (0 = off)
    adv_reject: float = 1e6          # beyond adv_reject x that scale, phi skips the step's update; theta's goes on (0 = off)
    reweight_update: str = "top"     # ats-reweight's real update: "top" (top-B tasks by weight, renormalised) or "all" (all P)
    reward: str = "loss"             # reward metric on validation tasks: "loss" (-loss) or "acc"
    reward_paired: bool = True       # reward R(theta~) - R(theta) on the same validation tasks
    baseline_momentum: float = 0.9   # moving-average baseline of the reward (used when draws_per_step = 1)
    draws_per_step: int = 2          # scheduler draws per step scored on the same val tasks (>= 2: leave-one-out baseline)
    zscore_factors: bool = True      # standardise loss and similarity within each pool
    cheap_every: int = 5             # ats-cheap: refresh factors and update the scheduler every k steps
    cheap_queries: int = 5           # ats-cheap: query examples per class used to score the pool
    # --- evaluation and records -------------------------------------------------------
    validate_start: bool = True      # the starting model (step 0) is a checkpoint candidate
    eval_every: int = 100            # validation (checkpoint selection) period in steps
    n_val_tasks: int = 100           # fixed clean meta-val tasks for checkpoint selection
    n_test_tasks: int = 600          # fixed meta-test tasks scored at the end
    test_seed: int = 2021            # seed of the meta-val/meta-test task sets (same for every run)
    pool_log_every: int = 10         # write every k-th pool to pool.csv.gz (scheduler diagnostics)
    checkpoint_every: int = 100      # write a resumable checkpoint every k steps
    on_nonfinite: str = "stop"       # a NaN/inf loss, factor or reward: "stop" (error, last good checkpoint kept) or "skip" the step
    init: str | None = None          # start theta from this run directory's best checkpoint

    # ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """Build from a dict, ignoring None values for fields with defaults; unknown keys are errors."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown}; allowed: {sorted(names)}")
        cfg = cls(**{k: v for k, v in d.items() if v is not None or k in ("data", "init", "budget_classes")})
        cfg.validate()
        return cfg

    @classmethod
    def from_saved(cls, d: dict) -> "Config":
        """A config as a run saved it: an option the run predates takes the value it then had.

        Saved configs lack the fields added since; most take their defaults, but the numeric
        safeguards below changed behaviour, so a run without them ran without them. Fields
        renamed since (``RENAMED``) are read under their new names (``store.upgrade_config``).
        """
        return cls.from_dict(upgrade_config(d))

    @property
    def bad_ratio(self) -> float:
        """Expected share of bad meta-training tasks (label-noisy, or shifted on images): the records'
        ``noisy`` columns count these (``noise_auc``, ``noisy_mass``, ``clean_share``)."""
        return self.noise_ratio + (self.ood_ratio if self.dataset != "molecules" else 0.0)

    def replace(self, **kw) -> "Config":
        cfg = dataclasses.replace(self, **kw)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Each field's comment above, by name: the CLI's ``--help`` text (empty where the source
        cannot be read, e.g. a frozen build)."""
        import inspect
        import re
        try:
            src = inspect.getsource(cls)
        except (OSError, TypeError):
            return {}
        found = (re.match(r"    (\w+): [^#]*?=[^#]*#\s*(.+)$", line) for line in src.splitlines())
        names = {f.name for f in fields(cls)}
        return {m[1]: m[2].strip() for m in found if m and m[1] in names}

    def validate(self) -> "Config":
        """Checks that need no data file (those that do live in ``data.check_task_shape``)."""
        def need(ok, name, allowed):
            if not ok:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)!r}: {allowed}")
        need(self.method in METHODS, "method", f"allowed: {', '.join(METHODS)}")
        need(self.dataset in DATASETS, "dataset", f"allowed: {', '.join(DATASETS)}")
        need(not (self.method in SPECS and SPECS[self.method].images_only and self.dataset == "molecules"), "method",
             f"{self.method} composes tasks from classes and works only on image datasets")
        need(self.device in ("auto", "cpu", "cuda"), "device", "allowed: auto, cpu, cuda")
        need(self.inner in ("anil", "maml"), "inner", "allowed: anil, maml")
        need(self.reward in ("loss", "acc"), "reward", "allowed: loss, acc")
        need(self.on_nonfinite in ("stop", "skip"), "on_nonfinite", "allowed: stop, skip")
        need(self.reweight_update in ("top", "all"), "reweight_update", "allowed: top, all")
        need(self.noise_on in NOISE_ON, "noise_on", f"allowed: {', '.join(NOISE_ON)}")
        need(self.ood_shift in SHIFTS, "ood_shift", f"allowed: {', '.join(SHIFTS)}")
        for name in ("lookahead_max_norm", "adv_clip", "adv_reject"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, name, "must be >= 0 (0 = off)")
        for name in ("steps", "ways", "shots", "queries", "inner_steps", "test_inner_steps", "width",
                     "meta_batch", "pool_size", "val_tasks", "eval_every", "n_val_tasks", "n_test_tasks",
                     "pool_log_every", "checkpoint_every", "cheap_every", "cheap_queries", "draws_per_step",
                     "scheduler_hidden", "max_support", "max_query"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, name, "must be an integer >= 1")
        need(isinstance(self.budget_seed, int) and not isinstance(self.budget_seed, bool) and self.budget_seed >= 0,
             "budget_seed", "must be an integer >= 0")
        need(self.ways >= 2, "ways", "must be >= 2")
        need(self.max_pools in (1, 2, 3, 4), "max_pools", "allowed: 1, 2, 3, 4")
        for name in ("noise_ratio", "flip_prob", "hard_ratio", "ood_ratio"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and 0.0 <= v <= 1.0, name, "must be in [0, 1]")
        for name in ("inner_lr", "outer_lr", "scheduler_lr", "lookahead_lr", "temperature"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and v > 0, name, "must be > 0")
        if self.hard_ratio or self.ood_ratio:
            total = self.noise_ratio + self.hard_ratio + self.ood_ratio
            need(total <= 1 + 1e-9, "hard_ratio", f"with --noise-ratio {self.noise_ratio!r} and --ood-ratio "
                 f"{self.ood_ratio!r} the three sum to {total:g}: must be <= 1 (with hard or shifted tasks they are "
                 "exclusive fractions of all tasks)")
            need(self.dataset != "molecules", "dataset", f"hard and shifted tasks (--hard-ratio {self.hard_ratio!r}, "
                 f"--ood-ratio {self.ood_ratio!r}) are image regimes; allowed: quickdraw, or both ratios 0")
            need(self.method != "gcp", "method", f"gcp composes its own tasks from classes; allowed with --hard-ratio 0 "
                 f"--ood-ratio 0 (given {self.hard_ratio!r}, {self.ood_ratio!r})")
        need(self.noise_on == "support" or self.dataset != "molecules", "noise_on",
             "molecules corrupt support labels only; allowed: support")
        need(isinstance(self.noise_scale, (int, float)) and self.noise_scale >= 0, "noise_scale", "must be >= 0")
        need(0 < self.temperature_decay <= 1, "temperature_decay", "must be in (0, 1]")
        need(0 <= self.baseline_momentum < 1, "baseline_momentum", "must be in [0, 1)")
        need(isinstance(self.warmup, int) and 0 <= self.warmup < self.steps, "warmup",
             f"must be an integer in [0, steps={self.steps})")
        for name in ("data", "init"):
            need(getattr(self, name) is None or isinstance(getattr(self, name), str), name, "must be a path")
        need(self.pool_size >= self.meta_batch, "pool_size",
             f"must be >= --meta-batch ({self.meta_batch})")
        need(self.budget_classes is None or (isinstance(self.budget_classes, int) and self.budget_classes >= self.ways),
             "budget_classes", f"must be an integer >= --ways ({self.ways})")
        return self


__all__ = ["Config", "ConfigError", "METHODS", "SCHEDULED", "DATASETS", "LEGACY", "RENAMED", "NOISE_ON", "SHIFTS"]
